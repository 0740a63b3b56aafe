"""Score detections against ground truth: per-camera recall/precision, and recall on
flagged fish (``stationary``, ``low_contrast``, ``touching`` in the annotation's extra).
Unmatched detections that overlap a flagged fish are counted per flag too, so recall and
precision can leave touching fish out (:meth:`CameraDetectionStats.recall_without`,
:meth:`CameraDetectionStats.precision_without`).

Frames are joined by ``(camera_id, frame_index)``; within a frame, detections and
ground-truth fish are paired one-to-one by blob-mask IoU (Hungarian,
:func:`aquapose.segmentation.metrics.match_masks`), a pair counting when IoU >= the
threshold (0.3 by default: a blob mask is rough, it often carries the fish's shadow).
With ``min_coverage`` set, a pair counts when that fraction of the fish lies inside the
detection instead (the fish was found, whatever else the blob holds). Only frames
present in both files are scored (a detector run with ``--every N``
keeps one frame in N).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from aquapose.segmentation.io.coco import read_coco
from aquapose.segmentation.masks import rle_area, rle_iou_matrix
from aquapose.segmentation.metrics import Match, match_by_iou
from aquapose.segmentation.types import AnnotatedFrame, Instance

__all__ = [
    "DEFAULT_FLAGS",
    "CameraDetectionStats",
    "DetectionReport",
    "evaluate_detections",
]

#: Ground-truth annotation flags whose recall is reported separately.
DEFAULT_FLAGS = ("stationary", "low_contrast", "touching")


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class CameraDetectionStats:
    """Counts for one camera (or ``camera_id == "all"``) over the scored frames."""

    camera_id: str
    frames: int
    gt: int
    detections: int
    true_positives: int
    iou_sum: float = 0.0
    flag_gt: dict[str, int] = field(default_factory=dict)
    flag_tp: dict[str, int] = field(default_factory=dict)
    flag_fp: dict[str, int] = field(default_factory=dict)

    @property
    def false_positives(self) -> int:
        return self.detections - self.true_positives

    @property
    def false_negatives(self) -> int:
        return self.gt - self.true_positives

    @property
    def recall(self) -> float:
        """Matched ground-truth fish / ground-truth fish (nan without ground truth)."""
        return _ratio(self.true_positives, self.gt)

    @property
    def precision(self) -> float:
        """Matched detections / detections (nan without detections)."""
        return _ratio(self.true_positives, self.detections)

    @property
    def mean_iou(self) -> float:
        """Mean blob-mask IoU of the matched pairs."""
        return self.iou_sum / self.true_positives if self.true_positives else math.nan

    def flag_recall(self, flag: str) -> float:
        """Recall on ground-truth fish whose annotation has ``flag`` true (nan if none)."""
        return _ratio(self.flag_tp.get(flag, 0), self.flag_gt.get(flag, 0))

    def recall_without(self, flag: str) -> float:
        """Recall on ground-truth fish whose annotation does not have ``flag`` true."""
        return _ratio(
            self.true_positives - self.flag_tp.get(flag, 0), self.gt - self.flag_gt.get(flag, 0)
        )

    def precision_without(self, flag: str) -> float:
        """Precision leaving out the unmatched detections that overlap a ``flag`` fish
        (``flag_fp``; e.g. a blob holding two touching fish, reported apart)."""
        return _ratio(self.true_positives, self.detections - self.flag_fp.get(flag, 0))

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {
            "camera_id": self.camera_id,
            "frames": self.frames,
            "gt": self.gt,
            "detections": self.detections,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "recall": num(self.recall),
            "precision": num(self.precision),
            "mean_iou": num(self.mean_iou),
            "flags": {
                flag: {
                    "gt": self.flag_gt.get(flag, 0),
                    "true_positives": self.flag_tp.get(flag, 0),
                    "false_positives_overlapping": self.flag_fp.get(flag, 0),
                    "recall": num(self.flag_recall(flag)),
                }
                for flag in sorted(self.flag_gt)
            },
        }


@dataclass(frozen=True)
class DetectionReport:
    """Per-camera stats, their total, and what was (not) scored."""

    cameras: tuple[CameraDetectionStats, ...]
    total: CameraDetectionStats
    iou_threshold: float
    skip_warmup: int
    frames_without_ground_truth: int
    flags: tuple[str, ...] = DEFAULT_FLAGS
    min_coverage: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": "iou" if self.min_coverage is None else "coverage",
            "iou_threshold": self.iou_threshold,
            "min_coverage": self.min_coverage,
            "skip_warmup": self.skip_warmup,
            "frames_without_ground_truth": self.frames_without_ground_truth,
            "cameras": [c.to_dict() for c in self.cameras],
            "total": self.total.to_dict(),
        }


def _instance_rle(inst: Instance, height: int, width: int) -> dict[str, Any]:
    """The instance's mask RLE, or its box as a mask for box-only labels."""
    if inst.rle is not None:
        return inst.rle
    x0, y0, x1, y1 = (float(v) for v in inst.box_xyxy)
    box_xywh = np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=np.float64)
    rle = mask_utils.frPyObjects(box_xywh, height, width)[0]
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _load(frames: Any, what: str) -> list[AnnotatedFrame]:
    """Frames from a list of frames, one COCO path, or several COCO paths."""
    if isinstance(frames, (str, Path)):
        return list(read_coco(frames))
    items = list(frames)
    if all(isinstance(f, AnnotatedFrame) for f in items):
        return items
    if all(isinstance(f, (str, Path)) for f in items):
        out: list[AnnotatedFrame] = []
        for path in items:
            out.extend(read_coco(path))
        return out
    raise TypeError(f"{what} must be AnnotatedFrames or COCO file paths")


