"""From pseudo-label masks to training sets: quality filter, negatives, COCO, split.

- :func:`filter_mask` says why a mask should not be trusted (or ``None``);
- :func:`to_coco_dataset` keeps the accepted masks and adds negative examples
  (frames without detections, and background crops sampled away from every
  detection, written as PNG under ``out_dir/negatives/``);
- :func:`stratified_split` splits frames into train/val per camera, never putting
  one frame (or a negative crop of it) in both.
- :func:`with_reviewed` puts reviewed frames (imported from Label Studio) in place of
  their pseudo-labels in a training set (:func:`write_reviewed`: from and to COCO files).
- :func:`contact_sheet` draws crops with their mask outlines for a quick look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import read_image, relative_path, write_image
from aquapose.segmentation.masks import as_bool_mask, rle_area
from aquapose.segmentation.types import AnnotatedFrame, Detection, as_box_xyxy

#: Reasons :func:`filter_mask` can give, in the order they are checked.
REJECT_REASONS = ("low_score", "small_area", "low_fill", "high_fill", "low_contrast")


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of :func:`filter_mask`.

    Attributes:
        min_score: detections scored below this are rejected (``low_score``).
        min_area: masks with fewer pixels are rejected (``small_area``; empty masks too),
            unless ``min_area_ratio`` x the camera's median mask area is smaller: small
            fish lower the threshold (18 px zebrafish cover ~60 px; ratio 0 = off).
        min_area_ratio: see ``min_area``.
        min_fill, max_fill: allowed range of mask area / detection box area
            (``low_fill``: the mask lost most of the fish or caught a sliver;
            ``high_fill``: the mask fills the box like a rectangle, i.e. leaked
            into the background).
        min_contrast: with a background image, masks whose mean
            :func:`background_contrast` is lower are rejected (``low_contrast``): they
            hold floor, not fish (detector false positives, lighting changes).
    """

    min_score: float = 0.6
    min_area: int = 100
    min_area_ratio: float = 0.5
    min_fill: float = 0.05
    max_fill: float = 0.6
    min_contrast: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.min_contrast < 0:
            raise ValueError(f"min_contrast must be >= 0, got {self.min_contrast}")
        if self.min_area < 0 or self.min_area_ratio < 0:
            raise ValueError(
                f"min_area and min_area_ratio must be >= 0, got {self.min_area} and "
                f"{self.min_area_ratio}"
            )
        if not 0.0 <= self.min_fill < self.max_fill <= 1.0:
            raise ValueError(
                f"fill range must satisfy 0 <= min_fill < max_fill <= 1, got "
                f"[{self.min_fill}, {self.max_fill}]"
            )


def filter_mask(
    mask: np.ndarray,
    detection: Detection,
    config: FilterConfig | None = None,
    contrast: float | None = None,
    fish_area: float | None = None,
) -> str | None:
    """Why ``mask`` (bool (H, W) frame mask of ``detection``) is rejected, or None.

    ``contrast`` is the mask's mean :func:`background_contrast` when a background is
    known (the ``low_contrast`` check is skipped without it); ``fish_area`` the typical
    fish's mask area in this video (:func:`fish_areas`; the ``min_area_ratio`` check is
    skipped without it). Returns one of :data:`REJECT_REASONS`; the first failing check
    wins.
    """
    cfg = config or FilterConfig()
    m = as_bool_mask(mask)
    if detection.score < cfg.min_score:
        return "low_score"
    area = int(np.count_nonzero(m))
    min_area = float(cfg.min_area)
    if fish_area is not None and cfg.min_area_ratio > 0:
        min_area = min(min_area, cfg.min_area_ratio * fish_area)
    if area < max(min_area, 1):
        return "small_area"
    x0, y0, x1, y1 = detection.box_xyxy
    fill = area / max((x1 - x0) * (y1 - y0), 1e-9)
    if fill < cfg.min_fill:
        return "low_fill"
    if fill > cfg.max_fill:
        return "high_fill"
    if contrast is not None and contrast < cfg.min_contrast:
        return "low_contrast"
    return None


def fish_areas(frames: Sequence[AnnotatedFrame]) -> dict[str, float]:
    """Per camera: the median area (pixels) of its non-empty masks, the size of its fish."""
    areas: dict[str, list[int]] = {}
    for frame in frames:
        for inst in frame.instances:
            if inst.rle is not None and (area := rle_area(inst.rle)) > 0:
                areas.setdefault(frame.camera_id, []).append(area)
    return {camera: float(np.median(a)) for camera, a in areas.items()}


