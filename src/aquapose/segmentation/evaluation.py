"""Evaluate a segmentor on a COCO file: per-image mean mask IoU and COCO AP.

The evaluation images are the crops :class:`~aquapose.segmentation.dataset.CropDataset`
makes without augmentation: one centred on every annotated fish (every fish visible in
it is ground truth) and one window of every image without fish. This is how the model
is used (crops around detections).

Per-image mask IoU (``image_mask_iou``), defined exactly:

- predictions with confidence >= ``score_threshold`` are kept, the rest ignored;
- ground truth and kept predictions are matched one-to-one by mask IoU with the
  Hungarian method (:func:`aquapose.segmentation.metrics.match_by_iou`); pairs with
  IoU < ``match_iou_threshold`` are not matches;
- the image's score is the mean over one entry per matched pair (its IoU), one per
  unmatched ground-truth fish (0: missed) and one per unmatched kept prediction
  (0: false positive);
- an image with no fish and no kept prediction scores 1.0; an image with no fish and
  any kept prediction scores 0.0 (a false positive on an empty crop is never free).

``mean_mask_iou`` is the mean of the per-image scores. COCO ``segm`` and ``bbox`` AP
come from ``pycocotools.cocoeval`` on all predictions (down to ``ap_score_threshold``).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aquapose.segmentation.masks import encode_rle, rle_iou_matrix
from aquapose.segmentation.metrics import match_by_iou


def image_mask_iou(
    gt_rles: list[dict[str, Any]],
    pred_rles: list[dict[str, Any]],
    match_iou_threshold: float = 0.5,
) -> float:
    """Score of one image (see the module docstring); ``pred_rles`` already filtered by score."""
    if not gt_rles and not pred_rles:
        return 1.0
    if not gt_rles or not pred_rles:
        return 0.0
    matches = match_by_iou(rle_iou_matrix(gt_rles, pred_rles), match_iou_threshold)
    entries = len(gt_rles) + len(pred_rles) - len(matches)
    return float(sum(m.iou for m in matches) / entries)


@dataclass(frozen=True)
class EvalReport:
    """Evaluation summary. AP values are in [0, 1]; NaN when there is no ground truth."""

    mean_mask_iou: float
    num_images: int
    num_negative_images: int
    num_gt: int
    num_pred: int
    segm_ap: float
    segm_ap50: float
    segm_ap75: float
    bbox_ap: float
    bbox_ap50: float
    score_threshold: float
    match_iou_threshold: float
    mean_mask_iou_negatives: float
    per_image_iou: tuple[float, ...] = field(repr=False, default=())

    def to_dict(self, per_image: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if per_image:
            data["per_image_iou"] = list(self.per_image_iou)
        else:
            data.pop("per_image_iou")
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of :func:`evaluate` (``aquapose evaluate --config``); see its arguments."""

    score_threshold: float = 0.5
    match_iou_threshold: float = 0.5
    ap_score_threshold: float = 0.05
    batch_size: int = 8
    seed: int = 0


