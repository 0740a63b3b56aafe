"""Render one camera's frames and their exact ground truth.

Per frame: the floor under the current light, shadows of every fish (darkened
floor, offset and blurred), then the fish back to front by height above the
floor. Each fish is drawn with ``cv2.fillPoly`` in a window around it; the
label map records which fish owns each pixel, so a fish's ground-truth mask is
exactly the pixels where it is visible (its silhouette minus the fish in front
of it). Then light gain, a little optical blur and sensor noise. Compression
happens in the video writer (:mod:`aquapose.synth.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from aquapose.synth.config import SynthConfig
from aquapose.synth.fish import (
    BodyShape,
    FishAppearance,
    FishOutline,
    fish_outline,
    make_population,
)
from aquapose.synth.motion import CameraPlan, Track, plan_camera
from aquapose.synth.scene import Scene, cast_shadow, make_scene

_GREY = np.array([0.114, 0.587, 0.299], np.float32)  # BGR -> luma
_DILATE = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, eq=False)
class FishInView:
    """Ground truth of one visible fish in one frame.

    Attributes:
        fish_id: stable identity.
        box_xyxy: float64 (4,) tight box of the visible pixels (x1/y1 exclusive).
        rle: COCO compressed RLE of the visible pixels (frame size).
        area: number of visible pixels.
        stationary: the fish has not moved for ``stationary_flag_seconds``.
        low_contrast: mean |fish - floor| grey difference below the threshold.
        touching: its visible pixels touch (8-neighbourhood) another fish's.
        touching_ids: the fish it touches.
        occluded_fraction: share of its in-frame silhouette hidden by fish in front.
        truncated: part of the fish lies outside the frame.
        contrast: mean signed grey difference fish - floor over its visible pixels.
        depth: height above the floor in [0, 1] (higher is drawn in front).
    """

    fish_id: int
    box_xyxy: np.ndarray
    rle: dict[str, Any]
    area: int
    stationary: bool
    low_contrast: bool
    touching: bool
    touching_ids: tuple[int, ...]
    occluded_fraction: float
    truncated: bool
    contrast: float
    depth: float


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One rendered frame.

    Attributes:
        frame_index: index in the camera's clip.
        image: uint8 (H, W, 3) BGR as handed to the video writer (before compression).
        labels: uint8 (H, W), 0 = no fish, ``fish_id + 1`` where that fish is visible.
        fish: ground truth of the visible fish, by ``fish_id``.
        clean: float32 (H, W, 3) the composed scene before light gain, blur and noise.
        background: float32 (H, W, 3) floor plus shadows without fish (``debug`` only).
        shadow: float32 (H, W) shadow darkening in [0, 1) (``debug`` only).
        silhouettes: fish_id -> bool (H, W) full in-frame silhouette (``debug`` only).
    """

    frame_index: int
    image: np.ndarray
    labels: np.ndarray
    fish: tuple[FishInView, ...]
    clean: np.ndarray
    background: np.ndarray | None = None
    shadow: np.ndarray | None = None
    silhouettes: dict[int, np.ndarray] = field(default_factory=dict)