def background_contrast(frame_bgr: np.ndarray, background_bgr: np.ndarray) -> np.ndarray:
    """Per-pixel change from the background: ``max_c |frame_c / background_c - 1|``
    (B, G, R; 3x3 blurred), float32 (H, W). 0 on untouched floor, ~0.1-0.4 on a shadow,
    fish usually higher or with colour change."""
    if frame_bgr.shape != background_bgr.shape or frame_bgr.ndim != 3:
        raise ValueError(
            f"frame and background must be (H, W, 3) of one shape, got {frame_bgr.shape} "
            f"and {background_bgr.shape}"
        )
    frame = cv2.GaussianBlur(frame_bgr, (3, 3), 0).astype(np.float32) + 1.0
    background = cv2.GaussianBlur(background_bgr, (3, 3), 0).astype(np.float32) + 1.0
    return np.abs(frame / background - 1.0).max(axis=2)


# ----------------------------------------------------------------------------- paths


def _rebase(frame: AnnotatedFrame, image_root: Path, out_dir: Path) -> str:
    return relative_path(frame.resolve_image(image_root), out_dir)


# ----------------------------------------------------------------------------- review


@dataclass(frozen=True)
class ReviewedSet:
    """What :func:`with_reviewed` returns: the frames and how the review changed the set."""

    frames: list[AnnotatedFrame]
    replaced: int
    added: int


def with_reviewed(
    base: Sequence[AnnotatedFrame],
    base_dir: str | Path,
    reviewed: Sequence[AnnotatedFrame],
    reviewed_dir: str | Path,
    out_dir: str | Path,
) -> ReviewedSet:
    """``base`` with each reviewed frame in place of the base frame of the same image file,
    then the reviewed frames ``base`` lacks (e.g. frames whose every mask was rejected).

    A frame is matched by its image file (resolved against ``base_dir`` /
    ``reviewed_dir``); a replaced frame keeps its base ``image_id``, an added one gets
    a new id when its own is taken. Every ``image_path`` comes out relative to
    ``out_dir`` (the folder the result will be written to).
    """
    base_dir, reviewed_dir, out_dir = Path(base_dir), Path(reviewed_dir), Path(out_dir)
    by_image: dict[Path, AnnotatedFrame] = {}
    for frame in reviewed:
        path = frame.resolve_image(reviewed_dir).resolve()
        if path in by_image:
            raise ValueError(
                f"reviewed frames {by_image[path].image_id} and {frame.image_id} are both {path}"
            )
        by_image[path] = frame
    frames, used = [], set()
    for frame in base:
        path = frame.resolve_image(base_dir).resolve()
        review = by_image.get(path)
        if review is not None:
            used.add(path)
            frame = replace(review, image_id=frame.image_id)
        frames.append(replace(frame, image_path=relative_path(path, out_dir)))
    taken = {f.image_id for f in frames}
    next_id = 1 + max(taken, default=0)
    added = 0
    for path, frame in by_image.items():
        if path in used:
            continue
        image_id = frame.image_id
        if image_id in taken:
            image_id, next_id = next_id, next_id + 1
        taken.add(image_id)
        frames.append(replace(frame, image_id=image_id, image_path=relative_path(path, out_dir)))
        added += 1
    return ReviewedSet(frames, len(used), added)


def write_reviewed(
    onto: str | Path,
    reviewed: Sequence[AnnotatedFrame],
    reviewed_dir: str | Path,
    out: str | Path,
    info: dict[str, Any] | None = None,
) -> ReviewedSet:
    """Write ``out`` (COCO): the training set ``onto`` (a COCO file) with the ``reviewed``
    frames (image paths relative to ``reviewed_dir``) in place, see :func:`with_reviewed`."""
    onto, out = Path(onto), Path(out)
    merged = with_reviewed(read_coco(onto), onto.parent, reviewed, reviewed_dir, out.parent)
    write_coco(merged.frames, out, info=info)
    return merged


# ----------------------------------------------------------------------------- dataset


def _is_accepted(extra: dict[str, Any]) -> bool:
    return bool(extra.get("accepted", True))


