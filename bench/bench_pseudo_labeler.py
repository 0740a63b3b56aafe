"""Pseudo-labeler speed and quality on a synthetic demo clip, and SAM's cost split.

- classical masks/s (the default backend, with the camera's median background) beside
  plain box-initialised GrabCut on the full-resolution window;
- classical mean IoU vs ground truth of the detections that cover a fish, beside the
  detector's own blob as the mask;
- SAM vit_b with random weights (no checkpoint here): seconds per image embedding and
  per box decode, beside the classical backend's seconds per frame / per mask.

Run: ``.venv/bin/python bench/bench_pseudo_labeler.py`` (2 CPU threads, ~1-2 min).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402


def _naive_grabcut(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Baseline: cv2.grabCut with the box as rect, 5 iterations, full-res window."""
    h, w = frame.shape[:2]
    margin = int(0.25 * max(box[2] - box[0], box[3] - box[1])) + 2
    x0, y0 = max(0, int(box[0]) - margin), max(0, int(box[1]) - margin)
    x1, y1 = min(w, int(np.ceil(box[2])) + margin), min(h, int(np.ceil(box[3])) + margin)
    window = np.ascontiguousarray(frame[y0:y1, x0:x1])
    mask = np.zeros(window.shape[:2], np.uint8)
    rect = (int(box[0]) - x0, int(box[1]) - y0, int(box[2] - box[0]), int(box[3] - box[1]))
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(window, mask, rect, bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return out


def run(quick: bool = False) -> list[BenchRow]:
    import torch

    from aquapose.segmentation.background import median_background
    from aquapose.segmentation.detector import detect_video
    from aquapose.segmentation.io.coco import read_coco
    from aquapose.segmentation.masks import encode_rle, rle_iou_matrix
    from aquapose.segmentation.metrics import match_by_iou
    from aquapose.segmentation.pseudo_labeler import SAMPseudoLabeler
    from aquapose.synth import generate

    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    n_frames = 120 if quick else 240  # short clips: the median background keeps the fish
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate(Path(tmp) / "demo", preset="demo", seed=0, cameras=1, frames=n_frames)
        root = manifest.parent
        gt = {f.frame_index: f for f in read_coco(root / "cam0_gt.json")}
        clip = [
            (i, frame, dets)
            for i, frame, dets in detect_video(
                root / "cam0.mp4", camera_id="cam0", every=4 if quick else 3
            )
        ]
    background = median_background([frame for _, frame, _ in clip])
    labeler = SAMPseudoLabeler()

    ours_t = naive_t = 0.0
    n_masks = 0
    ious, blob_ious, naive_ious = [], [], []
    for index, frame, dets in clip:
        if not dets:
            continue
        start = time.perf_counter()
        masks = labeler.label_frame(frame, dets, background)
        ours_t += time.perf_counter() - start
        start = time.perf_counter()
        naive = [_naive_grabcut(frame, d.box_xyxy) for d in dets]
        naive_t += time.perf_counter() - start
        n_masks += len(dets)
        gt_rles = [inst.rle for inst in gt[index].instances]
        for preds, sink in (
            (masks, ious),
            ([d.blob_mask for d in dets], blob_ious),
            (naive, naive_ious),
        ):
            matches = match_by_iou(rle_iou_matrix(gt_rles, [encode_rle(m) for m in preds]), 1e-9)
            sink.extend(m.iou for m in matches)

    rows = [
        BenchRow(
            "classical masks/s (2 threads)",
            n_masks / ours_t,
            "masks/s",
            "box-init GrabCut, full-res window",
            n_masks / naive_t,
        ),
        BenchRow(
            "classical mean IoU (dets covering a fish)",
            float(np.mean(ious)),
            "IoU",
            "detector blob as the mask",
            float(np.mean(blob_ious)),
        ),
        BenchRow(
            "box-init GrabCut mean IoU (same dets)",
            float(np.mean(naive_ious)),
            "IoU",
            "detector blob as the mask",
            float(np.mean(blob_ious)),
        ),
    ]

    # SAM vit_b, random weights: cost only (quality is meaningless without a checkpoint).
    from segment_anything import SamPredictor, sam_model_registry

    predictor = SamPredictor(sam_model_registry["vit_b"](checkpoint=None).eval())
    frames_with_boxes = [(f, d) for _, f, d in clip if d][: 1 if quick else 2]
    embed_t = decode_t = 0.0
    boxes_done = 0
    with torch.inference_mode():
        for frame, dets in frames_with_boxes:
            start = time.perf_counter()
            predictor.set_image(np.ascontiguousarray(frame[:, :, ::-1]))
            embed_t += time.perf_counter() - start
            boxes = torch.as_tensor(np.stack([d.box_xyxy for d in dets]), dtype=torch.float32)
            start = time.perf_counter()
            predictor.predict_torch(
                None,
                None,
                boxes=predictor.transform.apply_boxes_torch(boxes, predictor.original_size),
                multimask_output=True,
            )
            decode_t += time.perf_counter() - start
            boxes_done += len(dets)
    rows += [
        BenchRow(
            "sam vit_b embedding (random weights)",
            embed_t / len(frames_with_boxes),
            "s/frame",
            "classical, whole frame",
            ours_t / len(clip),
            higher_is_better=False,
        ),
        BenchRow(
            "sam vit_b decode, batched (random weights)",
            decode_t / boxes_done,
            "s/box",
            "classical, per mask",
            ours_t / n_masks,
            higher_is_better=False,
        ),
    ]
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
