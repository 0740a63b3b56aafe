"""Drawing on frames: mask outlines and boxes (the overlays of ``detect``, ``segment``
and the report). Images are uint8 (H, W, 3) BGR; masks bool (H, W); boxes xyxy.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["BOX_COLOR", "GT_COLOR", "PRED_COLOR", "draw_boxes", "overlay_masks"]

#: BGR colours of the overlays: ground truth green, prediction magenta, boxes green.
GT_COLOR = (60, 220, 60)
PRED_COLOR = (230, 40, 230)
BOX_COLOR = (0, 255, 0)


def overlay_masks(
    image_bgr: np.ndarray,
    gt_masks: Sequence[np.ndarray] = (),
    pred_masks: Sequence[np.ndarray] = (),
    thickness: int = 2,
) -> np.ndarray:
    """Draw ground-truth (green) and predicted (magenta, lightly filled) mask outlines.

    Args:
        image_bgr: uint8 (H, W, 3).
        gt_masks, pred_masks: bool (H, W) frame masks.
    Returns:
        uint8 (H, W, 3) copy with the outlines drawn.
    """
    out = image_bgr.copy()
    for mask in pred_masks:
        tint = out[mask].astype(np.float32) * 0.7 + np.array(PRED_COLOR, np.float32) * 0.3
        out[mask] = tint.astype(np.uint8)
    for masks, color in ((gt_masks, GT_COLOR), (pred_masks, PRED_COLOR)):
        for mask in masks:
            contours, _ = cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
            )
            cv2.drawContours(out, contours, -1, color, thickness)
    return out


def draw_boxes(
    image_bgr: np.ndarray, boxes_xyxy: Sequence[np.ndarray], thickness: int = 2
) -> np.ndarray:
    """A copy of ``image_bgr`` with each frame-space xyxy box drawn (exclusive x1/y1)."""
    out = image_bgr.copy()
    for box in boxes_xyxy:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOR, thickness)
    return out