def evaluate(
    model: Any,
    coco_json: str | Path,
    image_root: str | Path | None = None,
    *,
    score_threshold: float = 0.5,
    match_iou_threshold: float = 0.5,
    ap_score_threshold: float = 0.05,
    batch_size: int = 8,
    seed: int = 0,
    backgrounds: str | Path | None = None,
) -> EvalReport:
    """Evaluate ``model`` (a ``MaskRCNNSegmentor`` or a checkpoint path) on a COCO file.

    Args:
        coco_json: ground truth (COCO, masks for every fish).
        image_root: folder the image paths are relative to (default: the file's folder).
        score_threshold: predictions at or above it count for the mean mask IoU.
        match_iou_threshold: minimum mask IoU of a ground-truth/prediction match.
        ap_score_threshold: lowest confidence passed to COCO AP.
        batch_size: crops per forward pass.
        seed: picks the windows of the negative images.
        backgrounds: folder of each camera's background (``<camera_id>.png``), needed by
            a model trained with the background as input.
    """
    from aquapose.segmentation.dataset import CropDataset
    from aquapose.segmentation.model import MaskRCNNSegmentor

    for name, value in (
        ("score_threshold", score_threshold),
        ("match_iou_threshold", match_iou_threshold),
        ("ap_score_threshold", ap_score_threshold),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if isinstance(model, (str, Path)):
        model = MaskRCNNSegmentor.load(model)
    if not isinstance(model, MaskRCNNSegmentor):
        raise TypeError(f"model must be a MaskRCNNSegmentor or a checkpoint path, got {model!r}")
    if model.background_input and backgrounds is None:
        raise ValueError(
            "the model was trained with the background as input: pass the backgrounds "
            "folder (aquapose detect's backgrounds/, --backgrounds)"
        )
    dataset = CropDataset(
        coco_json,
        image_root,
        crop_size=model.crop_size,
        augment=False,
        seed=seed,
        backgrounds=backgrounds if model.background_input else None,
    )
    gt_per_image: list[list[dict[str, Any]]] = []
    pred_per_image: list[list[tuple[dict[str, Any], np.ndarray, float]]] = []
    min_score = min(score_threshold, ap_score_threshold)
    for start in range(0, len(dataset), batch_size):
        samples = [dataset.crop(i) for i in range(start, min(start + batch_size, len(dataset)))]
        outputs = model.predict(
            [s.image_bgr for s in samples],
            [s.region for s in samples],
            score_threshold=min_score,
            batch_size=batch_size,
            backgrounds=[s.background_bgr for s in samples]  # type: ignore[misc]
            if model.background_input
            else None,
        )
        for sample, results in zip(samples, outputs, strict=True):
            gt_per_image.append([encode_rle(m) for m in sample.crop_masks])
            pred_per_image.append([(r.crop_rle, r.crop_box_xyxy, r.confidence) for r in results])

    ious = []
    for gts, preds in zip(gt_per_image, pred_per_image, strict=True):
        kept = [rle for rle, _, score in preds if score >= score_threshold]
        ious.append(image_mask_iou(gts, kept, match_iou_threshold))
    negatives = [iou for iou, gts in zip(ious, gt_per_image, strict=True) if not gts]
    ap = coco_ap(
        gt_per_image,
        [[p for p in preds if p[2] >= ap_score_threshold] for preds in pred_per_image],
        dataset.crop_size,
    )
    return EvalReport(
        mean_mask_iou=float(np.mean(ious)),
        num_images=len(ious),
        num_negative_images=len(negatives),
        num_gt=sum(len(g) for g in gt_per_image),
        num_pred=sum(1 for preds in pred_per_image for p in preds if p[2] >= score_threshold),
        score_threshold=score_threshold,
        match_iou_threshold=match_iou_threshold,
        mean_mask_iou_negatives=float(np.mean(negatives)) if negatives else math.nan,
        per_image_iou=tuple(ious),
        **ap,
    )


def coco_ap(
    gt_per_image: list[list[dict[str, Any]]],
    pred_per_image: list[list[tuple[dict[str, Any], np.ndarray, float]]],
    image_size: int,
) -> dict[str, float]:
    """COCO ``segm`` and ``bbox`` AP of crop-space predictions, via ``pycocotools.cocoeval``.

    Args:
        gt_per_image: ground-truth RLEs of each image.
        pred_per_image: ``(rle, box_xyxy, score)`` of each image's predictions.
        image_size: side of the square images.
    Returns:
        ``segm_ap``, ``segm_ap50``, ``segm_ap75``, ``bbox_ap``, ``bbox_ap50``: NaN with no
        ground truth, 0.0 with ground truth but no predictions.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = ("segm_ap", "segm_ap50", "segm_ap75", "bbox_ap", "bbox_ap50")
    num_gt = sum(len(g) for g in gt_per_image)
    num_pred = sum(len(p) for p in pred_per_image)
    if num_gt == 0:
        return dict.fromkeys(keys, math.nan)
    if num_pred == 0:
        return dict.fromkeys(keys, 0.0)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, (gts, preds) in enumerate(zip(gt_per_image, pred_per_image, strict=True), 1):
        images.append({"id": image_id, "width": image_size, "height": image_size})
        for rle in gts:
            coco_rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": coco_rle,
                    "area": float(mask_utils.area(coco_rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(coco_rle)],
                    "iscrowd": 0,
                }
            )
        for rle, box, score in preds:
            x0, y0, x1, y1 = (float(v) for v in box)
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].encode("ascii")},
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    result: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "fish"}],
        }
        gt.createIndex()
        for iou_type in ("segm", "bbox"):
            # loadRes treats results holding a bbox as box results: give each type its own
            drop = "bbox" if iou_type == "segm" else "segmentation"
            dt = gt.loadRes([{k: v for k, v in d.items() if k != drop} for d in detections])
            ev = COCOeval(gt, dt, iouType=iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            result[f"{iou_type}_ap"] = float(ev.stats[0])
            result[f"{iou_type}_ap50"] = float(ev.stats[1])
            if iou_type == "segm":
                result["segm_ap75"] = float(ev.stats[2])
    return result