def to_coco_dataset(
    frames: Sequence[AnnotatedFrame],
    out_dir: str | Path,
    image_root: str | Path,
    *,
    negative_fraction: float = 0.1,
    crop_size: int = 256,
    clearance: float = 16.0,
    seed: int = 0,
    max_tries: int = 50,
) -> list[AnnotatedFrame]:
    """Accepted masks plus negatives, as frames ready for :func:`write_coco` in ``out_dir``.

    Args:
        frames: pseudo-labelled frames; an instance counts when its ``extra`` has no
            ``accepted`` key or ``accepted`` is true. Every instance (accepted or not)
            marks a fish to keep negatives away from.
        out_dir: folder the dataset JSON files will be written to; ``file_name`` of
            every output frame is relative to it, negative crops go to
            ``out_dir/negatives/<camera_id>/<frame_index:06d>_<k>.png``.
        image_root: folder the input frames' ``image_path`` is relative to.
        negative_fraction: share of negatives among all output images (~0.1): frames
            without any detection first, then background crops of fish frames.
        crop_size: side of a negative crop (the training crop size), frame pixels;
            frames smaller than that give crops as large as they allow.
        clearance: a negative crop stays this many pixels away from every detection box.
        seed: seeds the choice of negatives.
    Returns:
        Positive frames (those with accepted masks, only the accepted instances;
        ``extra["rejected_boxes_xyxy"]`` lists the boxes of rejected ones,
        ``extra["rejected_reasons"]`` their ``reject_reason``) then
        negatives (``extra["negative"] = True``; crops also carry
        ``source_file_name`` and ``crop_box_xyxy``), with the source ``camera_id``,
        ``frame_index`` and ``video``. Negative crops get new image ids.
    """
    if not 0.0 <= negative_fraction < 1.0:
        raise ValueError(f"negative_fraction must be in [0, 1), got {negative_fraction}")
    if crop_size < 8:
        raise ValueError(f"crop_size must be >= 8, got {crop_size}")
    out_dir, image_root = Path(out_dir), Path(image_root)
    rng = np.random.default_rng(seed)

    positives, empty, fish_frames = _sort_frames(frames, image_root, out_dir)
    budget = _negative_budget(negative_fraction, len(positives), len(empty))
    order = rng.permutation(len(empty))[:budget]
    negatives = [empty[i] for i in sorted(order)]

    next_id = 1 + max((f.image_id for f in frames), default=0)
    counts: dict[tuple[str, int], int] = {}
    candidates = [f for f in fish_frames if min(f.width, f.height, crop_size) >= 32]
    tries = 0
    while len(negatives) < budget and candidates and tries < max_tries * budget:
        tries += 1
        frame = candidates[int(rng.integers(len(candidates)))]
        side = min(crop_size, frame.width, frame.height)
        window = _free_window(frame, side, clearance, rng, max_tries)
        if window is None:
            continue
        negatives.append(
            _negative_crop(frame, window, side, image_root, out_dir, counts, image_id=next_id)
        )
        next_id += 1
    return positives + negatives


def _sort_frames(
    frames: Sequence[AnnotatedFrame], image_root: Path, out_dir: Path
) -> tuple[list[AnnotatedFrame], list[AnnotatedFrame], list[AnnotatedFrame]]:
    """Positives (accepted instances only), empty frames (negatives), frames with fish."""
    positives: list[AnnotatedFrame] = []
    empty: list[AnnotatedFrame] = []
    fish_frames: list[AnnotatedFrame] = []
    for frame in frames:
        path = _rebase(frame, image_root, out_dir)
        if not frame.instances:
            empty.append(replace(frame, image_path=path, extra={**frame.extra, "negative": True}))
            continue
        fish_frames.append(frame)
        kept = tuple(i for i in frame.instances if _is_accepted(i.extra))
        if not kept:
            continue
        extra = dict(frame.extra)
        dropped = [i for i in frame.instances if not _is_accepted(i.extra)]
        if dropped:
            extra["rejected_boxes_xyxy"] = [i.box_xyxy.tolist() for i in dropped]
            extra["rejected_reasons"] = [i.extra.get("reject_reason") for i in dropped]
        positives.append(replace(frame, image_path=path, instances=kept, extra=extra))
    return positives, empty, fish_frames


def _negative_budget(negative_fraction: float, num_positives: int, num_empty: int) -> int:
    """How many negatives make ``negative_fraction`` of the output (all empties if no fish)."""
    budget = round(negative_fraction * num_positives / (1.0 - negative_fraction))
    if negative_fraction > 0 and num_positives and budget == 0:
        budget = 1
    if not num_positives:  # nothing to balance against: keep the empty frames as they are
        budget = num_empty
    return budget


def _negative_crop(
    frame: AnnotatedFrame,
    window: tuple[int, int],
    side: int,
    image_root: Path,
    out_dir: Path,
    counts: dict[tuple[str, int], int],
    *,
    image_id: int,
) -> AnnotatedFrame:
    """Write the ``side`` x ``side`` crop of ``frame`` at ``window``; its negative frame."""
    x0, y0 = window
    image = read_image(frame.resolve_image(image_root))
    if image.shape[:2] != (frame.height, frame.width):
        raise ValueError(
            f"{frame.resolve_image(image_root)}: image is {image.shape[1]}x{image.shape[0]}, "
            f"the COCO entry says {frame.width}x{frame.height}"
        )
    key = (frame.camera_id, frame.frame_index)
    k = counts.get(key, 0)
    counts[key] = k + 1
    crop_path = out_dir / "negatives" / frame.camera_id / f"{frame.frame_index:06d}_{k}.png"
    write_image(crop_path, image[y0 : y0 + side, x0 : x0 + side])
    return AnnotatedFrame(
        image_id=image_id,
        image_path=relative_path(crop_path, out_dir),
        width=side,
        height=side,
        camera_id=frame.camera_id,
        frame_index=frame.frame_index,
        video=frame.video,
        extra={
            "negative": True,
            "source_file_name": _rebase(frame, image_root, out_dir),
            "crop_box_xyxy": [x0, y0, x0 + side, y0 + side],
        },
    )


