"""Stage 1, detection: MOG2 background subtraction -> one :class:`Detection` per fish blob.

How the known failure modes of real tanks are handled (DESIGN.md):

- **dark fish labelled shadow**: candidate pixels are shadow (127) ∪ foreground (255);
  a blob holding several sizeable foreground-only cores (255) is split by a watershed
  on its distance transform, seeded by those cores (touching fish -> one box each);
- **stationary fish**: after warm-up the model learns very slowly
  (``learning_rate``), and :func:`detect_video` primes it with a per-pixel *median*
  background of frames spread over the clip, so a fish that stops is still
  foreground. Limit: a fish that never moves during the median window is part of
  that median and is not found;
- **warm-up**: an unprimed model returns no detections for ``warmup_frames`` frames;
  priming (:meth:`MOG2Detector.prime`) makes every frame usable;
- **slow illumination drift / moving light**: the light change between background
  and frame (global gain + gradient, fitted robustly) is divided out before
  subtraction (a frozen model would otherwise see it as fish);
- **sensor noise and compression**: priming measures the noise and sets MOG2's
  variance floor from it;
- **noise**: morphological open/close and a minimum blob area;
- **moving camera / sudden global change**: when more than
  ``max_foreground_fraction`` of the frame is candidate, a
  :class:`GlobalChangeWarning` is issued (once per run) and the frame yields no
  detections; :attr:`MOG2Detector.rejected_frames` counts them.

Blob work is done in each blob's bounding window, never on the full frame.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from aquapose.segmentation._illumination import LightField
from aquapose.segmentation.types import Detection

__all__ = [
    "DetectorConfig",
    "GlobalChangeWarning",
    "MOG2Detector",
    "detect_video",
    "detection_rle",
    "median_background",
    "robust_background",
    "open_video",
]

_SHADOW = 127
_OPEN3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_FOREGROUND = 255
#: samples closer than this many frames are read by decoding through, not seeking.
_SEEK_GAP = 40


class GlobalChangeWarning(UserWarning):
    """Most of the frame changed at once (moving camera, lights switched): frame skipped."""


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :class:`MOG2Detector`. Areas and lengths are in full-frame pixels.

    Attributes:
        history: MOG2 history (frames) used while learning during warm-up.
        var_threshold: MOG2 squared Mahalanobis threshold over the 3 channels, in units
            of the noise variance measured when priming: 64 = a BGR difference 8 noise
            std long (4.6 std per channel; ~7 grey levels at the noise of compressed video).
        var_min: MOG2 floor on each pixel's variance (grey levels squared).
        default_noise_sigma: noise std assumed when priming from a single background
            image (nothing to measure it on). With the noise std ``s``, a pixel counts
            when its BGR difference is longer than ``sqrt(var_threshold) * s``.
        detect_shadows: let MOG2 label darker-but-similar pixels shadow (127); they
            are candidates too, this only provides the foreground-only cores.
        shadow_threshold: MOG2 shadow ratio tau (shadow if ``tau <= pixel/bg < 1``).
        learning_rate: MOG2 learning rate after warm-up/priming. 0 freezes the model
            (stationary fish stay foreground forever); -1 is OpenCV's automatic rate
            (a fish that stops disappears in ~2 s).
        warmup_frames: frames fed with OpenCV's automatic learning rate before an
            unprimed detector returns detections.
        prime_repeats: times the median background is fed to a fresh model by
            :meth:`MOG2Detector.prime`.
        median_frames: frames sampled (evenly spread) by :func:`detect_video` to
            build the median background; 0 disables priming (warm-up learning instead).
        median_window: frames per median segment in :func:`detect_video`; the model
            is re-primed at each segment (long clips with lighting changes). 0 = the
            whole clip is one segment.
        correct_light: divide out the light change between the background and each
            frame (global gain and a gradient, fitted robustly): slow illumination drift
            and a moving light are not foreground.
        estimate_noise: when priming from several frames, raise MOG2's variance floor
            to the noise measured in them (sensor noise + compression), so noise is not
            foreground; ``var_min`` stays the lower bound.
        open_kernel: side of the elliptic opening kernel (noise removal); 0 = off.
        close_kernel: side of the elliptic closing kernel (joins fish fragments); 0 = off.
        min_blob_area: blobs (or split parts) smaller than this are noise.
        max_blob_area: blobs larger than this are not fish (dropped).
        box_padding: pixels added on each side of a blob's tight box (clipped to the frame).
        shadow_trim: in a blob with a foreground-only (255) core, shadow-labelled pixels
            farther than this from the core are a cast shadow and dropped; 0 = keep.
        shadow_contrast: ... and pixels of the core's sign with at least this fraction of
            its contrast are the fish (fins, tail) whatever their distance (a shadow is
            fainter than a dark fish, and darker than the floor under a light one).
        split_touching: split blobs holding several foreground-only cores.
        split_core_depth: a blob's foreground-only pixels deeper than this fraction of
            their maximum distance to the edge form its cores (seeds of the split).
        min_core_area: a core is "sizeable" (a seed) with at least this many pixels, and
            a blob is only considered for splitting with twice as many foreground pixels.
        max_neck_ratio: split parts stay apart only where the border between them is
            narrower than this fraction of the thinner part's width (a neck between two
            touching fish); wider borders are one fish with several dark patches.
        min_part_fraction: each split part must hold at least this fraction of the blob
            (a fish's tail fin is a smaller, separate "core" behind a narrow neck).
        sign_split_contrast: a blob holding a region brighter than the background by
            this many grey levels and one darker by as much is split between them (a
            light fish touching a dark one).
        max_foreground_fraction: above this candidate fraction the frame is rejected
            (moving camera / global change).
        scale: run MOG2 on the frame resized by this factor (0 < scale <= 1); boxes and
            masks are mapped back to full-frame coordinates.
    """

    history: int = 500
    var_threshold: float = 144.0
    var_min: float = 1.0
    default_noise_sigma: float = 2.0
    detect_shadows: bool = True
    shadow_threshold: float = 0.5
    learning_rate: float = 0.0
    warmup_frames: int = 30
    prime_repeats: int = 10
    median_frames: int = 25
    median_window: int = 0
    correct_light: bool = True
    estimate_noise: bool = True
    open_kernel: int = 3
    close_kernel: int = 5
    min_blob_area: int = 80
    max_blob_area: int = 100_000
    box_padding: int = 4
    shadow_trim: int = 3
    shadow_contrast: float = 0.35
    split_touching: bool = True
    split_core_depth: float = 0.5
    min_core_area: int = 12
    max_neck_ratio: float = 0.7
    min_part_fraction: float = 0.2
    sign_split_contrast: float = 20.0
    max_foreground_fraction: float = 0.3
    scale: float = 1.0

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"DetectorConfig: {message}")

        for name in ("history", "warmup_frames", "prime_repeats", "median_frames", "median_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"DetectorConfig: {name} must be an int, got {value!r}")
        need(self.history >= 1, f"history must be >= 1, got {self.history}")
        need(self.var_threshold > 0, f"var_threshold must be > 0, got {self.var_threshold}")
        need(self.var_min > 0, f"var_min must be > 0, got {self.var_min}")
        need(
            self.default_noise_sigma > 0,
            f"default_noise_sigma must be > 0, got {self.default_noise_sigma}",
        )
        need(0 < self.shadow_threshold < 1, f"shadow_threshold must be in (0, 1), got {self.shadow_threshold}")
        need(
            self.learning_rate == -1 or 0 <= self.learning_rate <= 1,
            f"learning_rate must be in [0, 1] or -1 (automatic), got {self.learning_rate}",
        )
        need(self.warmup_frames >= 0, f"warmup_frames must be >= 0, got {self.warmup_frames}")
        need(self.prime_repeats >= 1, f"prime_repeats must be >= 1, got {self.prime_repeats}")
        need(self.median_frames >= 0, f"median_frames must be >= 0, got {self.median_frames}")
        need(self.median_window >= 0, f"median_window must be >= 0, got {self.median_window}")
        for name in ("open_kernel", "close_kernel", "box_padding", "min_core_area", "shadow_trim"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.min_blob_area >= 1, f"min_blob_area must be >= 1, got {self.min_blob_area}")
        need(
            self.max_blob_area > self.min_blob_area,
            f"max_blob_area ({self.max_blob_area}) must be > min_blob_area ({self.min_blob_area})",
        )
        need(
            0 < self.split_core_depth < 1,
            f"split_core_depth must be in (0, 1), got {self.split_core_depth}",
        )
        need(0 <= self.shadow_contrast <= 1, f"shadow_contrast must be in [0, 1], got {self.shadow_contrast}")
        need(
            0 <= self.min_part_fraction < 0.5,
            f"min_part_fraction must be in [0, 0.5), got {self.min_part_fraction}",
        )
        need(self.sign_split_contrast > 0, f"sign_split_contrast must be > 0, got {self.sign_split_contrast}")
        need(self.max_neck_ratio > 0, f"max_neck_ratio must be > 0, got {self.max_neck_ratio}")
        need(
            0 < self.max_foreground_fraction <= 1,
            f"max_foreground_fraction must be in (0, 1], got {self.max_foreground_fraction}",
        )
        need(0 < self.scale <= 1, f"scale must be in (0, 1], got {self.scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pad1(mask: np.ndarray) -> np.ndarray:
    """One-pixel zero border, so distances count from the window's edge too."""
    return cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def _kernel(side: float) -> np.ndarray | None:
    """Elliptic kernel of the nearest odd side (even kernels shift the mask); None if < 3."""
    odd = 2 * int(round((side - 1) / 2)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (odd, odd)) if odd >= 3 else None


def _check_frame(frame: Any) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array (H, W, 3) uint8 BGR, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frame must be (H, W, 3) uint8 BGR, got shape {frame.shape} dtype {frame.dtype}"
        )
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"frame is too small: {frame.shape}")
    return frame


