"""One-to-one matching of ground truth and predictions by mask IoU (Hungarian)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from aquapose.segmentation.masks import rle_iou_matrix


@dataclass(frozen=True)
class Match:
    """A ground-truth index paired with a prediction index, and their IoU."""

    gt_index: int
    pred_index: int
    iou: float


def match_by_iou(iou: np.ndarray, threshold: float) -> list[Match]:
    """Pairs maximising total IoU, one-to-one; pairs below ``threshold`` are dropped.

    Args:
        iou: float (G, P) IoU of every ground-truth/prediction pair.
        threshold: minimum IoU for a pair to count as a match (e.g. 0.3 or 0.5).
    Returns:
        Matches sorted by ``gt_index``.
    """
    iou = np.asarray(iou, dtype=np.float64)
    if iou.ndim != 2:
        raise ValueError(f"iou must be a 2-D (G, P) matrix, got shape {iou.shape}")
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [
        Match(int(r), int(c), float(iou[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if iou[r, c] >= threshold and iou[r, c] > 0.0
    ]


def match_masks(
    gt_rles: list[dict[str, Any]], pred_rles: list[dict[str, Any]], threshold: float = 0.5
) -> list[Match]:
    """Hungarian matching of two lists of same-size COCO RLE masks by mask IoU."""
    return match_by_iou(rle_iou_matrix(gt_rles, pred_rles), threshold)
