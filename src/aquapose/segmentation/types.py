"""Hand-off types between the stages. This module imports no stage (only mask helpers).

Conventions (see DESIGN.md):
- boxes are ``xyxy`` float in *frame* pixels unless the name says ``crop_``;
  ``x1``/``y1`` are exclusive pixel edges, so a one-pixel mask at (x, y) has box
  ``(x, y, x + 1, y + 1)``;
- masks are bool ``(H, W)`` arrays inside the code; COCO RLE dicts only at the
  edges (files, results), see :mod:`aquapose.segmentation.masks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aquapose.segmentation.masks import as_bool_mask, decode_rle

EdgeMode = Literal["inside", "shifted", "padded"]


def as_box_xyxy(box: Any, name: str = "box_xyxy") -> np.ndarray:
    """Validate and return a box as float64 ``(4,)`` ``[x0, y0, x1, y1]`` with x1 > x0, y1 > y0."""
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape != (4,):
        raise ValueError(f"{name} must have shape (4,) as [x0, y0, x1, y1], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise ValueError(f"{name} must have x1 > x0 and y1 > y0 (xyxy), got {arr.tolist()}")
    return arr


def _check_frame_ref(camera_id: str, frame_index: int) -> None:
    if not isinstance(camera_id, str) or not camera_id:
        raise ValueError(f"camera_id must be a non-empty str, got {camera_id!r}")
    if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
        raise TypeError(f"frame_index must be an int, got {type(frame_index).__name__}")
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")


@dataclass(frozen=True, eq=False)
class Detection:
    """One foreground blob found by the detector in one frame.

    The blob is kept in its window, not as a full-frame array (a 1600x1200 frame mask is
    1.9 MB; a fish's window a few kB): ``window_mask[r, c]`` is frame pixel
    ``(x, y) = (window_xy[0] + c, window_xy[1] + r)``. :attr:`blob_mask` builds the
    frame-space mask for consumers that need one;
    :func:`~aquapose.segmentation.masks.window_rle` encodes the window straight to the
    frame-space COCO RLE.

    Attributes:
        box_xyxy: float64 (4,), frame pixels.
        score: detection confidence in [0, 1].
        camera_id: camera the frame came from.
        frame_index: index of the frame in its video (0-based).
        window_mask: optional bool (h, w) mask of the blob in its window (window space);
            the window holds all of the blob and lies inside the frame (it need not be
            tight, and may be empty (0, 0) for an empty blob).
        window_xy: (x0, y0) int frame pixels of the window's top-left pixel.
        frame_hw: (H, W) of the frame; required with ``window_mask``.
    """

    box_xyxy: np.ndarray
    score: float
    camera_id: str
    frame_index: int
    window_mask: np.ndarray | None = None
    window_xy: tuple[int, int] = (0, 0)
    frame_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box_xyxy", as_box_xyxy(self.box_xyxy))
        if not 0.0 <= float(self.score) <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        object.__setattr__(self, "score", float(self.score))
        _check_frame_ref(self.camera_id, self.frame_index)
        object.__setattr__(self, "window_xy", _int_pair(self.window_xy, "window_xy", 0))
        if self.frame_hw is not None:
            object.__setattr__(self, "frame_hw", _int_pair(self.frame_hw, "frame_hw", 1))
        if self.window_mask is None:
            return
        window = as_bool_mask(self.window_mask, "window_mask")
        object.__setattr__(self, "window_mask", window)
        if self.frame_hw is None:
            raise ValueError("frame_hw (H, W) is required with window_mask")
        (x0, y0), (h, w) = self.window_xy, window.shape
        if y0 + h > self.frame_hw[0] or x0 + w > self.frame_hw[1]:
            raise ValueError(
                f"window_mask of shape {window.shape} at window_xy {self.window_xy} reaches "
                f"outside the (H, W) {self.frame_hw} frame"
            )

    @classmethod
    def from_frame_mask(
        cls,
        box_xyxy: Any,
        score: float,
        camera_id: str,
        frame_index: int,
        frame_mask: np.ndarray | None,
    ) -> Detection:
        """A detection whose blob is given as a frame-space bool (H, W) mask (kept as the
        window of its bounding box); None: no blob mask."""
        if frame_mask is None:
            return cls(box_xyxy, score, camera_id, frame_index)
        mask = as_bool_mask(frame_mask, "frame_mask")
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        window: np.ndarray = np.zeros((0, 0), bool)
        xy = (0, 0)
        if rows.size:
            window = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
            xy = (int(cols[0]), int(rows[0]))
        return cls(box_xyxy, score, camera_id, frame_index, window, xy, mask.shape)

    @property
    def blob_mask(self) -> np.ndarray | None:
        """Frame-space bool (H, W) mask of the blob (a new full-frame array on each call;
        prefer ``window_mask``), or None without a mask."""
        if self.window_mask is None or self.frame_hw is None:
            return None
        frame_mask = np.zeros(self.frame_hw, dtype=bool)
        (x0, y0), (h, w) = self.window_xy, self.window_mask.shape
        frame_mask[y0 : y0 + h, x0 : x0 + w] = self.window_mask
        return frame_mask


def _int_pair(value: Any, name: str, low: int) -> tuple[int, int]:
    """``value`` as a tuple of two ints >= ``low``."""
    pair = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else ()
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low for v in pair
    ):
        raise ValueError(f"{name} must be two ints >= {low}, got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class CropRegion:
    """A square window of a frame, resampled to ``crop_size`` x ``crop_size`` pixels.

    ``(x0, y0)`` is the window's top-left corner in frame pixels and ``size`` its side
    in frame pixels; the window may reach outside the frame (``edge == "padded"``),
    in which case the crop is zero-padded there. ``size > crop_size`` means the crop
    is a downscaled view of a large fish. Map crop-space masks back with
    :func:`aquapose.segmentation.crops.paste_mask`.
    """

    x0: int
    y0: int
    size: int
    frame_width: int
    frame_height: int
    crop_size: int = 256
    edge: EdgeMode = "inside"

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "size", "frame_width", "frame_height", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"CropRegion.{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("size", "frame_width", "frame_height", "crop_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CropRegion.{name} must be > 0, got {getattr(self, name)}")
        if self.size < self.crop_size:
            raise ValueError(
                f"CropRegion.size ({self.size}) must be >= crop_size ({self.crop_size}): "
                "crops are never upsampled"
            )
        if self.edge not in ("inside", "shifted", "padded"):
            raise ValueError(f"CropRegion.edge must be inside/shifted/padded, got {self.edge!r}")

    @property
    def box_xyxy(self) -> np.ndarray:
        """The window in frame pixels, float64 (4,)."""
        return np.array([self.x0, self.y0, self.x0 + self.size, self.y0 + self.size], float)

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel (1.0 unless the window was larger than the crop)."""
        return self.crop_size / self.size

    @property
    def frame_size_wh(self) -> tuple[int, int]:
        return self.frame_width, self.frame_height

    def crop_to_frame_xyxy(self, crop_box_xyxy: Any) -> np.ndarray:
        """Map a crop-space ``xyxy`` box to frame space (float64 (4,))."""
        box = np.asarray(crop_box_xyxy, dtype=np.float64) / self.scale
        return box + np.array([self.x0, self.y0, self.x0, self.y0], float)

    def frame_to_crop_xyxy(self, box_xyxy: Any) -> np.ndarray:
        """Map a frame-space ``xyxy`` box to crop space (float64 (4,), not clipped)."""
        box = np.asarray(box_xyxy, dtype=np.float64)
        return (box - np.array([self.x0, self.y0, self.x0, self.y0], float)) * self.scale


@dataclass(frozen=True, eq=False)
class SegmentationResult:
    """One predicted fish in one crop.

    Attributes:
        crop_box_xyxy: float64 (4,), crop pixels.
        crop_rle: COCO compressed RLE (``{"size": [h, w], "counts": str}``) of the
            crop-space mask.
        confidence: model score in [0, 1].
        label: class name, ``"fish"``.
        region: where the crop came from; ``paste_mask(mask, region)`` maps it back.
    """

    crop_box_xyxy: np.ndarray
    crop_rle: dict[str, Any]
    confidence: float
    region: CropRegion
    label: str = "fish"

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_box_xyxy", as_box_xyxy(self.crop_box_xyxy, "crop_box_xyxy"))
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        if not isinstance(self.region, CropRegion):
            raise TypeError(f"region must be a CropRegion, got {type(self.region).__name__}")
        if not isinstance(self.crop_rle, dict) or "size" not in self.crop_rle:
            raise ValueError("crop_rle must be a COCO RLE dict with 'size' and 'counts'")
        if list(self.crop_rle["size"]) != [self.region.crop_size, self.region.crop_size]:
            raise ValueError(
                f"crop_rle size {list(self.crop_rle['size'])} does not match the region's "
                f"crop_size {self.region.crop_size}"
            )


@dataclass(frozen=True, eq=False)
class Instance:
    """One fish in one frame: a human/ground-truth label (``score is None``) or a
    prediction (``score`` set).

    Attributes:
        box_xyxy: float64 (4,), frame pixels.
        rle: COCO compressed RLE of the frame-space mask, or None for box-only labels.
        score: prediction confidence, None for labels.
        fish_id: identity stable over time (ground truth), if known.
        extra: other per-annotation COCO fields, kept through read/write
            (e.g. ``stationary``, ``low_contrast``, ``reject_reason``).
    """

    box_xyxy: np.ndarray
    rle: dict[str, Any] | None = None
    score: float | None = None
    fish_id: int | None = None
    category: str = "fish"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "box_xyxy", as_box_xyxy(self.box_xyxy))
        if self.score is not None:
            object.__setattr__(self, "score", float(self.score))

    @property
    def is_prediction(self) -> bool:
        return self.score is not None

    def mask(self) -> np.ndarray:
        """Frame-space bool (H, W) mask, decoded from ``rle``."""
        if self.rle is None:
            raise ValueError("this instance has no mask (box-only label)")
        return decode_rle(self.rle)


@dataclass(frozen=True, eq=False)
class AnnotatedFrame:
    """One image (a video frame) and the fish in it.

    ``image_path`` is the COCO ``file_name``: relative to the COCO file's folder
    (or to a given image root), or absolute. ``video`` is the source video's path
    or name, ``frame_index`` the frame's index in it.
    """

    image_id: int
    image_path: str
    width: int
    height: int
    camera_id: str
    frame_index: int
    video: str = ""
    instances: tuple[Instance, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_frame_ref(self.camera_id, self.frame_index)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        object.__setattr__(self, "instances", tuple(self.instances))
        for inst in self.instances:
            if inst.rle is not None and list(inst.rle["size"]) != [self.height, self.width]:
                raise ValueError(
                    f"image {self.image_id}: instance mask size {list(inst.rle['size'])} "
                    f"does not match the image's [height, width] [{self.height}, {self.width}]"
                )

    def resolve_image(self, root: str | Path) -> Path:
        """Absolute path of the image file, ``image_path`` resolved against ``root``."""
        path = Path(self.image_path)
        return path if path.is_absolute() else Path(root) / path