def _index(frames: list[AnnotatedFrame], what: str) -> dict[tuple[str, int], AnnotatedFrame]:
    index: dict[tuple[str, int], AnnotatedFrame] = {}
    for frame in frames:
        key = (frame.camera_id, frame.frame_index)
        if key in index:
            raise ValueError(
                f"{what}: camera {key[0]!r} frame {key[1]} appears twice; give each frame once"
            )
        index[key] = frame
    return index


def _match_by_coverage(
    gt_rles: list[dict[str, Any]], det_rles: list[dict[str, Any]], min_coverage: float
) -> list[Match]:
    """One-to-one pairs maximising the fraction of each fish inside its detection's mask.

    ``Match.iou`` holds the pair's IoU (not the coverage), so mean IoU stays comparable.
    """
    iou = rle_iou_matrix(gt_rles, det_rles)
    if iou.size == 0:
        return []
    gt_area = np.array([rle_area(r) for r in gt_rles], float)[:, None]
    det_area = np.array([rle_area(r) for r in det_rles], float)[None, :]
    inter = iou * (gt_area + det_area) / (1.0 + iou)
    coverage = inter / np.maximum(gt_area, 1.0)
    return [
        Match(m.gt_index, m.pred_index, float(iou[m.gt_index, m.pred_index]))
        for m in match_by_iou(coverage, min_coverage)
    ]


@dataclass(frozen=True)
class DetectionEvalConfig:
    """Settings of :func:`evaluate_detections` (``aquapose eval-detections --config``).

    Attributes:
        iou_threshold: minimum blob-mask IoU of a match.
        skip_warmup: frames with ``frame_index < skip_warmup`` are not scored.
        min_coverage: pair by the fraction of the fish inside the detection's mask
            instead of by IoU (see :func:`evaluate_detections`); None = IoU.
        flags: boolean annotation fields of the ground truth with their own recall.
    """

    iou_threshold: float = 0.3
    skip_warmup: int = 0
    min_coverage: float | None = None
    flags: tuple[str, ...] = DEFAULT_FLAGS


def evaluate_detections(
    detections: Sequence[AnnotatedFrame] | str | Path,
    ground_truth: Sequence[AnnotatedFrame] | str | Path | Sequence[str | Path],
    iou_threshold: float = 0.3,
    skip_warmup: int = 0,
    flags: Sequence[str] = DEFAULT_FLAGS,
    min_coverage: float | None = None,
) -> DetectionReport:
    """Match detections to ground-truth fish per frame and count, per camera.

    Args:
        detections: frames with predicted instances (e.g. ``aquapose detect``'s
            ``detections.json``), or its path.
        ground_truth: frames with labelled instances, or one or more COCO paths.
        iou_threshold: minimum blob-mask IoU of a match.
        skip_warmup: frames with ``frame_index < skip_warmup`` are not scored.
        flags: boolean annotation fields of the ground truth with their own recall.
        min_coverage: if given, pair by the fraction of each fish's mask inside the
            detection's mask (>= ``min_coverage``) instead of by IoU: "is the fish in a
            detection" (what a crop around the box needs), blind to a blob that also
            holds the fish's shadow.
    Raises:
        ValueError: bad arguments, duplicate frames, mismatched image sizes, or no
            frame in common.
    """
    _check_arguments(iou_threshold, min_coverage, skip_warmup)
    det_index = _index(_load(detections, "detections"), "detections")
    gt_index = _index(_load(ground_truth, "ground truth"), "ground truth")

    counts: dict[str, dict[str, Any]] = defaultdict(_new_counts)
    missing = 0
    for key in sorted(det_index):
        camera_id, frame_index = key
        if frame_index < skip_warmup:
            continue
        gt_frame = gt_index.get(key)
        if gt_frame is None:
            missing += 1
            continue
        _check_same_size(det_index[key], gt_frame)
        _count_frame(counts, det_index[key], gt_frame, iou_threshold, min_coverage, flags)
    if not counts:
        det_cams = sorted({k[0] for k in det_index})
        gt_cams = sorted({k[0] for k in gt_index})
        raise ValueError(
            "no detection frame matches a ground-truth frame by (camera_id, frame_index) "
            f"after skipping {skip_warmup} warm-up frames: detections have cameras {det_cams}, "
            f"ground truth has {gt_cams}"
        )

    cameras = tuple(_camera_stats(cam, counts[cam], flags) for cam in sorted(counts))
    return DetectionReport(
        cameras=cameras,
        total=_total_stats(cameras, flags),
        iou_threshold=float(iou_threshold),
        skip_warmup=skip_warmup,
        frames_without_ground_truth=missing,
        flags=tuple(flags),
        min_coverage=min_coverage,
    )


