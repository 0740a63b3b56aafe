"""Stage 2 as a run: detections -> a mask per detection -> filtered COCO train/val sets.

``pseudolabel_detections(detections_json, out_dir, PseudolabelConfig(...))`` writes into ``out_dir``:

- ``pseudolabels.json``: COCO, every detection's mask, accepted or not. Each
  annotation carries ``accepted`` (bool), ``reject_reason`` (one of
  ``low_score``/``small_area``/``low_fill``/``high_fill``/``low_contrast``, or null),
  ``detection_box_xyxy``, ``fill`` and ``contrast`` (mean change from the camera's
  median background, with ``background``); ``score`` is the detection's score and
  ``bbox`` the mask's tight box (the detection box for an empty mask).
  ``info.pseudolabel`` holds the settings;
- ``train.json`` / ``val.json``: accepted masks plus negatives (frames without
  detections, background crops in ``negatives/``), split per camera;
- ``contact_sheet.png``: crops with mask outlines (green accepted, red rejected);
- ``pseudolabel_config.yaml``: the resolved config;
- ``pseudolabels.jsonl``: the journal of labelled frames. A re-run with the same
  detections and labeller continues after the frames it holds; the filter, the
  negatives and the split are re-applied to every frame, so changing them is cheap.

Every ``file_name`` is relative to ``out_dir`` (absolute when on another drive).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aquapose.segmentation.background import median_background
from aquapose.segmentation.grabcut import ClassicalConfig
from aquapose.segmentation.io.coco import frame_from_record, frame_record, read_coco, write_coco
from aquapose.segmentation.io.config import config_to_dict, write_config
from aquapose.segmentation.io.files import read_image, relative_path, write_image
from aquapose.segmentation.io.journal import Journal
from aquapose.segmentation.labels import (
    FilterConfig,
    SheetItem,
    background_contrast,
    contact_sheet,
    filter_mask,
    fish_areas,
    stratified_split,
    to_coco_dataset,
)
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.pseudo_labeler import SAMPseudoLabeler
from aquapose.segmentation.types import AnnotatedFrame, Detection, Instance

__all__ = ["PseudolabelConfig", "PseudolabelRun", "pseudolabel_detections"]

#: ``progress(task, done, total)``.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PseudolabelConfig:
    """Settings of :func:`pseudolabel_detections`.

    Attributes:
        backend: ``classical`` (GrabCut, no weights), ``sam`` or ``sam2``.
        checkpoint: SAM / SAM 2 checkpoint file, or a released name (``vit_b``,
            ``sam2.1_hiera_tiny``) fetched into torch hub's cache.
        model_type: SAM variant (``vit_b``, ``vit_l``, ``vit_h``); None: the named
            checkpoint's, else ``vit_b``.
        model_cfg: SAM 2 config (guessed from a released checkpoint's file name).
        device: torch device of the SAM backends.
        mask_choice: SAM: keep the candidate with the best predicted IoU (``score``)
            or the largest (``area``).
        background: classical: compare with each camera's median background (the
            ``low_contrast`` filter; the shadow model when ``classical.shadow_model``).
        classical: settings of the classical backend.
        filter: the quality filter's thresholds.
        negative_fraction: share of negative images in train/val.
        crop_size: side of the negative background crops (pixels).
        val_fraction: share of each camera's frames in val.
        split_block: keep runs of this many frames on one side of the split.
        seed: seeds negatives, split and contact sheet.
        sheet_tiles: tiles in ``contact_sheet.png``.
    """

    backend: str = "classical"
    checkpoint: str | None = None
    model_type: str | None = None
    model_cfg: str | None = None
    device: str = "cpu"
    mask_choice: Literal["score", "area"] = "score"
    background: bool = True
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    negative_fraction: float = 0.1
    crop_size: int = 256
    val_fraction: float = 0.2
    split_block: int = 1
    seed: int = 0
    sheet_tiles: int = 48

    def labeler(self) -> SAMPseudoLabeler:
        """The pseudo-labeler these settings describe."""
        return SAMPseudoLabeler(
            self.backend,
            self.checkpoint,
            self.model_type,
            self.model_cfg,
            self.device,
            mask_choice=self.mask_choice,
            classical=self.classical,
        )

    def labeler_settings(self) -> dict[str, Any]:
        """The settings the masks depend on (a resumed run must share them)."""
        classical = self.backend == "classical"
        return {
            "backend": self.backend,
            "checkpoint": self.checkpoint,
            "model_type": self.model_type if self.backend == "sam" else None,
            "model_cfg": self.model_cfg,
            "mask_choice": None if classical else self.mask_choice,
            "background": self.background and classical,
            "classical": config_to_dict(self.classical) if classical else None,
        }


@dataclass(frozen=True)
class PseudolabelRun:
    """The outputs of :func:`pseudolabel_detections` (paths and the frames written to them)."""

    pseudolabels_json: Path
    train_json: Path
    val_json: Path
    labelled: list[AnnotatedFrame]
    train: list[AnnotatedFrame]
    val: list[AnnotatedFrame]
    resumed_frames: int
    missing_scores: int

    @property
    def reasons(self) -> Counter[str]:
        """Masks per reject reason, ``accepted`` for the accepted ones."""
        return Counter(
            inst.extra.get("reject_reason") or "accepted"
            for f in self.labelled
            for inst in f.instances
        )


def _key(frame: AnnotatedFrame) -> tuple[str, str, int]:
    return (frame.camera_id, frame.video, frame.frame_index)


def pseudolabel_detections(
    detections_json: str | Path,
    out_dir: str | Path,
    config: PseudolabelConfig | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> PseudolabelRun:
    """Label every detection with a mask, filter them and build COCO train/val sets.

    See the module docstring for the outputs. ``overwrite`` starts over instead of
    resuming; ``progress(task, done, total)`` is called after each labelled frame.
    """
    cfg = config or PseudolabelConfig()
    detections_json = Path(detections_json)
    labeler = cfg.labeler()  # fails early on a bad backend or a missing checkpoint
    frames = read_coco(detections_json)
    if not frames:
        raise ValueError(f"{detections_json}: no images, nothing to label")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / "pseudolabel_config.yaml")
    settings = {"detections": str(detections_json.resolve()), **cfg.labeler_settings()}
    with Journal(out / "pseudolabels.jsonl", settings, overwrite=overwrite) as journal:
        done = {}
        for record in journal.records:
            frame = frame_from_record(record, source=str(journal.path))
            done[_key(frame)] = frame
        resumed = len(done)
        todo = [f for f in frames if _key(f) not in done]
        root = detections_json.parent
        backgrounds = _median_backgrounds(frames, root) if settings["background"] else {}
        missing = 0
        for n, frame in enumerate(todo, 1):
            missing += sum(1 for inst in frame.instances if inst.score is None)
            result = _label_frame(labeler, frame, root, out, backgrounds.get(frame.camera_id))
            journal.append(frame_record(result))
            done[_key(frame)] = result
            if progress:
                progress(f"pseudolabel ({cfg.backend})", n, len(todo))
    labelled = [done[_key(f)] for f in frames]
    sizes = fish_areas(labelled)
    labelled = [_refilter(f, cfg.filter, sizes.get(f.camera_id)) for f in labelled]
    return _write_outputs(labelled, out, cfg, settings, resumed, missing)


def _label_frame(
    labeler: SAMPseudoLabeler,
    frame: AnnotatedFrame,
    root: Path,
    out: Path,
    background: np.ndarray | None,
) -> AnnotatedFrame:
    """One frame of ``pseudolabels.json`` (filter fields are filled in by ``_refilter``)."""
    path = frame.resolve_image(root)
    image = read_image(path)
    if image.shape[:2] != (frame.height, frame.width):
        raise ValueError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, its detections say "
            f"{frame.width}x{frame.height}"
        )
    dets = [
        Detection.from_frame_mask(
            box_xyxy=inst.box_xyxy,
            score=1.0 if inst.score is None else inst.score,
            camera_id=frame.camera_id,
            frame_index=frame.frame_index,
            frame_mask=inst.mask() if inst.rle is not None else None,
        )
        for inst in frame.instances
    ]
    masks = labeler.label_frame(image, dets, background)
    contrast = None if background is None else background_contrast(image, background)
    instances = []
    for inst, det, mask in zip(frame.instances, dets, masks, strict=True):
        box = mask_to_box_xyxy(mask) if mask.any() else det.box_xyxy
        x0, y0, x1, y1 = det.box_xyxy
        extra = {
            **inst.extra,
            "detection_box_xyxy": [float(v) for v in det.box_xyxy],
            "fill": float(np.count_nonzero(mask) / max((x1 - x0) * (y1 - y0), 1e-9)),
        }
        if contrast is not None:
            extra["contrast"] = float(contrast[mask].mean()) if mask.any() else 0.0
        instances.append(Instance(box, encode_rle(mask), score=det.score, extra=extra))
    return replace(frame, image_path=relative_path(path, out), instances=tuple(instances))


def _refilter(
    frame: AnnotatedFrame, filter_cfg: FilterConfig, fish_area: float | None
) -> AnnotatedFrame:
    """The frame with ``accepted`` / ``reject_reason`` set on each mask by the filter
    (``fish_area``: the median mask area of the frame's camera)."""
    instances = []
    for inst in frame.instances:
        box = inst.extra.get("detection_box_xyxy", inst.box_xyxy)
        score = inst.score if inst.score is not None else 1.0
        det = Detection(box, score, frame.camera_id, frame.frame_index)
        reason = filter_mask(inst.mask(), det, filter_cfg, inst.extra.get("contrast"), fish_area)
        extra = {**inst.extra, "accepted": reason is None, "reject_reason": reason}
        instances.append(replace(inst, extra=extra))
    return replace(frame, instances=tuple(instances))


def _write_outputs(
    labelled: list[AnnotatedFrame],
    out: Path,
    cfg: PseudolabelConfig,
    settings: dict[str, Any],
    resumed: int,
    missing_scores: int,
) -> PseudolabelRun:
    """pseudolabels.json, the train/val sets and the contact sheet."""
    labels_path = out / "pseudolabels.json"
    info = {
        "description": "AquaPose pseudo-labels",
        "pseudolabel": {
            "detections": settings["detections"],
            **config_to_dict(cfg),
            "complete": True,
        },
    }
    write_coco(labelled, labels_path, info=info)
    dataset = to_coco_dataset(
        labelled,
        out,
        out,
        negative_fraction=cfg.negative_fraction,
        crop_size=cfg.crop_size,
        seed=cfg.seed,
    )
    train, val = stratified_split(dataset, cfg.val_fraction, cfg.seed, block_frames=cfg.split_block)
    info = {"description": "AquaPose pseudo-label training set", "source": labels_path.name}
    write_coco(train, out / "train.json", info={**info, "split": "train"})
    write_coco(val, out / "val.json", info={**info, "split": "val"})
    sheet = contact_sheet(_sheet_items(labelled, out, cfg.sheet_tiles, cfg.seed))
    write_image(out / "contact_sheet.png", sheet)
    return PseudolabelRun(
        labels_path,
        out / "train.json",
        out / "val.json",
        labelled,
        train,
        val,
        resumed,
        missing_scores,
    )


def _median_backgrounds(
    frames: list[AnnotatedFrame], root: Path, samples: int = 25
) -> dict[str, np.ndarray]:
    """Per camera: the per-pixel median of up to ``samples`` frames spread over its frames."""
    by_camera: dict[str, list[AnnotatedFrame]] = {}
    for frame in frames:
        by_camera.setdefault(frame.camera_id, []).append(frame)
    out = {}
    for camera, cam_frames in by_camera.items():
        step = max(1, len(cam_frames) // samples)
        picked = cam_frames[::step][:samples]
        images = [read_image(f.resolve_image(root)) for f in picked]
        if len({im.shape for im in images}) == 1 and len(images) >= 3:
            out[camera] = median_background(images)
    return out


def _sheet_items(frames: list[AnnotatedFrame], out: Path, tiles: int, seed: int) -> list[SheetItem]:
    """Up to ``tiles`` masks, seeded: rejected ones get up to a third of the tiles."""
    rng = np.random.default_rng(seed)
    pool = [(f, i) for f in frames for i in f.instances]
    rejected = [p for p in pool if not p[1].extra.get("accepted", True)]
    accepted = [p for p in pool if p[1].extra.get("accepted", True)]
    n_rej = min(len(rejected), tiles // 3)
    pick = [rejected[k] for k in rng.permutation(len(rejected))[:n_rej]]
    pick += [accepted[k] for k in rng.permutation(len(accepted))[: tiles - n_rej]]
    pick.sort(key=lambda p: (p[0].camera_id, p[0].frame_index))
    cache: dict[str, np.ndarray] = {}
    items = []
    for frame, inst in pick:
        path = str(frame.resolve_image(out))
        if path not in cache:
            cache = {path: read_image(path)}  # frames come sorted: keep one in memory
        caption = f"{frame.camera_id}:{frame.frame_index} " + (
            inst.extra.get("reject_reason") or "ok"
        )
        box = np.asarray(inst.extra.get("detection_box_xyxy", inst.box_xyxy), dtype=float)
        accepted_ = bool(inst.extra.get("accepted", True))
        items.append(SheetItem(cache[path], inst.mask(), box, caption, accepted_))
    return items
