"""Square crops around detections, and the one way back to the frame (``paste_mask``)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from aquapose.segmentation.masks import as_bool_mask
from aquapose.segmentation.types import CropRegion, EdgeMode, as_box_xyxy


def compute_crop_region(
    box_xyxy: Any,
    frame_size_wh: tuple[int, int],
    crop_size: int = 256,
    margin: float = 0.15,
) -> CropRegion:
    """A square window centred on a frame-space box.

    The window is ``crop_size`` frame pixels wide, or wider when the box plus
    ``margin`` (fraction of the box's longer side, on each side) does not fit; a
    wider window is downscaled to ``crop_size`` by :func:`extract_crop`. Near a frame
    edge the window is shifted inside the frame (``edge="shifted"``); only when the
    frame is smaller than the window does it reach outside and get zero-padded
    (``edge="padded"``).
    """
    box = as_box_xyxy(box_xyxy)
    frame_w, frame_h = (int(v) for v in frame_size_wh)
    if frame_w <= 0 or frame_h <= 0:
        raise ValueError(f"frame_size_wh must be positive (width, height), got {frame_size_wh}")
    if crop_size <= 0:
        raise ValueError(f"crop_size must be > 0, got {crop_size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    longest = max(box[2] - box[0], box[3] - box[1])
    size = max(crop_size, math.ceil(longest * (1.0 + 2.0 * margin)))
    centre_x, centre_y = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0

    edge: EdgeMode = "inside"
    corner = []
    for centre, limit in ((centre_x, frame_w), (centre_y, frame_h)):
        start = int(math.floor(centre - size / 2.0 + 0.5))
        if size > limit:
            edge = "padded"
        elif start < 0 or start + size > limit:
            start = min(max(start, 0), limit - size)
            if edge == "inside":
                edge = "shifted"
        corner.append(start)
    return CropRegion(
        x0=corner[0],
        y0=corner[1],
        size=size,
        frame_width=frame_w,
        frame_height=frame_h,
        crop_size=crop_size,
        edge=edge,
    )


def _window_overlap(region: CropRegion) -> tuple[slice, slice, slice, slice]:
    """Slices (frame_y, frame_x, window_y, window_x) of the window's part inside the frame."""
    fx0, fy0 = max(region.x0, 0), max(region.y0, 0)
    fx1 = min(region.x0 + region.size, region.frame_width)
    fy1 = min(region.y0 + region.size, region.frame_height)
    if fx1 <= fx0 or fy1 <= fy0:
        raise ValueError(f"crop region {region} does not overlap its frame")
    return (
        slice(fy0, fy1),
        slice(fx0, fx1),
        slice(fy0 - region.y0, fy1 - region.y0),
        slice(fx0 - region.x0, fx1 - region.x0),
    )


def extract_crop(frame: np.ndarray, region: CropRegion) -> np.ndarray:
    """Cut ``region`` out of ``frame``.

    Args:
        frame: (H, W) or (H, W, C) array of any dtype (bool masks included), with
            H, W equal to the region's frame size.
    Returns:
        (crop_size, crop_size[, C]) array of the same dtype; zeros where the window
        is outside the frame. Windows larger than the crop are downscaled (area
        averaging for images, nearest for bool masks).
    """
    if frame.ndim not in (2, 3):
        raise ValueError(f"frame must be (H, W) or (H, W, C), got shape {frame.shape}")
    if frame.shape[:2] != (region.frame_height, region.frame_width):
        raise ValueError(
            f"frame shape {frame.shape[:2]} (H, W) does not match the region's frame size "
            f"({region.frame_height}, {region.frame_width})"
        )
    fy, fx, wy, wx = _window_overlap(region)
    if region.edge != "padded" and region.size == region.crop_size:
        return frame[fy, fx].copy()
    window = np.zeros((region.size, region.size) + frame.shape[2:], dtype=frame.dtype)
    window[wy, wx] = frame[fy, fx]
    if region.size == region.crop_size:
        return window
    dsize = (region.crop_size, region.crop_size)
    if frame.dtype == bool:
        small = cv2.resize(window.view(np.uint8), dsize, interpolation=cv2.INTER_NEAREST)
        return small.astype(bool)
    return cv2.resize(window, dsize, interpolation=cv2.INTER_AREA)


def paste_mask(crop_mask: np.ndarray, region: CropRegion) -> np.ndarray:
    """Map a crop-space mask back to a frame-space bool mask (frame_height, frame_width).

    The exact inverse of :func:`extract_crop` for unscaled windows; for downscaled
    windows the mask is upsampled (bilinear, threshold 0.5). Pixels of the crop
    that lie outside the frame (padding) are dropped.
    """
    mask = as_bool_mask(crop_mask, "crop_mask")
    if mask.shape != (region.crop_size, region.crop_size):
        raise ValueError(
            f"crop_mask must have shape ({region.crop_size}, {region.crop_size}), got {mask.shape}"
        )
    if region.size != region.crop_size:
        up = cv2.resize(
            mask.astype(np.float32), (region.size, region.size), interpolation=cv2.INTER_LINEAR
        )
        mask = up >= 0.5
    frame_mask = np.zeros((region.frame_height, region.frame_width), dtype=bool)
    fy, fx, wy, wx = _window_overlap(region)
    frame_mask[fy, fx] = mask[wy, wx]
    return frame_mask
