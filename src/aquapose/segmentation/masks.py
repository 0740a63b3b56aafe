"""Mask helpers: COCO RLE through pycocotools, IoU, connected components, boxes.

Masks are bool ``(H, W)``; RLE dicts are COCO *compressed* RLE with ``counts`` as
``str`` so they can be written to JSON as they are.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def as_bool_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """Validate a 2-D mask and return it as bool.

    Accepts bool arrays and integer arrays holding only {0, 1} or {0, 255}; refuses
    anything else rather than guess a threshold (pass ``mask > t`` yourself).
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be bool or integer 0/1 or 0/255, got dtype {arr.dtype}")
    values = np.unique(arr)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = values[:6].tolist()
        raise ValueError(
            f"{name} must hold only 0/1 or 0/255, got values {shown}; pass mask.astype(bool) "
            "or threshold it yourself"
        )
    return arr != 0


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Bool (H, W) mask -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    m = as_bool_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(m, dtype=np.uint8))
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": rle["counts"].decode("ascii"),
    }


def window_rle(
    window_mask: np.ndarray, window_xy: tuple[int, int], frame_hw: tuple[int, int]
) -> dict[str, Any]:
    """COCO compressed RLE of a frame-space mask that is all False outside a window.

    Equal to ``encode_rle(frame_mask)`` where ``frame_mask`` is (H, W) = ``frame_hw``,
    zero but for ``window_mask`` (bool (h, w)) pasted with its top-left pixel at frame
    pixel ``window_xy`` = (x0, y0); only the window is scanned.
    """
    window = as_bool_mask(window_mask, "window_mask")
    frame_h, frame_w = (int(v) for v in frame_hw)
    x0, y0 = (int(v) for v in window_xy)
    h, w = window.shape
    if x0 < 0 or y0 < 0 or y0 + h > frame_h or x0 + w > frame_w:
        raise ValueError(
            f"window_mask of shape {window.shape} at {(x0, y0)} reaches outside the "
            f"(H, W) {(frame_h, frame_w)} frame"
        )
    # Column-major runs inside the window, one zero-padded column at a time.
    cols = np.zeros((w, h + 2), dtype=np.int8)
    cols[:, 1:-1] = window.T
    change = np.diff(cols, axis=1)
    start_c, start_r = np.nonzero(change == 1)
    end_c, end_r = np.nonzero(change == -1)
    starts = (x0 + start_c).astype(np.int64) * frame_h + y0 + start_r
    ends = (x0 + end_c).astype(np.int64) * frame_h + y0 + end_r
    if starts.size:
        # Join runs that continue from the bottom of one column to the top of the next.
        keep = np.ones(starts.size, dtype=bool)
        keep[1:] = starts[1:] != ends[:-1]
        keep_end = np.ones(ends.size, dtype=bool)
        keep_end[:-1] = keep[1:]
        starts, ends = starts[keep], ends[keep_end]
    edges = np.empty(2 * starts.size + 2, dtype=np.int64)
    edges[0] = 0
    edges[1:-1:2] = starts
    edges[2:-1:2] = ends
    edges[-1] = frame_h * frame_w
    counts = np.diff(edges).tolist()
    if len(counts) > 1 and counts[-1] == 0:
        counts.pop()  # a mask ending on the last pixel: pycocotools writes no empty last run
    rle = mask_utils.frPyObjects({"size": [frame_h, frame_w], "counts": counts}, frame_h, frame_w)
    return {"size": [frame_h, frame_w], "counts": rle["counts"].decode("ascii")}