def _free_window(
    frame: AnnotatedFrame,
    crop_size: int,
    clearance: float,
    rng: np.random.Generator,
    max_tries: int,
) -> tuple[int, int] | None:
    """Top-left corner of a crop inside the frame that keeps ``clearance`` px from every box."""
    boxes = np.array([i.box_xyxy for i in frame.instances], dtype=np.float64).reshape(-1, 4)
    grown = boxes + np.array([-clearance, -clearance, clearance, clearance])
    for _ in range(max_tries):
        x0 = int(rng.integers(0, frame.width - crop_size + 1))
        y0 = int(rng.integers(0, frame.height - crop_size + 1))
        x1, y1 = x0 + crop_size, y0 + crop_size
        overlap = (grown[:, 0] < x1) & (grown[:, 2] > x0) & (grown[:, 1] < y1) & (grown[:, 3] > y0)
        if not overlap.any():
            return x0, y0
    return None


def stratified_split(
    frames: Sequence[AnnotatedFrame],
    val_fraction: float = 0.2,
    seed: int = 0,
    *,
    block_frames: int = 1,
) -> tuple[list[AnnotatedFrame], list[AnnotatedFrame]]:
    """Split frames into (train, val) per camera, seeded.

    Frames are grouped by (camera_id, video, frame_index // block_frames): a group
    goes wholly to one side, so a frame and the negative crops cut from it never
    straddle the split (``block_frames > 1`` also keeps neighbouring, near-identical
    frames together). Per camera, ``round(val_fraction * groups)`` groups go to val
    (at least one when the camera has two or more groups). Input order is kept.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    rng = np.random.default_rng(seed)

    def key(f: AnnotatedFrame) -> tuple[str, str, int]:
        return (f.camera_id, f.video, f.frame_index // block_frames)

    groups: dict[str, list[tuple[str, str, int]]] = {}
    for frame in frames:
        k = key(frame)
        camera_groups = groups.setdefault(frame.camera_id, [])
        if k not in camera_groups:
            camera_groups.append(k)
    val_keys: set[tuple[str, str, int]] = set()
    for camera in sorted(groups):
        keys = sorted(groups[camera])
        n = len(keys)
        n_val = round(val_fraction * n)
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        for i in rng.permutation(n)[:n_val]:
            val_keys.add(keys[int(i)])
    train = [f for f in frames if key(f) not in val_keys]
    val = [f for f in frames if key(f) in val_keys]
    return train, val


# ----------------------------------------------------------------------------- contact sheet


@dataclass(frozen=True)
class SheetItem:
    """One tile of a contact sheet: a frame, a mask of it, its box and a caption."""

    frame_bgr: np.ndarray
    mask: np.ndarray
    box_xyxy: np.ndarray
    caption: str = ""
    accepted: bool = True


def contact_sheet(items: Sequence[SheetItem], tile: int = 128, columns: int = 8) -> np.ndarray:
    """Grid of square crops around each box with the mask outline drawn
    (green: accepted, red: rejected) and the caption; uint8 BGR image."""
    if tile < 32 or columns < 1:
        raise ValueError(f"tile must be >= 32 and columns >= 1, got {tile} and {columns}")
    rows = max(1, -(-len(items) // columns))
    sheet = np.full((rows * tile, columns * tile, 3), 32, dtype=np.uint8)
    for n, item in enumerate(items):
        box = as_box_xyxy(item.box_xyxy)
        mask = as_bool_mask(item.mask)
        h, w = mask.shape
        side = max(box[2] - box[0], box[3] - box[1]) * 1.3 + 8
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        crop = item.frame_bgr[y0:y1, x0:x1]
        scale = tile / max(crop.shape[0], crop.shape[1], 1)
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        view = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(
            mask[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        colour = (0, 255, 0) if item.accepted else (0, 0, 255)
        cv2.drawContours(view, contours, -1, colour, 1)
        bx = [round((v - o) * scale) for v, o in zip(box, (x0, y0, x0, y0), strict=True)]
        cv2.rectangle(view, (bx[0], bx[1]), (bx[2] - 1, bx[3] - 1), (255, 200, 0), 1)
        r, c = divmod(n, columns)
        sheet[r * tile : r * tile + size[1], c * tile : c * tile + size[0]] = view
        if item.caption:
            org = (c * tile + 2, r * tile + tile - 4)
            cv2.putText(sheet, item.caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2)
            cv2.putText(sheet, item.caption, org, cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1)
    return sheet