class CameraRenderer:
    """Renders the frames of camera ``camera_index`` of a rig (random access by frame index)."""

    def __init__(
        self,
        config: SynthConfig,
        seed: int,
        camera_index: int,
        population: tuple[FishAppearance, ...] | None = None,
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self.camera_index = int(camera_index)
        population = population if population is not None else make_population(config, seed)
        self.plan: CameraPlan = plan_camera(config, seed, camera_index, population)
        self.scene: Scene = make_scene(config, self.plan.tank, seed, camera_index)
        self._colours = {t.fish.fish_id: self._fish_colour(t.fish) for t in self.plan.tracks}
        self._shapes = {t.fish.fish_id: BodyShape.of(t.fish) for t in self.plan.tracks}
        self._floor_grey = _grey(self.scene.floor)
        self._floor_ramp_grey = _grey(self.scene.floor_ramp)

    @property
    def camera_id(self) -> str:
        return self.plan.camera_id

    def _fish_colour(self, fish: FishAppearance) -> tuple[np.ndarray, float]:
        """(per-unit colour direction (3,), signed contrast per unit) against this floor."""
        tint = np.asarray(fish.tint, np.float64)
        tint = tint / float(tint @ _GREY)
        sign = 1.0 if fish.lighter else -1.0
        return tint, sign * fish.contrast / fish.body_alpha

    def render(
        self, frame_index: int, *, debug: bool = False, only_fish: set[int] | None = None
    ) -> RenderedFrame:
        """Render frame ``frame_index``; ``debug`` keeps background, shadows and silhouettes.

        ``only_fish`` draws only these fish ids (others and their shadows are left out).
        """
        cfg = self.config
        if not 0 <= frame_index < cfg.num_frames:
            raise ValueError(f"frame_index must be in [0, {cfg.num_frames}), got {frame_index}")
        h, w = cfg.height, cfg.width
        t = frame_index / cfg.fps
        rng = np.random.default_rng([self.seed, self.camera_index, 3, frame_index])
        jitter = float(rng.normal(0.0, 0.004)) if cfg.illumination else 0.0
        gain, ramp = self.scene.light(t, jitter)
        frame = cv2.scaleAdd(self.scene.floor_ramp, ramp, self.scene.floor)

        poses = []
        for track in self.plan.tracks:
            if only_fish is not None and track.fish.fish_id not in only_fish:
                continue
            poses.append(_pose(track, t, self._shapes[track.fish.fish_id]))
        shadow_map = np.zeros((h, w), np.float32) if debug else None
        if cfg.shadows:
            lx, ly = self.plan.light_dir
            for pose in poses:
                fish, depth = pose.track.fish, pose.depth
                offset = (2.0 + depth * 0.35 * fish.length_px) * np.array([lx, ly])
                sigma = 1.0 + depth * 0.1 * fish.length_px
                # Diffuse overhead light: a shadow is faint, and fainter the more it is
                # blurred (a fish high above the floor casts a wide, weak shadow).
                strength = (0.22 - 0.1 * depth) / (1.0 + 0.15 * sigma)
                cast_shadow(frame, pose.whole, (offset[0], offset[1]), sigma, strength, shadow_map)
        floor_and_shadows = frame.copy()
        background = floor_and_shadows if debug else None

        labels = np.zeros((h, w), np.uint8)
        drawn: list[tuple[_Pose, tuple[int, int, int, int], np.ndarray]] = []
        for pose in sorted(poses, key=lambda p: (p.depth, p.track.fish.fish_id)):
            win = _window(pose.whole, w, h, pad=2)
            if win is None:
                continue
            silhouette = self._draw_fish(frame, floor_and_shadows, labels, pose, win)
            if silhouette.any():
                drawn.append((pose, win, silhouette))

        ramp_floor = (self._floor_grey, self._floor_ramp_grey, ramp)
        fish_gt = [
            _ground_truth(pose, win, sil, labels, frame, ramp_floor, cfg, t)
            for pose, win, sil in drawn
        ]
        in_view = tuple(sorted((f for f in fish_gt if f is not None), key=lambda f: f.fish_id))

        image = cv2.convertScaleAbs(frame, alpha=gain)
        image = cv2.GaussianBlur(image, (3, 3), 0.6)
        noise = self.scene.noise(rng)
        if noise is not None:
            image = cv2.add(image, noise, dtype=cv2.CV_8U)
        silhouettes: dict[int, np.ndarray] = {}
        if debug:
            for pose, (x0, y0, x1, y1), sil in drawn:
                full = np.zeros((h, w), bool)
                full[y0:y1, x0:x1] = sil
                silhouettes[pose.track.fish.fish_id] = full
        return RenderedFrame(
            frame_index, image, labels, in_view, frame, background, shadow_map, silhouettes
        )

    def _draw_fish(
        self,
        frame: np.ndarray,
        floor: np.ndarray,
        labels: np.ndarray,
        pose: _Pose,
        win: tuple[int, int, int, int],
    ) -> np.ndarray:
        """Composite one fish into ``frame`` and ``labels`` in its window; returns its silhouette."""
        x0, y0, x1, y1 = win
        fish = pose.track.fish
        origin = np.array([x0, y0], np.float64)
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        outline = pose.outline
        cv2.fillPoly(alpha, [_fixed(outline.whole, origin)], fish.fin_alpha, cv2.LINE_8, shift=4)
        cv2.fillPoly(alpha, [_fixed(outline.body, origin)], fish.body_alpha, cv2.LINE_8, shift=4)
        silhouette = alpha > 0
        if not silhouette.any():
            return silhouette
        pattern: np.ndarray = np.zeros_like(alpha)
        cv2.fillPoly(pattern, [_fixed(outline.dorsal, origin)], 1.0, cv2.LINE_8, 4)
        left, right, midline = outline.left, outline.right, outline.midline
        n = len(midline)
        thick = max(1, int(round(0.05 * fish.length_px)))
        for k in range(fish.stripes):
            i = int((0.3 + 0.45 * k / max(fish.stripes - 1, 1)) * (n - 1))
            a, b = _point(left[i], origin), _point(right[i], origin)
            cv2.line(pattern, a, b, 0.8, thick, cv2.LINE_8, 4)
        pattern = cv2.GaussianBlur(pattern, (0, 0), max(0.6, 0.015 * fish.length_px))
        eyes: np.ndarray = np.zeros_like(alpha)
        i_eye = int(0.09 * (n - 1))
        radius = max(1, int(round(16 * 0.028 * fish.length_px)))
        for side in (left, right):
            eye = midline[i_eye] + 0.6 * (side[i_eye] - midline[i_eye])
            cv2.circle(eyes, _point(eye, origin), radius, 1.0, -1, cv2.LINE_8, 4)
        eyes = cv2.GaussianBlur(eyes, (0, 0), 0.7)
        tint, signed = self._colours[fish.fish_id]
        # Dorsal band and bars strengthen the fish's contrast (darker on a dark fish, paler
        # on a light one); the eyes are dark on every fish.
        amount = signed * (1.0 + pattern * fish.pattern_strength)
        amount -= eyes * max(abs(signed), 15.0) * 1.5
        region = frame[y0:y1, x0:x1]
        # Contrast is relative to the floor under the fish now (light drift, floor
        # gradient and shadows included), so a faint fish stays faint but visible.
        local_floor = floor[y0:y1, x0:x1][silhouette].mean(axis=0)
        colour = local_floor + amount[:, :, None] * tint.astype(np.float32)
        region += alpha[:, :, None] * (colour - region)
        labels[y0:y1, x0:x1][silhouette] = fish.fish_id + 1
        return silhouette


@dataclass(frozen=True, eq=False)
class _Pose:
    track: Track
    head_s: float
    depth: float
    outline: FishOutline

    @property
    def whole(self) -> np.ndarray:
        return self.outline.whole


def _pose(track: Track, t: float, shape: BodyShape) -> _Pose:
    head_s = float(track.head_s(t))
    outline = fish_outline(track.path_xy, track.path_s, head_s, track.fish, shape)
    return _Pose(track, head_s, track.depth(head_s), outline)


def _fixed(xy: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Window-local fixed-point (4 fractional bits) int32 coordinates for OpenCV drawing."""
    return np.rint((np.asarray(xy) - origin) * 16).astype(np.int32)


def _grey(image: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) BGR -> (H, W) luma."""
    grey = cv2.transform(np.ascontiguousarray(image), _GREY[None, :])
    return grey.reshape(image.shape[:2])


def _point(xy: np.ndarray, origin: np.ndarray) -> tuple[int, int]:
    x, y = _fixed(xy, origin).tolist()
    return int(x), int(y)


def _window(poly: np.ndarray, w: int, h: int, pad: int) -> tuple[int, int, int, int] | None:
    x0 = max(int(np.floor(poly[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(poly[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(poly[:, 0].max())) + pad + 1, w)
    y1 = min(int(np.ceil(poly[:, 1].max())) + pad + 1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _ground_truth(
    pose: _Pose,
    win: tuple[int, int, int, int],
    silhouette: np.ndarray,
    labels: np.ndarray,
    frame: np.ndarray,
    ramp_floor: tuple[np.ndarray, np.ndarray, float],
    cfg: SynthConfig,
    t: float,
) -> FishInView | None:
    x0, y0, x1, y1 = win
    fish = pose.track.fish
    label = fish.fish_id + 1
    visible = labels[y0:y1, x0:x1] == label
    area = int(np.count_nonzero(visible))
    if area == 0:
        return None
    h, w = labels.shape
    # Touching: dilate the visible pixels by one and look for another fish's label.
    ex0, ey0, ex1, ey1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)
    big = np.zeros((ey1 - ey0, ex1 - ex0), np.uint8)
    big[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0] = visible
    around = labels[ey0:ey1, ex0:ex1][cv2.dilate(big, _DILATE) > 0]
    touching_ids = tuple(int(v) - 1 for v in np.unique(around) if v not in (0, label))
    floor_grey, floor_ramp_grey, ramp = ramp_floor
    under = floor_grey[y0:y1, x0:x1][visible] + ramp * floor_ramp_grey[y0:y1, x0:x1][visible]
    contrast = float(_grey(frame[y0:y1, x0:x1])[visible].mean() - under.mean())
    ys = np.flatnonzero(visible.any(axis=1))
    xs = np.flatnonzero(visible.any(axis=0))
    box = np.array([x0 + xs[0], y0 + ys[0], x0 + xs[-1] + 1, y0 + ys[-1] + 1], np.float64)
    whole = pose.whole
    truncated = bool(
        whole[:, 0].min() < 0
        or whole[:, 1].min() < 0
        or whole[:, 0].max() > w - 1
        or whole[:, 1].max() > h - 1
    )
    return FishInView(
        fish_id=fish.fish_id,
        box_xyxy=box,
        rle=window_rle(visible, x0, y0, h, w),
        area=area,
        stationary=pose.track.is_still(t, cfg.stationary_flag_seconds),
        low_contrast=abs(contrast) < cfg.low_contrast_threshold,
        touching=bool(touching_ids),
        touching_ids=touching_ids,
        occluded_fraction=1.0 - area / int(np.count_nonzero(silhouette)),
        truncated=truncated,
        contrast=contrast,
        depth=pose.depth,
    )


def window_rle(
    window_mask: np.ndarray, x0: int, y0: int, height: int, width: int
) -> dict[str, Any]:
    """COCO compressed RLE of a frame-size mask that is zero outside a window.

    ``window_mask`` is bool (h, w) placed at ``(x0, y0)`` in a ``height`` x ``width`` frame.
    Equal to ``encode_rle`` of the full mask, without building the full mask.
    """
    h, w = window_mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise ValueError(f"window {w}x{h} at ({x0}, {y0}) does not fit a {width}x{height} frame")
    padded = np.zeros((w, h + 2), np.int8)
    padded[:, 1:-1] = window_mask.T  # column-major: one row per frame column
    step = np.diff(padded, axis=1)
    cols_s, rows_s = np.nonzero(step == 1)
    cols_e, rows_e = np.nonzero(step == -1)
    starts = (x0 + cols_s).astype(np.int64) * height + y0 + rows_s
    ends = (x0 + cols_e).astype(np.int64) * height + y0 + rows_e
    # Runs that continue from the bottom of one column to the top of the next: merge.
    joined = ends[:-1] == starts[1:]
    if joined.any():
        keep_s = np.concatenate([[True], ~joined])
        keep_e = np.concatenate([~joined, [True]])
        starts, ends = starts[keep_s], ends[keep_e]
    bounds = np.empty(2 * len(starts) + 2, np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = starts
    bounds[2:-1:2] = ends
    bounds[-1] = height * width
    counts = np.diff(bounds).tolist()
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