def median_background(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Per-pixel median of same-size BGR frames: (H, W, 3) uint8.

    A fish that moves during most of the frames is removed; one that stays put in
    more than half of them remains part of the background.
    """
    stack = [_check_frame(f) for f in frames]
    if not stack:
        raise ValueError("median_background needs at least one frame, got none")
    shapes = {f.shape for f in stack}
    if len(shapes) != 1:
        raise ValueError(f"all frames must have the same shape, got {sorted(shapes)}")
    out = np.empty_like(stack[0])
    rows = stack[0].shape[0]
    step = max(1, rows // 8)  # row bands keep the temporary stack small
    for y in range(0, rows, step):
        band = np.stack([f[y : y + step] for f in stack])
        out[y : y + step] = np.median(band, axis=0).astype(np.uint8)
    return out


def robust_background(
    frames: Sequence[np.ndarray], correct_light: bool = True
) -> tuple[np.ndarray, float]:
    """Background image of a clip from sample frames, and the noise std around it.

    1. per-pixel median of the frames; 2. each frame's light change against it divided
    out (:class:`LightField`), median again; 3. per pixel, the mean of the samples within
    3 noise std (at least 4 grey levels) of that median. Fish and their shadows that
    stay in one place in up to about half of the samples are left out (a plain median
    of frames under drifting light keeps a faint ghost of them).

    Returns ((H, W, 3) uint8 background, per-channel noise std in grey levels).
    """
    first = median_background(frames)
    if len(frames) < 2:
        return first, 0.0
    light = LightField(first)
    corrected = [light.correct(f) for f in frames] if correct_light else list(frames)
    median = median_background(corrected)
    sigma = LightField(median).noise_sigma(corrected, median, corrected=True)
    limit = max(4.0, 3.0 * sigma)
    total = np.zeros(median.shape, np.float32)
    count = np.zeros(median.shape, np.float32)
    for image in corrected:
        inlier = (cv2.absdiff(image, median) <= limit).astype(np.float32)
        total += image * inlier
        count += inlier
    background = np.where(count > 0, total / np.maximum(count, 1.0), median)
    return np.clip(np.rint(background), 0, 255).astype(np.uint8), sigma


class MOG2Detector:
    """Per-camera fish detector on top of OpenCV's MOG2 background subtractor.

    One instance per camera/video (it holds that camera's background model). Use
    :meth:`prime` with frames of the clip (or let :func:`detect_video` do it), or
    let it learn for ``config.warmup_frames`` frames (no detections meanwhile).
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        if config is not None and not isinstance(config, DetectorConfig):
            raise TypeError(f"config must be a DetectorConfig, got {type(config).__name__}")
        self.config = config or DetectorConfig()
        c = self.config
        s2 = c.scale * c.scale
        self._open = _kernel(c.open_kernel * c.scale)
        self._close = _kernel(c.close_kernel * c.scale)
        self._min_area = max(1.0, c.min_blob_area * s2)
        self._max_area = c.max_blob_area * s2
        self._min_core = max(1.0, c.min_core_area * s2)
        self._min_seed = self._min_core / 2.0
        self._trim = _kernel(2 * c.shadow_trim * c.scale + 1) if c.shadow_trim > 0 else None
        self.reset()

    # -- state -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the background model and all counters (a new camera or clip)."""
        c = self.config
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=c.history, varThreshold=c.var_threshold, detectShadows=c.detect_shadows
        )
        self._mog.setShadowThreshold(c.shadow_threshold)
        self._mog.setVarMin(c.var_min)
        self._frames_seen = 0
        self._primed = False
        self._light: LightField | None = None
        self._background: np.ndarray | None = None  # work-scale BGR uint8
        self._last_work: np.ndarray | None = None  # last frame fed, light-corrected
        #: per-channel noise std used for the model (grey levels): measured when primed
        #: from frames, else ``default_noise_sigma``; None before priming/warm-up.
        self.noise_sigma: float | None = None
        self._frame_shape: tuple[int, int] | None = None
        self._warned = False
        #: frames skipped by the global-change guard since the last reset.
        self.rejected_frames = 0
        #: candidate (shadow ∪ foreground) fraction of the last frame, before morphology.
        self.last_foreground_fraction = 0.0

    @property
    def is_ready(self) -> bool:
        """True once primed or past ``warmup_frames``: detections are returned."""
        return self._primed or self._frames_seen >= self.config.warmup_frames

    @property
    def frames_seen(self) -> int:
        return self._frames_seen

    def _to_work(self, frame: np.ndarray) -> np.ndarray:
        s = self.config.scale
        if s == 1.0:
            return frame
        h, w = frame.shape[:2]
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def _check_shape(self, frame: np.ndarray) -> None:
        shape = frame.shape[:2]
        if self._frame_shape is None:
            self._frame_shape = (int(shape[0]), int(shape[1]))
        elif shape != self._frame_shape:
            raise ValueError(
                f"frame size changed from {self._frame_shape} to {shape} (H, W); "
                "use one detector per camera, or reset() it"
            )

    def prime(self, frames: Sequence[np.ndarray] | np.ndarray) -> None:
        """Reset the model and seed it with the median background of ``frames``.

        ``frames`` is a list of (H, W, 3) BGR frames (or a single background image).
        Afterwards every frame gives detections (no warm-up).
        """
        c = self.config
        single = isinstance(frames, np.ndarray) and frames.ndim == 3
        if single:
            work = self._to_work(_check_frame(frames))
            sigma = 0.0
        else:
            sample = [_check_frame(f) for f in frames]
            if not sample:
                raise ValueError("prime needs at least one frame, got none")
            work, sigma = robust_background([self._to_work(f) for f in sample], c.correct_light)
        self.reset()
        self._check_shape(frames if single else sample[0])
        self._background = work
        if c.correct_light:
            self._light = LightField(work)
        if not (c.estimate_noise and sigma > 0):
            sigma = c.default_noise_sigma
        self.noise_sigma = sigma
        variance = max(c.var_min, sigma**2)
        self._mog.setVarMin(variance)
        self._mog.setVarInit(variance)
        for i in range(c.prime_repeats):
            self._mog.apply(work, learningRate=1.0 / (i + 1))
        self._primed = True

    # -- per frame ---------------------------------------------------------------------
    def foreground_mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Feed one frame to the model; MOG2's mask at working scale (0/127/255 uint8)."""
        frame = _check_frame(frame_bgr)
        self._check_shape(frame)
        work = self._to_work(frame)
        c = self.config
        self._frames_seen += 1
        if not self._primed and self._frames_seen <= c.warmup_frames:
            # Learning phase: OpenCV's automatic rate.
            fg = self._mog.apply(work, learningRate=-1)
            if self._frames_seen == c.warmup_frames:
                self._background = self._mog.getBackgroundImage()
                if c.correct_light:
                    self._light = LightField(self._background)
            return fg
        if self._light is not None:
            work = self._light.correct(work)
        self._last_work = work
        return self._mog.apply(work, learningRate=c.learning_rate)

    def detect(
        self, frame_bgr: np.ndarray, camera_id: str = "cam0", frame_index: int | None = None
    ) -> list[Detection]:
        """Feed ``frame_bgr`` (H, W, 3 uint8 BGR) to the model and return its fish.

        Returns [] while warming up and for frames rejected by the global-change
        guard. ``frame_index`` defaults to the number of frames fed before this one.
        """
        index = self._frames_seen if frame_index is None else frame_index
        was_ready = self.is_ready
        fg = self.foreground_mask(frame_bgr)
        if not was_ready:
            return []
        return self._detections_from_mask(fg, frame_bgr.shape[:2], camera_id, int(index))

    def detect_batch(
        self, frames: Iterable[np.ndarray], camera_id: str = "cam0", start_index: int | None = None
    ) -> list[list[Detection]]:
        """:meth:`detect` on consecutive frames; frame indices count up from ``start_index``."""
        results = []
        for i, frame in enumerate(frames):
            index = None if start_index is None else start_index + i
            results.append(self.detect(frame, camera_id=camera_id, frame_index=index))
        return results

    # -- blobs -------------------------------------------------------------------------
    def _reject(self, fraction: float, camera_id: str, frame_index: int) -> list[Detection]:
        self.rejected_frames += 1
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{camera_id} frame {frame_index}: {fraction:.0%} of the frame is foreground "
                f"(limit {self.config.max_foreground_fraction:.0%}): moving camera or sudden "
                "global change; such frames give no detections",
                GlobalChangeWarning,
                stacklevel=3,
            )
        return []

    def _detections_from_mask(
        self, fg: np.ndarray, frame_hw: tuple[int, int], camera_id: str, frame_index: int
    ) -> list[Detection]:
        c = self.config
        _, candidate = cv2.threshold(fg, 0, 255, cv2.THRESH_BINARY)
        fraction = cv2.countNonZero(candidate) / candidate.size
        self.last_foreground_fraction = fraction
        if fraction > c.max_foreground_fraction:
            return self._reject(fraction, camera_id, frame_index)
        if fraction == 0.0:
            return []
        if self._open is not None:
            candidate = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, self._open)
        if self._close is not None:
            candidate = cv2.morphologyEx(candidate, cv2.MORPH_CLOSE, self._close)
        contours, _ = cv2.findContours(candidate, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        detections: list[Detection] = []
        work_h, work_w = candidate.shape
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < self._min_area:
                continue
            blob = np.zeros((h, w), np.uint8)
            cv2.drawContours(blob, [contour], 0, 1, thickness=cv2.FILLED, offset=(-x, -y))
            blob &= candidate[y : y + h, x : x + w] > 0  # keep genuine holes out
            area = int(np.count_nonzero(blob))
            if area < self._min_area or area > self._max_area:
                continue
            fg_window = fg[y : y + h, x : x + w]
            parts = [blob]
            if self._trim is not None:
                parts = self._trim_shadows(blob, fg_window, self._contrast(x, y, w, h))
            if c.split_touching:
                contrast = self._contrast(x, y, w, h)
                if contrast is not None:
                    parts = [p for part in parts for p in self._split_by_sign(part, contrast)]
                parts = [piece for part in parts for piece in self._split(part, fg_window)]
            for part in parts:
                det = self._to_detection(part, x, y, frame_hw, (work_h, work_w), camera_id, frame_index)
                if det is not None:
                    detections.append(det)
        return detections

    def _contrast(self, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """Signed grey difference (frame - background), float32 (h, w), in a window."""
        if self._background is None or self._last_work is None:
            return None
        frame = self._last_work[y : y + h, x : x + w].astype(np.float32)
        background = self._background[y : y + h, x : x + w].astype(np.float32)
        return (frame - background).mean(axis=2)

    def _trim_shadows(
        self, blob: np.ndarray, fg_window: np.ndarray, contrast: np.ndarray | None
    ) -> list[np.ndarray]:
        """Drop a fish's cast shadow from its blob; returns the pieces big enough for a fish.

        A blob with a sizeable foreground (255) core is a fish plus, often, its shadow
        (127). Kept: pixels within ``shadow_trim`` of the core or inside its convex hull
        (the body between dark patches), and pixels with the core's sign of contrast and
        at least ``shadow_contrast`` of its strength (fins, tail, a touching dark fish).
        A shadow is fainter than the dark fish casting it, and darker (not brighter)
        than the floor under a light fish. A blob without a core (a dark fish labelled
        shadow) is kept whole.
        """
        core = ((fg_window == _FOREGROUND) & (blob > 0)).astype(np.uint8)
        if np.count_nonzero(core) < self._min_core:
            return [blob]
        keep = cv2.dilate(core, self._trim)
        cv2.fillConvexPoly(keep, cv2.convexHull(cv2.findNonZero(core)), 1)
        if contrast is not None:
            level = float(np.median(contrast[core > 0]))
            floor = max(self.config.shadow_contrast * abs(level), 3.0 * (self.noise_sigma or self.config.default_noise_sigma))
            keep |= (contrast * np.sign(level) >= floor).astype(np.uint8)
        return _components(blob & keep, self._min_area)

    def _split_by_sign(self, blob: np.ndarray, contrast: np.ndarray) -> list[np.ndarray]:
        """Split a blob holding a fish brighter than the floor and one darker than it.

        Each pixel goes to the nearer of the two (opened) regions of contrast beyond
        +/- ``sign_split_contrast``, when both are big enough for a fish (a light fish's
        faint shadow is not such a region).
        """
        level = max(self.config.sign_split_contrast, 4.0 * (self.noise_sigma or self.config.default_noise_sigma))
        regions = []
        for sign in (1.0, -1.0):
            clear = ((contrast * sign >= level) & (blob > 0)).astype(np.uint8)
            clear = cv2.morphologyEx(clear, cv2.MORPH_OPEN, _OPEN3)
            if np.count_nonzero(clear) < self._min_area:
                return [blob]
            regions.append(clear)
        away = [cv2.distanceTransform(1 - r, cv2.DIST_L2, 3) for r in regions]
        bright = (away[0] <= away[1]).astype(np.uint8)
        return [p for p in (blob & bright, blob & (1 - bright)) if np.count_nonzero(p)]

    def _split(self, blob: np.ndarray, fg_window: np.ndarray) -> list[np.ndarray]:
        """Split a blob (uint8 0/1 window) between its sizeable foreground-only cores.

        Cores are the blob's foreground (255) pixels, narrowed to where they are at least
        ``split_core_depth`` x the deepest point of their connected piece away from its
        edge (so two dark fish touching at a neck give two cores); a watershed on the blob's distance
        transform, seeded by the cores, draws the border between them.
        """
        core = ((fg_window == _FOREGROUND) & (blob > 0)).astype(np.uint8)
        if np.count_nonzero(core) < 2 * self._min_core:
            return [blob]
        depth = cv2.distanceTransform(_pad1(core), cv2.DIST_L2, 3)[1:-1, 1:-1]
        n, labels = cv2.connectedComponents(core, connectivity=8)
        deepest = np.zeros(n, np.float32)  # per core component: a small fish's own depth
        np.maximum.at(deepest, labels.ravel(), depth.ravel())
        limit = np.maximum(1.0, self.config.split_core_depth * deepest[labels])
        core = ((depth >= limit) & (labels > 0)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
        big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= self._min_seed]
        if len(big) < 2:
            return [blob]
        markers = np.zeros(blob.shape, np.int32)
        for k, i in enumerate(big, start=1):
            markers[labels == i] = k
        markers[blob == 0] = len(big) + 1  # the outside floods too, or a seed leaks round it
        dist = cv2.distanceTransform(_pad1(blob), cv2.DIST_L2, 3)[1:-1, 1:-1]
        relief = 255 - cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers)
        parts = _merge_wide_necks(markers, blob, dist, len(big), self.config.max_neck_ratio)
        areas = [np.count_nonzero(p) for p in parts]
        smallest = max(self._min_area, self.config.min_part_fraction * sum(areas))
        if len(parts) < 2 or min(areas) < smallest:
            return [blob]  # one fish with dark patches, or a part too small (a tail fin)
        return parts

    def _to_detection(
        self,
        part: np.ndarray,
        x: int,
        y: int,
        frame_hw: tuple[int, int],
        work_hw: tuple[int, int],
        camera_id: str,
        frame_index: int,
    ) -> Detection | None:
        ys = np.flatnonzero(part.any(axis=1))
        xs = np.flatnonzero(part.any(axis=0))
        if ys.size == 0:
            return None
        part = part[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        x0, y0 = x + int(xs[0]), y + int(ys[0])
        frame_h, frame_w = frame_hw
        area_work = float(np.count_nonzero(part))
        frame_mask = np.zeros((frame_h, frame_w), dtype=bool)
        if self.config.scale == 1.0:
            fx0, fy0 = x0, y0
            fx1, fy1 = x0 + part.shape[1], y0 + part.shape[0]
            frame_mask[fy0:fy1, fx0:fx1] = part > 0
        else:
            sx, sy = frame_w / work_hw[1], frame_h / work_hw[0]
            fx0, fy0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
            fx1 = min(frame_w, int(math.ceil((x0 + part.shape[1]) * sx)))
            fy1 = min(frame_h, int(math.ceil((y0 + part.shape[0]) * sy)))
            up = cv2.resize(part * 255, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
            frame_mask[fy0:fy1, fx0:fx1] = up >= 128
            if not frame_mask[fy0:fy1, fx0:fx1].any():
                frame_mask[fy0:fy1, fx0:fx1] = cv2.resize(
                    part, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_NEAREST
                ) > 0
        pad = self.config.box_padding
        box = (
            max(0, fx0 - pad),
            max(0, fy0 - pad),
            min(frame_w, fx1 + pad),
            min(frame_h, fy1 + pad),
        )
        area = area_work / (self.config.scale * self.config.scale)
        score = 1.0 - math.exp(-area / (2.0 * self.config.min_blob_area))
        return Detection(
            box_xyxy=np.array(box, dtype=np.float64),
            score=float(min(max(score, 0.0), 1.0)),
            camera_id=camera_id,
            frame_index=frame_index,
            blob_mask=frame_mask,
        )


def _components(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Connected components (uint8 0/1, 8-connected) of at least ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n == 2:
        return [mask] if stats[1, cv2.CC_STAT_AREA] >= min_area else []
    return [
        (labels == i).astype(np.uint8)
        for i in range(1, n)
        if stats[i, cv2.CC_STAT_AREA] >= min_area
    ]


def _merge_wide_necks(
    markers: np.ndarray, blob: np.ndarray, dist: np.ndarray, k: int, max_neck_ratio: float
) -> list[np.ndarray]:
    """Parts (uint8 0/1) of a watershed's labels 1..k, re-joining parts whose border is wide.

    Two touching fish meet at a neck much narrower than either body; the parts of one
    fish with two dark patches meet across its whole width. Parts whose border is deeper
    (distance to the blob's edge) than ``max_neck_ratio`` x the shallower part's deepest
    point are merged back.
    """
    depth = [float(dist[markers == i].max(initial=0.0)) for i in range(1, k + 1)]
    ys, xs = np.nonzero((markers == -1) & (blob > 0))
    padded = np.pad(markers, 1, constant_values=-1)
    neighbours = np.stack(
        [padded[ys + 1 + dy, xs + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=1
    )
    border_depth = dist[ys, xs]
    group = list(range(k + 1))  # union-find over labels 1..k

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(1, k + 1):
        has_i = (neighbours == i).any(axis=1)
        for j in range(i + 1, k + 1):
            between = has_i & (neighbours == j).any(axis=1)
            if not between.any():
                continue
            neck = float(border_depth[between].max())
            if neck >= max_neck_ratio * min(depth[i - 1], depth[j - 1]):
                group[root(j)] = root(i)
    roots = sorted({root(i) for i in range(1, k + 1)})
    if len(roots) == 1:
        return [blob]
    label_of = np.zeros(k + 2, np.int32)  # label -> group number (1-based); k+1 = outside
    for i in range(1, k + 1):
        label_of[i] = roots.index(root(i)) + 1
    grouped = np.where(markers > 0, label_of[np.clip(markers, 0, k + 1)], 0)
    # Border pixels between parts of one group belong to that group.
    near = np.where(neighbours > 0, label_of[np.clip(neighbours, 0, k + 1)], 0)
    first = near.max(axis=1)
    lone = (near == 0) | (near == first[:, None])
    inside = lone.all(axis=1) & (first > 0)
    grouped[ys[inside], xs[inside]] = first[inside]
    return [((grouped == g) & (blob > 0)).astype(np.uint8) for g in range(1, len(roots) + 1)]


# -- masks -----------------------------------------------------------------------------
def detection_rle(detection: Detection) -> dict[str, Any]:
    """COCO compressed RLE of a detection's blob mask, encoded from its box window only.

    Equal to ``encode_rle(detection.blob_mask)`` but does not scan the full frame.
    """
    mask = detection.blob_mask
    if mask is None:
        raise ValueError("detection has no blob_mask to encode")
    frame_h, frame_w = mask.shape
    x0, y0, x1, y1 = (int(v) for v in np.round(detection.box_xyxy))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(frame_w, x1), min(frame_h, y1)
    window = mask[y0:y1, x0:x1]
    # Column-major runs inside the window, one padded column at a time.
    cols = np.zeros((x1 - x0, (y1 - y0) + 2), dtype=np.int8)
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
    if mask[y0:y1, x0:x1].sum() != mask.sum():
        raise ValueError("detection blob_mask reaches outside its box")
    rle = mask_utils.frPyObjects({"size": [frame_h, frame_w], "counts": counts}, frame_h, frame_w)
    return {"size": [frame_h, frame_w], "counts": rle["counts"].decode("ascii")}


# -- video -----------------------------------------------------------------------------
def open_video(path: str | Path) -> tuple[cv2.VideoCapture, int]:
    """Open a video and check that it decodes; returns (capture, frame count or -1).

    Raises FileNotFoundError for a missing file and ValueError for one OpenCV cannot
    open or whose first frame does not decode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video (corrupt or unsupported format)")
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise ValueError(f"{path}: no frame could be decoded (corrupt or empty video)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return cap, count if count > 0 else -1


def _sample_frames(path: Path, start: int, stop: int, n: int) -> list[np.ndarray]:
    """Up to ``n`` frames evenly spread over ``[start, stop)``.

    Close samples are read by decoding straight through (``grab``); far-apart ones by
    seeking, which costs a decode from the previous key frame each time.
    """
    wanted = sorted({int(i) for i in np.linspace(start, stop - 1, num=max(1, min(n, stop - start)))})
    gap = (stop - start) / max(1, len(wanted))
    cap, _ = open_video(path)
    try:
        frames: list[np.ndarray] = []
        if gap <= _SEEK_GAP:
            if start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            want = set(wanted)
            for index in range(start, wanted[-1] + 1):
                if index in want:
                    ok, frame = cap.read()
                    if ok and frame is not None:
                        frames.append(frame)
                elif not cap.grab():
                    break
            return frames
        for index in wanted:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(frame)
        return frames
    finally:
        cap.release()


def detect_video(
    video_path: str | Path,
    config: DetectorConfig | None = None,
    camera_id: str | None = None,
    every: int = 1,
    detector: MOG2Detector | None = None,
) -> Iterator[tuple[int, np.ndarray, list[Detection]]]:
    """Run a detector over a whole video, yielding ``(frame_index, frame_bgr, detections)``.

    Every ``every``-th frame (index % every == 0) is yielded once the model is ready;
    every frame is fed to the background model. With ``config.median_frames > 0``
    the model is primed from the median of that many frames spread over the clip
    (or over each ``median_window`` segment), so frame 0 is already usable.
    ``detector`` lets the caller read counters (e.g. ``rejected_frames``) afterwards;
    its config wins over ``config``.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    path = Path(video_path)
    det = detector or MOG2Detector(config)
    cfg = det.config
    cam = camera_id or path.stem
    cap, count = open_video(path)
    segment = cfg.median_window if cfg.median_window > 0 else max(count, 1)
    frozen = cfg.learning_rate == 0
    try:
        index = 0
        while True:
            if cfg.median_frames > 0 and count > 0 and index % segment == 0 and index < count:
                sample = _sample_frames(path, index, min(index + segment, count), cfg.median_frames)
                if sample:
                    det.prime(sample)
            keep = index % every == 0
            if not keep and frozen and det.is_ready:
                # A frozen model learns nothing from a frame: skip its decode and apply.
                if not cap.grab():
                    break
                index += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if keep:
                ready = det.is_ready
                detections = det.detect(frame, camera_id=cam, frame_index=index)
                if ready:
                    yield index, frame, detections
            else:
                det.foreground_mask(frame)
            index += 1
    finally:
        cap.release()