def _check_arguments(iou_threshold: float, min_coverage: float | None, skip_warmup: int) -> None:
    """Raise ValueError for an out-of-range threshold, coverage or warm-up."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if min_coverage is not None and not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    if isinstance(skip_warmup, bool) or not isinstance(skip_warmup, int) or skip_warmup < 0:
        raise ValueError(f"skip_warmup must be an int >= 0, got {skip_warmup!r}")


def _new_counts() -> dict[str, Any]:
    """One camera's running counts (frames, fish, detections, matches, flagged fish)."""
    return {
        "frames": 0,
        "gt": 0,
        "det": 0,
        "tp": 0,
        "iou": 0.0,
        "fgt": defaultdict(int),
        "ftp": defaultdict(int),
        "ffp": defaultdict(int),
    }


def _check_same_size(det_frame: AnnotatedFrame, gt_frame: AnnotatedFrame) -> None:
    """Raise ValueError when a frame's detections and ground truth differ in size."""
    if (det_frame.width, det_frame.height) != (gt_frame.width, gt_frame.height):
        raise ValueError(
            f"camera {gt_frame.camera_id!r} frame {gt_frame.frame_index}: detections are "
            f"{det_frame.width}x{det_frame.height} but ground truth is "
            f"{gt_frame.width}x{gt_frame.height}"
        )


def _count_frame(
    counts: dict[str, dict[str, Any]],
    det_frame: AnnotatedFrame,
    gt_frame: AnnotatedFrame,
    iou_threshold: float,
    min_coverage: float | None,
    flags: Sequence[str],
) -> None:
    """Pair one frame's detections with its fish and add to its camera's counts."""
    h, w = gt_frame.height, gt_frame.width
    gt_rles = [_instance_rle(i, h, w) for i in gt_frame.instances]
    det_rles = [_instance_rle(i, h, w) for i in det_frame.instances]
    overlap = rle_iou_matrix(gt_rles, det_rles)
    if min_coverage is None:
        matches = match_by_iou(overlap, iou_threshold)
    else:
        matches = _match_by_coverage(gt_rles, det_rles, min_coverage)
    matched_gt = {m.gt_index for m in matches}
    c = counts[gt_frame.camera_id]
    c["frames"] += 1
    c["gt"] += len(gt_rles)
    c["det"] += len(det_rles)
    c["tp"] += len(matches)
    c["iou"] += sum(m.iou for m in matches)
    for gi, inst in enumerate(gt_frame.instances):
        for flag in flags:
            if inst.extra.get(flag) is True:
                c["fgt"][flag] += 1
                c["ftp"][flag] += gi in matched_gt
    # Unmatched detections on a flagged fish (e.g. a blob holding two touching fish).
    matched_det = {m.pred_index for m in matches}
    for di in range(len(det_rles)):
        if di in matched_det or overlap.shape[0] == 0:
            continue
        touched = [gt_frame.instances[gi] for gi in np.flatnonzero(overlap[:, di] > 0)]
        for flag in flags:
            if any(inst.extra.get(flag) is True for inst in touched):
                c["ffp"][flag] += 1


def _camera_stats(camera_id: str, c: dict[str, Any], flags: Sequence[str]) -> CameraDetectionStats:
    """One camera's counts as a :class:`CameraDetectionStats`."""
    return CameraDetectionStats(
        camera_id=camera_id,
        frames=c["frames"],
        gt=c["gt"],
        detections=c["det"],
        true_positives=c["tp"],
        iou_sum=float(c["iou"]),
        flag_gt={f: int(c["fgt"].get(f, 0)) for f in flags},
        flag_tp={f: int(c["ftp"].get(f, 0)) for f in flags},
        flag_fp={f: int(c["ffp"].get(f, 0)) for f in flags},
    )


def _total_stats(
    cameras: tuple[CameraDetectionStats, ...], flags: Sequence[str]
) -> CameraDetectionStats:
    """The sum over the cameras (``camera_id="all"``)."""
    return CameraDetectionStats(
        camera_id="all",
        frames=sum(c.frames for c in cameras),
        gt=sum(c.gt for c in cameras),
        detections=sum(c.detections for c in cameras),
        true_positives=sum(c.true_positives for c in cameras),
        iou_sum=float(np.sum([c.iou_sum for c in cameras])),
        flag_gt={f: sum(c.flag_gt[f] for c in cameras) for f in flags},
        flag_tp={f: sum(c.flag_tp[f] for c in cameras) for f in flags},
        flag_fp={f: sum(c.flag_fp[f] for c in cameras) for f in flags},
    )
