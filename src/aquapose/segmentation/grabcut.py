"""GrabCut seeded by a blob: the weight-free pseudo-labeler and ``segment``'s mask refiner.

Per box, GrabCut runs in a small window around it, initialised from a seed mask (the
detector's blob, or a model's mask): the seed is probable fish, its distance-transform
core sure fish, the box's other pixels probable background, the window outside the
box background. Holes are filled and the largest connected component kept. Without a
seed it falls back to a plain box initialisation. With ``ClassicalConfig(shadow_model=True)``
and the camera's background image, seed pixels that look like a shadow (floor darkened
evenly in B, G, R) become probable background, pixels no shadow can explain become
sure fish, and GrabCut models frame/background ratios instead of colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from aquapose.segmentation.masks import largest_component

__all__ = ["ClassicalConfig", "GrabCutSegmenter"]


@dataclass(frozen=True)
class ClassicalConfig:
    """Settings of the weight-free ``classical`` backend (GrabCut seeded by the blob).

    Attributes:
        context: window margin around the box, as a fraction of the box's longer
            side (the margin is sure background and feeds GrabCut's background model).
        max_side: windows whose longer side exceeds this many pixels are downscaled
            to it (GrabCut's cost grows with the pixel count).
        iterations: GrabCut iterations.
        core_fraction: blob pixels whose distance to the blob's edge is at least this
            fraction of the blob's largest distance are *sure* fish (a small core: the
            blob also holds shadow and halo, GrabCut decides the rest).
        box_core_fraction: the same for a detection without a blob (core of the box).
        close_fraction: morphological closing kernel, as a fraction of the box's
            longer side, applied before filling holes (joins stripes of a fish).
        shadow_min, shadow_max, shadow_spread: with a background image, a blob pixel
            whose frame/background ratio (mean over B, G, R) lies in
            (shadow_min, shadow_max) and whose ratios differ by less than
            ``shadow_spread`` looks like shadow: probable background.
        fish_bright, fish_spread: a blob pixel brighter than ``fish_bright`` x the
            background, darker than ``shadow_min`` x, or with a colour change (ratio
            spread) above ``fish_spread`` is sure fish.
        spread_gain: scale of the ratio spread in the feature image GrabCut models
            when a background is given.
        shadow_model: use the background image in the seeding (the shadow / ratio
            model above). Off by default: with faint shadows, plain colour GrabCut
            seeded by the blob fits the fish better (demo mean IoU 0.70 vs 0.66 on
            true fish); the background still feeds the ``low_contrast`` filter.
    """

    context: float = 0.15
    max_side: int = 160
    iterations: int = 3
    core_fraction: float = 0.75
    box_core_fraction: float = 0.5
    close_fraction: float = 0.05
    shadow_min: float = 0.45
    shadow_max: float = 0.97
    shadow_spread: float = 0.03
    fish_bright: float = 1.08
    fish_spread: float = 0.12
    spread_gain: float = 1500.0
    shadow_model: bool = False

    def __post_init__(self) -> None:
        if self.context < 0:
            raise ValueError(f"context must be >= 0, got {self.context}")
        if self.max_side < 16:
            raise ValueError(f"max_side must be >= 16 pixels, got {self.max_side}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 0.0 < self.core_fraction <= 1.0:
            raise ValueError(f"core_fraction must be in (0, 1], got {self.core_fraction}")
        if not 0.0 < self.box_core_fraction <= 1.0:
            raise ValueError(f"box_core_fraction must be in (0, 1], got {self.box_core_fraction}")
        if not 0.0 <= self.close_fraction < 1.0:
            raise ValueError(f"close_fraction must be in [0, 1), got {self.close_fraction}")


def _window(box: np.ndarray, frame_hw: tuple[int, int], context: float) -> tuple[int, ...]:
    """Integer window ``(x0, y0, x1, y1)`` around a box, clipped to the frame."""
    h, w = frame_hw
    margin = context * float(max(box[2] - box[0], box[3] - box[1])) + 2.0
    x0 = max(0, int(math.floor(box[0] - margin)))
    y0 = max(0, int(math.floor(box[1] - margin)))
    x1 = min(w, int(math.ceil(box[2] + margin)))
    y1 = min(h, int(math.ceil(box[3] + margin)))
    return x0, y0, x1, y1


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Bool mask with every enclosed background hole filled."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8), (0, 0), 1)
    return ((padded == 1) | (flood == 0))[1:-1, 1:-1]


def _close(mask: np.ndarray, k: int) -> np.ndarray:
    if k < 3:
        return mask
    k |= 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), k, k, k, k, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)
    return closed[k:-k, k:-k].astype(bool)


class GrabCutSegmenter:
    """One mask per box: GrabCut in a (downscaled) window; see :class:`ClassicalConfig`.

    The weight-free pseudo-labeler (``SAMPseudoLabeler("classical")``) and the mask
    refiner of ``segment`` (seeded by the model's masks) are both this.
    """

    def __init__(self, config: ClassicalConfig) -> None:
        self.config = config

    def predict(
        self,
        frame_bgr: np.ndarray,
        boxes_xyxy: np.ndarray,
        blob_masks: Sequence[np.ndarray | None],
        background_bgr: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        frame_hw = (frame_bgr.shape[0], frame_bgr.shape[1])
        if not self.config.shadow_model:
            background_bgr = None
        out = []
        for i, box in enumerate(boxes_xyxy):
            others = [m for j, m in enumerate(blob_masks) if j != i and m is not None]
            out.append(self._one(frame_bgr, box, blob_masks[i], others, frame_hw, background_bgr))
        return out

    def _one(
        self,
        frame_bgr: np.ndarray,
        box: np.ndarray,
        blob: np.ndarray | None,
        other_blobs: list[np.ndarray],
        frame_hw: tuple[int, int],
        background_bgr: np.ndarray | None = None,
    ) -> np.ndarray:
        cfg = self.config
        wx0, wy0, wx1, wy1 = _window(box, frame_hw, cfg.context)
        frame_mask = np.zeros(frame_hw, dtype=bool)
        if wx1 - wx0 < 2 or wy1 - wy0 < 2:
            return frame_mask
        image = frame_bgr[wy0:wy1, wx0:wx1]
        bg_win = None if background_bgr is None else background_bgr[wy0:wy1, wx0:wx1]
        scale = min(1.0, cfg.max_side / max(image.shape[:2]))
        small_wh = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        if scale < 1.0:
            image = cv2.resize(image, small_wh, interpolation=cv2.INTER_AREA)
            if bg_win is not None:
                bg_win = cv2.resize(bg_win, small_wh, interpolation=cv2.INTER_AREA)
        image = np.ascontiguousarray(image)

        def to_small(m: np.ndarray) -> np.ndarray:
            sub = m[wy0:wy1, wx0:wx1]
            if scale == 1.0:
                return sub
            return cv2.resize(sub.astype(np.uint8), small_wh, interpolation=cv2.INTER_NEAREST) > 0

        # Box in window pixels (rounded outwards so a thin box keeps >= 1 pixel).
        bx0 = int(math.floor((box[0] - wx0) * scale))
        by0 = int(math.floor((box[1] - wy0) * scale))
        bx1 = max(bx0 + 1, int(math.ceil((box[2] - wx0) * scale)))
        by1 = max(by0 + 1, int(math.ceil((box[3] - wy0) * scale)))
        in_box = np.zeros(image.shape[:2], dtype=bool)
        in_box[by0:by1, bx0:bx1] = True

        gc = np.full(image.shape[:2], cv2.GC_BGD, dtype=np.uint8)
        gc[in_box] = cv2.GC_PR_BGD
        small_blob = None if blob is None else to_small(blob) & in_box
        core_fraction = cfg.core_fraction
        if small_blob is None or not small_blob.any():
            gc[in_box] = cv2.GC_PR_FGD
            small_blob = in_box
            core_fraction = cfg.box_core_fraction
        else:
            gc[small_blob] = cv2.GC_PR_FGD
        sure = None
        if bg_win is not None:
            image, sure = self._shadow_model(image, bg_win, small_blob, gc)
        if sure is None:
            dist = cv2.distanceTransform(np.pad(small_blob, 1).astype(np.uint8), cv2.DIST_L2, 3)
            dist = dist[1:-1, 1:-1]
            sure = dist >= max(1.0, core_fraction * float(dist.max()))
        gc[sure] = cv2.GC_FGD
        for other in other_blobs:
            # Another fish's blob: background for this box unless our own seeds say fish.
            small_other = to_small(other) & (gc != cv2.GC_FGD) & (gc != cv2.GC_PR_FGD)
            gc[small_other] = cv2.GC_BGD
        fish = self._grabcut(image, gc)
        if fish.any():
            fish = _fill_holes(_close(fish, round(cfg.close_fraction * max(bx1 - bx0, by1 - by0))))
            fish &= in_box
        if scale < 1.0:
            up = cv2.resize(
                fish.astype(np.float32), (wx1 - wx0, wy1 - wy0), interpolation=cv2.INTER_LINEAR
            )
            fish = up >= 0.5
        # The window holds all of the fish: its largest piece there is the frame's.
        frame_mask[wy0:wy1, wx0:wx1] = largest_component(fish)
        return frame_mask

    def _shadow_model(
        self, image: np.ndarray, bg_win: np.ndarray, small_blob: np.ndarray, gc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Seed from the ratio to the background (``shadow_model``); updates ``gc`` in place.

        Shadows darken the floor evenly in B, G and R (mean ratio below 1, little
        spread); a fish changes the colour or is brighter / much darker than any
        shadow. Returns the feature image GrabCut then models (ratio, colour spread,
        grey level, instead of BGR) and the sure-fish pixels (None: too few).
        """
        cfg = self.config
        ratio = (cv2.GaussianBlur(image, (3, 3), 0).astype(np.float32) + 1.0) / (
            cv2.GaussianBlur(bg_win, (3, 3), 0).astype(np.float32) + 1.0
        )
        mean, spread = ratio.mean(axis=2), ratio.max(axis=2) - ratio.min(axis=2)
        shadow_like = (
            (mean > cfg.shadow_min) & (mean < cfg.shadow_max) & (spread < cfg.shadow_spread)
        )
        sure_fish = (mean > cfg.fish_bright) | (mean < cfg.shadow_min) | (spread > cfg.fish_spread)
        gc[small_blob & shadow_like] = cv2.GC_PR_BGD
        sure = small_blob & sure_fish
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        features = [mean * 128.0, spread * cfg.spread_gain, grey]
        image = np.dstack([np.clip(f, 0, 255) for f in features]).astype(np.uint8)
        return image, (sure if np.count_nonzero(sure) >= 4 else None)

    def _grabcut(self, image: np.ndarray, gc: np.ndarray) -> np.ndarray:
        """The fish pixels after GrabCut from the seed labels ``gc`` (bool, window size)."""
        if not np.any((gc == cv2.GC_BGD) | (gc == cv2.GC_PR_BGD)) or not np.any(
            (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        ):
            return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        bgd_model = np.zeros((1, 65), np.float64)
        fgd_model = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's k-means init: same masks on every run
        cv2.grabCut(
            image, gc, None, bgd_model, fgd_model, self.config.iterations, cv2.GC_INIT_WITH_MASK
        )
        return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