def _to_coco_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Any COCO RLE dict (compressed str/bytes or uncompressed list) -> pycocotools' form."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("RLE must be a dict with 'size' [H, W] and 'counts'")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in size)
    ):
        raise ValueError(f"RLE 'size' must be [H, W] non-negative ints, got {size!r}")
    counts = rle["counts"]
    h, w = int(size[0]), int(size[1])
    if isinstance(counts, list):
        if sum(counts) != h * w or any(c < 0 for c in counts):
            raise ValueError(f"uncompressed RLE counts must be >= 0 and sum to H*W={h * w}")
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise ValueError(f"RLE 'counts' must be str, bytes or list, got {type(counts).__name__}")
    return {"size": [h, w], "counts": counts}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed or uncompressed) -> bool (H, W) mask.

    Raises ValueError when the counts do not decode to exactly H*W pixels.
    """
    coco = _to_coco_rle(rle)
    h, w = coco["size"]
    # pycocotools does not validate compressed counts (a bad string overruns its
    # buffer): check the total run length first.
    try:
        area_check = _run_length_total(coco["counts"])
    except ValueError as err:
        raise ValueError(f"RLE counts are corrupt: {err}") from None
    if area_check != h * w:
        raise ValueError(f"RLE counts cover {area_check} pixels, expected H*W = {h}*{w} = {h * w}")
    return mask_utils.decode(coco).astype(bool)


def _run_length_total(counts: bytes) -> int:
    """Sum of the run lengths in a COCO compressed counts string (LEB128-like, see maskApi.c)."""
    total, i, n = 0, 0, len(counts)
    runs: list[int] = []
    while i < n:
        x, k, more = 0, 0, True
        while more:
            if i >= n:
                raise ValueError("truncated counts string")
            c = counts[i] - 48
            if c < 0 or c > 63:
                raise ValueError(f"invalid character {chr(counts[i])!r} in counts")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise ValueError("negative run length")
        runs.append(x)
        total += x
    return total


def rle_union(rles: list[dict[str, Any]]) -> dict[str, Any]:
    """Union of same-size COCO RLE masks, as compressed RLE (no decoding)."""
    if not rles:
        raise ValueError("rle_union needs at least one RLE")
    merged = mask_utils.merge([_to_coco_rle(r) for r in rles], intersect=False)
    return {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of a COCO RLE."""
    return int(mask_utils.area(_to_coco_rle(rle)))


def rle_to_box_xyxy(rle: dict[str, Any]) -> np.ndarray:
    """Tight ``xyxy`` box (x1/y1 exclusive) of a COCO RLE; raises ValueError if empty."""
    if rle_area(rle) == 0:
        raise ValueError("cannot compute the box of an empty mask")
    x, y, w, h = mask_utils.toBbox(_to_coco_rle(rle)).tolist()
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def mask_to_box_xyxy(mask: np.ndarray) -> np.ndarray:
    """Tight ``xyxy`` box of a bool mask, float64 (4,), x1/y1 exclusive.

    Raises ValueError for an empty mask (there is no box to return).
    """
    m = as_bool_mask(mask)
    ys = np.flatnonzero(m.any(axis=1))
    xs = np.flatnonzero(m.any(axis=0))
    if ys.size == 0:
        raise ValueError("cannot compute the box of an empty mask")
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two same-shape bool masks; 0.0 when both are empty."""
    ma, mb = as_bool_mask(a, "a"), as_bool_mask(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"masks must have the same shape, got {ma.shape} and {mb.shape}")
    union = np.count_nonzero(ma | mb)
    return 0.0 if union == 0 else np.count_nonzero(ma & mb) / union


def rle_iou_matrix(gt: list[dict[str, Any]], pred: list[dict[str, Any]]) -> np.ndarray:
    """IoU of every (gt, pred) pair of COCO RLEs, float64 ``(len(gt), len(pred))``."""
    if not gt or not pred:
        return np.zeros((len(gt), len(pred)), dtype=np.float64)
    g = [_to_coco_rle(r) for r in gt]
    p = [_to_coco_rle(r) for r in pred]
    sizes = {tuple(r["size"]) for r in g + p}
    if len(sizes) != 1:
        raise ValueError(f"all masks must have the same size, got {sorted(sizes)}")
    # pycocotools.iou(dt, gt, iscrowd) returns (len(dt), len(gt)).
    iou = mask_utils.iou(p, g, [0] * len(g))
    return np.asarray(iou, dtype=np.float64).reshape(len(p), len(g)).T


def largest_component(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Keep the largest connected component of a bool mask (empty stays empty)."""
    m = as_bool_mask(mask)
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        m.astype(np.uint8), connectivity=connectivity
    )
    if n <= 2:  # background only, or a single component
        return m.copy()
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest
