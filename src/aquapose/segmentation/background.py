"""Background images and light for the detector: per-pixel median of sample frames,
a robust background that leaves out resting fish, and the light change between a
background and a frame.

**Resting fish and ghosts.** A per-pixel median of frames spread over a clip holds a
fish that rests in one spot in more than about half of them: the fish is then missed
while it rests, and its image in the background shows as a *ghost* on the empty floor
once it has left. :func:`robust_background` heals that (detect -> recognise -> re-estimate):

1. a first background ``B0`` (median, light divided out, mean of the inliers);
2. in each sample frame, the regions that differ from ``B0`` (smoothed grey difference
   above ``max(4, 3 noise std)``, opened, at least ``min_area`` pixels) are either a
   fish in the frame or a ghost of ``B0``. A region that changes between the frame
   and its *partner* (a frame 0.2 s away, when given) in over a quarter of its pixels
   is a swimming fish: the floor does not move. Otherwise a ghost is recognised by
   its outline: inside the region the background differs from the floor around it and
   the frame does not. The *outline* of an image there is the hypot of the differences
   of the mean and of the std of its grey level between the region's inside (2 px in,
   where the region is that thick: its edge pixels are those the threshold picked,
   biased on gravel; the region closed and its holes filled) and a 2 px ring outside.
   ``B0``'s outline > ``ghost_edge_ratio`` x the frame's, and > 3 grey levels and 2
   noise std: a ghost; a fish in the frame has it the other way round. Means and stds
   over rings average out a textured floor, whose edges are everywhere; the std tells
   a fish with the floor's mean grey but a dark head (its spread unlike the floor's)
   from the floor. On a textured floor texture tells first: a fish of the floor's mean
   grey has no mean outline, but hides the stones. Where the background
   is textured around the region and inside it (median 3x3 local grey std above the
   noise std: the floor) and the frame is smoother inside (under 0.6 x, its noise taken
   out): a fish in the frame, whatever the outlines say (unless the ghost is sure,
   below); the background smooth inside (under half the floor's std around it), the
   frame as textured as around (above 1.5 noise std) and its outline weaker than the
   background's (a textured fish on a floor of fine grain, in the frame: no ghost): a
   ghost;
3. each pixel covered by a ghost (grown by 2 px: a fish's faint fins) in at least two
   frames is re-estimated as the mean of those frames there: they show the floor (a
   resting fish's ghost shows in every frame after it left; one frame's misjudged fish
   is not written into the background), in each connected region where those frames
   agree (median grey std across them within noise: two frames that both misjudged a
   passing fish disagree, and would leave a phantom in every frame). A *sure* ghost in
   the first or the last sample counts as two frames: the background's outline over 2 x
   ``ghost_edge_ratio`` x the frame's (or the noise std), and still against its partner
   (a fish resting most of a clip may leave it only in its last sample, or arrive
   after the first). Between them a sure ghost counts once: a pale fish resting on a
   dark spot of the floor hides it, and looks like its ghost in that frame. Sure ghosts
   are healed first, then every ghost against that background (see
   :func:`heal_ghosts`). Where the floor has a local feature (a bright stone) and a
   fish's ghost has the grey of the floor around it, the frames that show the floor
   look like a fish on it. A region still and unlike the background in the first
   sample, the last and at least one between that shows the same, is the floor (the
   mean of the samples that show it): a resting fish is not found in the same spot and
   pose at both ends of the clip, and away in between. Still regions are also looked
   for at two thirds of the change level (``max(8/3, 2 noise std)``): a faint fish
   resting in most samples leaves in ``B0`` a blend of itself and the floor that
   differs from the floor by less than the change level, so no ghost shows, yet the
   detector finds it. Those are judged after the regions found at the change level,
   and one that holds a region written then is left alone (at the lower level a region
   may join one the frames agree on to floor they do not). So is the spot a fish rested on
   when it is swimming off it at both ends: in a moving region, the still pixels of one
   sign of (frame - background) beside moving ones of the other (the fish now, darker or
   lighter than the floor its old spot shows). Conversely, a ghost region that the
   first and the last sample both show as the background does (each nearer to it than
   to the frames taken for the floor, by mean |grey difference| over the region, and
   within the change threshold in half its pixels) is not healed: the
   background is the floor there, and a fish of the floor's grey resting on a bright
   stone between them hid it (no outline in those frames, the stone's in the
   background) and was taken for the floor. Regions that
   touch the frame's border are left alone (a fish entering the view, half of its
   outline cut off, or the shadow of a fish outside it, is easily misjudged, and a
   misjudged fish written into the background is a phantom in every frame).

A fish that never leaves its spot in any sample frame cannot be told from the floor.

The light of a tank drifts slowly (global gain) and moves (a gradient across the
floor). A frozen background model sees both as foreground. :class:`LightField` fits
``frame / background`` with a plane ``a + b x + c y`` through block medians of a
sparse pixel sample (robust to the few fish in a frame) and divides it out, tile
by tile (one scalar gain per tile: cheap at 1600x1200).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = [
    "LightField",
    "check_frame",
    "ghost_regions",
    "heal_ghosts",
    "is_ghost",
    "local_variance",
    "median_background",
    "robust_background",
    "smoother",
    "texture",
]

#: Gains this close to 1 everywhere leave the frame untouched.
_GAIN_TOLERANCE = 0.003


def check_frame(frame: Any) -> np.ndarray:
    """Validate a (H, W, 3) uint8 BGR frame and return it."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(
            f"frame must be a numpy array (H, W, 3) uint8 BGR, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frame must be (H, W, 3) uint8 BGR, got shape {frame.shape} dtype {frame.dtype}"
        )
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise ValueError(f"frame is too small: {frame.shape}")
    return frame


class LightField:
    """Relative light of frames against one background image (both BGR uint8, same size).

    Args:
        background: (H, W, 3) uint8, the reference (e.g. the median background).
        blocks: blocks per side whose median ratios are fitted (robust to fish).
        tiles: tiles per side, each corrected with one gain.
    """

    def __init__(self, background: np.ndarray, blocks: int = 4, tiles: int = 8) -> None:
        h, w = background.shape[:2]
        self.shape = (h, w)
        self._step = max(1, min(h, w) // 120)
        ref = self._sample(background)
        sh, sw = ref.shape
        self._bh, self._bw = max(1, sh // blocks), max(1, sw // blocks)
        self._blocks = (min(blocks, sh), min(blocks, sw))
        self._ref = np.maximum(ref[: self._bh * self._blocks[0], : self._bw * self._blocks[1]], 1.0)
        # Block centres, normalised to [-0.5, 0.5], and the plane's least-squares solver.
        by = (np.arange(self._blocks[0]) + 0.5) / self._blocks[0] - 0.5
        bx = (np.arange(self._blocks[1]) + 0.5) / self._blocks[1] - 0.5
        gy, gx = np.meshgrid(by, bx, indexing="ij")
        design = np.stack([np.ones(gx.size), gx.ravel(), gy.ravel()], axis=1)
        self._solve = np.linalg.pinv(design)
        self._max_tiles = max(1, min(tiles, h, w))

    def _sample(self, image: np.ndarray) -> np.ndarray:
        s = self._step
        sub = image[s // 2 :: s, s // 2 :: s]
        # The channel mean, summed plane by plane (numpy's strided mean is ~8x slower).
        return (sub[:, :, 0].astype(np.float32) + sub[:, :, 1] + sub[:, :, 2]) * np.float32(1 / 3)

    def plane(self, frame: np.ndarray) -> np.ndarray:
        """(a, b, c) of ``frame / background ≈ a + b x + c y`` (x, y in [-0.5, 0.5])."""
        cur = self._sample(frame)[: self._ref.shape[0], : self._ref.shape[1]]
        ratio = cur / self._ref
        by, bx = self._blocks
        blocks = ratio.reshape(by, self._bh, bx, self._bw).transpose(0, 2, 1, 3)
        medians = np.median(blocks.reshape(by, bx, -1), axis=2).ravel()
        return self._solve @ medians

    def correct(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with the fitted light divided out (a new array), or ``frame`` itself
        when the light matches the background's already."""
        if frame.shape[:2] != self.shape:
            raise ValueError(
                f"frame size {frame.shape[:2]} differs from the background's {self.shape}"
            )
        a, b, c = self.plane(frame)
        # As few tiles as keep the gain step between neighbours under the tolerance.
        h, w = self.shape
        n = int(min(self._max_tiles, np.ceil((abs(b) + abs(c)) / _GAIN_TOLERANCE)))
        ys = np.linspace(0, h, n + 1).round().astype(int)
        xs = np.linspace(0, w, n + 1).round().astype(int)
        cy = (ys[:-1] + ys[1:]) / (2.0 * h) - 0.5
        cx = (xs[:-1] + xs[1:]) / (2.0 * w) - 0.5
        gains = 1.0 / np.maximum(a + b * cx[None, :] + c * cy[:, None], 1e-3)
        if np.all(np.abs(gains - 1.0) < _GAIN_TOLERANCE):
            return frame
        if n == 1:
            return cv2.convertScaleAbs(frame, alpha=float(gains[0, 0]))
        out = np.empty_like(frame)
        for i in range(n):
            for j in range(n):
                tile = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
                cv2.convertScaleAbs(frame[tile], dst=out[tile], alpha=float(gains[i, j]))
        return out

    def noise_sigma(
        self, frames: list[np.ndarray], background: np.ndarray, corrected: bool = False
    ) -> float:
        """Robust per-channel noise std of ``frames`` around ``background`` (after light
        correction, unless ``corrected``): the RMS of the differences within 3.5 robust
        std (1.4826 x median absolute deviation) of zero, over a pixel sample. Fish and
        light leftovers are outliers; grey levels being integers does not bias it."""
        s = self._step
        ref = background[s // 2 :: s, s // 2 :: s].astype(np.float32)
        diffs = []
        for frame in frames:
            image = frame if corrected else self.correct(frame)
            diff = image[s // 2 :: s, s // 2 :: s].astype(np.float32) - ref
            diffs.append((diff - np.median(diff, axis=(0, 1))).ravel())
        if not diffs:
            return 0.0
        values = np.concatenate(diffs)
        mad_sigma = max(1.4826 * float(np.median(np.abs(values))), 0.5)
        inliers = values[np.abs(values) <= 3.5 * mad_sigma]
        return float(np.sqrt(np.mean(inliers**2))) if inliers.size else mad_sigma


def median_background(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Per-pixel median of same-size BGR frames: (H, W, 3) uint8.

    A fish that moves during most of the frames is removed; one that stays put in
    more than half of them remains part of the background.
    """
    stack = [check_frame(f) for f in frames]
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
    frames: Sequence[np.ndarray],
    correct_light: bool = True,
    min_area: float = 0.0,
    ghost_edge_ratio: float = 2.0,
    partners: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, float]:
    """Background image of a clip from sample frames, and the noise std around it.

    1. per-pixel median of the frames; 2. each frame's light change against it divided
    out (:class:`LightField`), median again; 3. per pixel, the mean of the samples within
    3 noise std (at least 4 grey levels) of that median. Fish and their shadows that
    stay in one place in up to about half of the samples are left out (a plain median
    of frames under drifting light keeps a faint ghost of them). 4. with ``min_area`` >
    0, fish resting longer are healed out (see the module's docstring: ghosts of at
    least ``min_area`` pixels are recognised by their outline and re-estimated from the
    frames that show the floor there). ``partners``: for each frame, one a few frames
    away (:func:`~aquapose.segmentation.io.video.sample_frame_pairs`): regions that
    move between the two are fish, never ghosts (see :func:`ghost_regions`).

    Returns ((H, W, 3) uint8 background, per-channel noise std in grey levels).
    """
    first = median_background(frames)
    if len(frames) < 2:
        return first, 0.0
    light = LightField(first)
    corrected = [light.correct(f) for f in frames] if correct_light else list(frames)
    median = median_background(corrected)
    sigma = LightField(median).noise_sigma(corrected, median, corrected=True)
    limit = _change_level(sigma)
    total = np.zeros(median.shape, np.float32)
    count = np.zeros(median.shape, np.float32)
    for image in corrected:
        inlier = (cv2.absdiff(image, median) <= limit).astype(np.float32)
        total += image * inlier
        count += inlier
    background = np.where(count > 0, total / np.maximum(count, 1.0), median)
    first_pass = np.clip(np.rint(background), 0, 255).astype(np.uint8)
    if min_area <= 0:
        return first_pass, sigma
    if partners is not None:
        partners = [light.correct(f) for f in partners] if correct_light else list(partners)
    healed = heal_ghosts(corrected, first_pass, sigma, min_area, ghost_edge_ratio, partners)
    return healed, sigma


_RING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))  # 2 px rings
_OPEN3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
#: variance of the 3x3 local mean's residual for white noise of unit variance (8/9)
_NOISE_VAR = 8.0 / 9.0
#: a region with more of its pixels changing between a frame and its partner: a fish
_MOVED = 0.25


def _change_level(sigma: float) -> float:
    """Grey levels by which a frame differs from the background where something changed
    (noise std ``sigma``): ``max(4, 3 sigma)``."""
    return max(4.0, 3.0 * sigma)


def _still_level(sigma: float) -> float:
    """Grey levels by which a frame differs from the background where a still region may
    be the floor (the background holding a faint fish's blend with it): ``max(8/3, 2
    sigma)``, two thirds of the change level (:func:`_change_level`); see the module's
    docstring."""
    return max(8.0 / 3.0, 2.0 * sigma)


def _outline(grey: np.ndarray, inside: np.ndarray, outer: np.ndarray) -> float:
    """How much a grey window's region differs from the ring around it (bool or uint8
    0/1 masks): the hypot of the differences of their means and of their standard
    deviations."""
    mean_in, std_in = _mean_std(grey, inside)
    mean_out, std_out = _mean_std(grey, outer)
    return math.hypot(mean_in - mean_out, std_in - std_out)


def _mean_std(grey: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation of a grey window under a mask."""
    mean, std = cv2.meanStdDev(grey, mask=where.view(np.uint8))
    return float(mean[0, 0]), float(std[0, 0])


def local_variance(image: np.ndarray, side: int) -> np.ndarray:
    """Grey-level variance of ``image`` (uint8 or float32) over a ``side`` x ``side`` box
    around each pixel, float32 (box borders reflected)."""
    box = (side, side)
    mean = cv2.boxFilter(image, cv2.CV_32F, box)
    return cv2.sqrBoxFilter(image, cv2.CV_32F, box) - mean * mean


def texture(variance: np.ndarray, where: np.ndarray, median: bool = False) -> float:
    """Root mean (or median) of a local-variance window over the pixels ``where``."""
    values = variance[where]
    return float(np.sqrt(max(float(np.median(values) if median else values.mean()), 0.0)))


def _filled(region: np.ndarray) -> np.ndarray:
    """A uint8 0/1 region closed (5x5) and with its holes filled: the area it outlines,
    not only the pixels a threshold picked inside it."""
    return _holes_filled(cv2.morphologyEx(region, cv2.MORPH_CLOSE, _RING))


def _holes_filled(region: np.ndarray) -> np.ndarray:
    """A uint8 0/1 region with its holes filled."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(region)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out


def _rings(region: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bool masks (inside, outer, deep) of a filled uint8 0/1 region: ``deep`` 2 px in
    (maybe empty), ``inside`` that or the region when it is thinner, ``outer`` the 2 px
    ring round it over the pixels ``free`` (bool) allows."""
    deep = cv2.erode(region, _RING) > 0
    inside = deep if deep.any() else region > 0
    outer = (cv2.dilate(region, _RING) > 0) & (region == 0) & free
    return inside, outer, deep


def _changed_regions(
    diff: np.ndarray, level: float, min_area: float
) -> Iterator[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]:
    """The regions where a smoothed |frame - background| (``diff``, float32) is over
    ``level`` (opened), of at least ``min_area`` pixels, not touching the border: for
    each, its window (rows, columns: the region and 4 px round it), the region filled
    (:func:`_filled`, uint8 0/1) and the window's pixels outside every region (bool)."""
    changed = cv2.morphologyEx((diff > level).astype(np.uint8), cv2.MORPH_OPEN, _OPEN3)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    height, width = changed.shape
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < min_area or x == 0 or y == 0 or x + w == width or y + h == height:
            continue
        window = (
            slice(max(0, y - 4), min(height, y + h + 4)),
            slice(max(0, x - 4), min(width, x + w + 4)),
        )
        yield window, _filled((labels[window] == i).astype(np.uint8)), labels[window] == 0


def ghost_regions(
    frame: np.ndarray,
    background: np.ndarray,
    sigma: float,
    min_area: float,
    ghost_edge_ratio: float = 2.0,
    partner: np.ndarray | None = None,
    still: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 mask of the regions where ``background`` holds something ``frame`` does
    not (a resting fish that has left): regions differing from the background whose
    outline is in the background, not in the frame (see the module's docstring). 0: not
    a ghost, 1: a ghost, 2: a sure one (the frame shows no outline at all and does not
    change from ``partner``, a frame a few frames away: see :func:`heal_ghosts`).
    Regions that change between ``frame`` and ``partner`` are moving fish, never ghosts.
    ``still``: a (H, W) uint8 array, given with ``partner``, raised over every still
    region (ghost or not) and the spot a swimming fish left (:func:`_old_spot`): to 2
    where found at the change level, to 1 where found at the still level
    (:func:`_still_level`) only.

    The outline is measured as the difference in mean and std of the grey level between
    the region's inside (2 px in) and a 2 px ring outside it, in the frame and in the
    background: a fish in the frame differs from the floor around it in the frame and
    not in the background; a ghost the other way round. Means and stds over rings
    average out the floor's texture (a gravel floor has strong edges everywhere, but no
    step along a fish's outline)."""
    grey_f = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    grey_b = cv2.cvtColor(background, cv2.COLOR_BGR2GRAY)
    diff = cv2.GaussianBlur(cv2.absdiff(grey_f, grey_b).astype(np.float32), (0, 0), 1.0)
    ghosts = np.zeros(diff.shape, np.uint8)
    level = _change_level(sigma)
    moved = None
    if partner is not None:
        grey_p = cv2.cvtColor(partner, cv2.COLOR_BGR2GRAY)
        motion = cv2.GaussianBlur(cv2.absdiff(grey_f, grey_p).astype(np.float32), (0, 0), 1.0)
        moved = motion > level
    if still is not None and moved is not None:  # tier 1: still at the still level
        for window, region, _ in _changed_regions(diff, _still_level(sigma), min_area):
            _mark_still(still, window, region, 1, grey_f, grey_b, moved, min_area)
    for window, region, free in _changed_regions(diff, level, min_area):
        # 2 px inside: the region's edge pixels are those the threshold picked (on
        # gravel, the floor pixels least like the fish): biased.
        inside, outer, deep = _rings(region, free)
        if not outer.any():
            continue
        if moved is not None:
            if still is not None:
                _mark_still(still, window, region, 2, grey_f, grey_b, moved, min_area)
            if moved[window][region > 0].mean() > _MOVED:
                continue
        rings = (inside, outer, deep)
        kind = _ghost_kind(
            grey_f[window], grey_b[window], rings, sigma, ghost_edge_ratio, moved is not None
        )
        if kind:
            np.maximum(ghosts[window], region * kind, out=ghosts[window])
    return ghosts


def _mark_still(
    still: np.ndarray,
    window: tuple[slice, slice],
    region: np.ndarray,
    tier: int,
    grey_f: np.ndarray,
    grey_b: np.ndarray,
    moved: np.ndarray,
    min_area: float,
) -> None:
    """Raise ``still`` (uint8, frame-sized) to ``tier`` over a region (uint8 0/1 in
    ``window``) that does not move against the partner (``moved``: bool, frame-sized),
    or over the spot a fish swam off (:func:`_old_spot`) when it does."""
    if moved[window][region > 0].mean() > _MOVED:
        region = _old_spot(region, grey_f[window], grey_b[window], moved[window], min_area)
    np.maximum(still[window], region * np.uint8(tier), out=still[window])


def is_ghost(
    grey_f: np.ndarray,
    grey_b: np.ndarray,
    region: np.ndarray,
    free: np.ndarray,
    sigma: float,
    min_area: float,
    ghost_edge_ratio: float = 2.0,
) -> bool:
    """Whether a region found in a frame is a ghost the background holds, not a fish.

    ``region``: uint8 0/1 window with a 4 px margin round it; ``grey_f``, ``grey_b``: the
    frame's and the background's grey levels there (uint8); ``free``: bool window of the
    pixels its outer ring may use (not another fish). A ghost: the region's outline
    (:func:`_outline`, its holes filled) in the background is over ``ghost_edge_ratio``
    x the frame's, over 3 grey levels and over 1.5 x the grey std of the background's
    ring (a floor of bumps or stones differs from itself that much by chance), and it is
    no fish hiding a textured floor (:func:`_hides_floor`). Regions under ``min_area``
    pixels are not judged."""
    region = _holes_filled(region)
    inside, outer, _ = _rings(region, free)
    if cv2.countNonZero(region) < min_area or not outer.any():
        return False
    mean_in, std_in = _mean_std(grey_b, inside)
    mean_out, std_out = _mean_std(grey_b, outer)
    outline_b = math.hypot(mean_in - mean_out, std_in - std_out)
    if outline_b <= max(3.0, 1.5 * std_out):  # most fish: no outline in the background
        return False
    if outline_b <= ghost_edge_ratio * _outline(grey_f, inside, outer):
        return False
    variances = local_variance(grey_f, 3), local_variance(grey_b, 3)
    return not _hides_floor(*variances, (inside, outer), sigma)


def _old_spot(
    region: np.ndarray, grey_f: np.ndarray, grey_b: np.ndarray, moved: np.ndarray, min_area: float
) -> np.ndarray:
    """uint8 0/1: the still part of a moving region (uint8 0/1; grey windows of the frame
    and the background, bool window of the pixels that change against the partner) where a
    fish swam off the spot it rested on: the pixels of one sign of (frame - background)
    (smoothed, 1 px), at least ``min_area`` of them, of which at most ``_MOVED`` change,
    beside at least as many of the other sign of which over twice that change (the fish
    now, darker or lighter than the floor its old spot now shows). Zeros otherwise."""
    signed = cv2.GaussianBlur(grey_f.astype(np.float32) - grey_b, (0, 0), 1.0)
    parts = []
    for sign in (1.0, -1.0):
        part = ((signed * sign > 0) & (region > 0)).astype(np.uint8)
        part = cv2.morphologyEx(part, cv2.MORPH_OPEN, _OPEN3)
        size = np.count_nonzero(part)
        parts.append((part, size, float(moved[part > 0].mean()) if size >= min_area else 1.0))
    for (part, size, change), (_, other, other_change) in (parts, parts[::-1]):
        if (
            size >= min_area
            and change <= _MOVED
            and other >= min_area
            and other_change > 2 * _MOVED
        ):
            return part
    return np.zeros_like(region)


def _ghost_kind(
    grey_f: np.ndarray,
    grey_b: np.ndarray,
    rings: tuple[np.ndarray, np.ndarray, np.ndarray],
    sigma: float,
    ratio: float,
    still: bool,
) -> int:
    """0: not a ghost, 1: a ghost, 2: a sure ghost, for a region given as bool masks
    (its inside, the ring around it, its interior 2 px inside: maybe empty) of grey
    windows of the frame and the background; ``still``: the region does not change
    against the frame's partner (see the module's docstring)."""
    inside, outer, interior = rings
    outline_f, outline_b = _outline(grey_f, inside, outer), _outline(grey_b, inside, outer)
    if still and outline_b > max(2.0 * ratio * max(outline_f, sigma), 3.0):
        return 2
    if interior.any():
        var_f, var_b = local_variance(grey_f, 3), local_variance(grey_b, 3)
        level = max(sigma, 2.0)
        if _hides_floor(var_f, var_b, (interior, outer), sigma):
            return 0
        floor_f, floor_b = texture(var_f, outer), texture(var_b, outer)
        if (
            outline_f < outline_b
            and floor_b > level
            and floor_f > max(1.5 * sigma, 2.0)
            and 0.8 * floor_f < texture(var_f, interior) < 1.5 * floor_f
            and texture(var_b, interior) < 0.5 * floor_b
        ):
            return 1
    return int(outline_b > max(ratio * outline_f, 3.0, 2.0 * sigma))


def _hides_floor(
    var_f: np.ndarray, var_b: np.ndarray, rings: tuple[np.ndarray, np.ndarray], sigma: float
) -> bool:
    """Whether a region (bool masks of its interior and of the ring round it, over 3x3
    local-variance windows of the frame and of the background) is a fish that hides a
    textured floor: the background textured inside and around (median local std over
    ``max(sigma, 2)``), the frame smoother inside (under 0.6 x, its noise taken out)."""
    interior, outer = rings
    # medians: the rings' and the interior's pixels may straddle the fish's edge
    grain_f, grain_b = texture(var_f, interior, True), texture(var_b, interior, True)
    return min(texture(var_b, outer, True), grain_b) > max(sigma, 2.0) and smoother(
        grain_f, grain_b, sigma, 0.6
    )


def smoother(grain_f: float, grain_b: float, sigma: float, ratio: float) -> bool:
    """Whether the frame's grain ``grain_f`` (median 3x3 grey std, :func:`texture`) is
    under ``ratio`` x the floor's ``grain_b``, the frame's noise (std ``sigma``) taken
    out."""
    return grain_f**2 - _NOISE_VAR * sigma**2 < (ratio * grain_b) ** 2


def heal_ghosts(
    frames: Sequence[np.ndarray],
    background: np.ndarray,
    sigma: float,
    min_area: float,
    ghost_edge_ratio: float = 2.0,
    partners: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """``background`` with the ghosts that ``frames`` (in time order) reveal
    (:func:`ghost_regions`, grown by 2 px) replaced by the mean of the frames that show the
    floor there: where at least two frames do (a sure ghost in the first or last frame
    counts as two), in each connected region whose frames agree (median grey-level std
    across them within ``max(2, 2 sigma)``: the floor is the same in every frame that
    shows it; a fish that one frame's ghost test misjudged is not, and is not written
    into the background as a phantom).

    Two passes: sure ghosts alone first, then every ghost against the background they
    healed. A background that blends a resting fish with the floor (the fish in it where
    it lay in most samples, the floor beside) shows, in the frames where the fish rests,
    floor inside a ring of ghost: a ghost's outline. Once the sure ghosts (the frames
    after it left) have put the floor back, those frames show a fish in the frame. With
    ``partners``, the second pass also takes as the floor each region still and unlike
    the background in the first frame, the last and at least one between that shows
    the same, where those frames agree (found at the change level, then at the still
    level: :func:`_still_level`). Regions that the first and the last frames show as the
    background does are left alone (see the module's docstring)."""
    sure = _heal(frames, background, sigma, min_area, ghost_edge_ratio, partners, True)
    return _heal(frames, sure, sigma, min_area, ghost_edge_ratio, partners, False)


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) float32 grey levels of a (H, W, 3) uint8 BGR frame."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)


class _Floor:
    """Per-pixel weighted sums of frames that show the floor: their mean and grey spread."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.total = np.zeros((*shape, 3), np.float32)
        self.greys = np.zeros(shape, np.float32)
        self.squares = np.zeros(shape, np.float32)
        self.count = np.zeros(shape, np.float32)

    def add(self, frame: np.ndarray, grey: np.ndarray, weight: np.ndarray) -> None:
        """Add a (H, W, 3) uint8 frame, its (H, W) float32 grey, with a float32 weight."""
        self.total += frame * weight[:, :, None]
        self.greys += grey * weight
        self.squares += grey * grey * weight
        self.count += weight

    def write(
        self,
        out: np.ndarray,
        where: np.ndarray,
        limit: float,
        min_size: float = 0,
        avoid: np.ndarray | None = None,
    ) -> np.ndarray:
        """Set ``out`` to the frames' mean in each connected region of ``where`` of at least
        ``min_size`` pixels whose frames agree (median grey std across them <= ``limit``)
        and that has no pixel in ``avoid`` (bool); returns where it did (bool)."""
        n = np.maximum(self.count, 1.0)
        spread = np.sqrt(np.maximum(self.squares / n - (self.greys / n) ** 2, 0.0))
        regions, labels = cv2.connectedComponents(where.astype(np.uint8), connectivity=8)
        written = np.zeros(where.shape, bool)
        for i in range(1, regions):
            region = labels == i
            if np.count_nonzero(region) < min_size or float(np.median(spread[region])) > limit:
                continue  # the frames disagree on what lies there: not the floor
            if avoid is not None and avoid[region].any():
                continue
            mean = self.total[region] / self.count[region][:, None]
            out[region] = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
            written |= region
        return written


def _shown_at_both_ends(
    where: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    background: np.ndarray,
    floor_grey: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """bool (H, W): the connected regions of ``where`` (bool) that ``first`` and ``last``
    (BGR uint8) both show as ``background`` does: each looks more like it than like
    ``floor_grey`` (float32 grey levels: the mean of the frames taken for the floor
    there) by the mean absolute grey difference over the region, and both are within
    the change level (:func:`_change_level`, smoothed) of it in at least half of
    its pixels."""
    grey_b = _grey(background)
    regions, labels = cv2.connectedComponents(where.astype(np.uint8), connectivity=8)
    flat = labels.ravel()
    shown = np.ones(regions, bool)
    alike = np.ones(where.shape, bool)
    for frame in (first, last):
        grey = _grey(frame)
        away = np.abs(grey - grey_b)
        to_floor = np.abs(grey - floor_grey)
        shown &= np.bincount(flat, away.ravel(), regions) < np.bincount(
            flat, to_floor.ravel(), regions
        )
        alike &= cv2.GaussianBlur(away, (0, 0), 1.0) <= _change_level(sigma)
    shown &= np.bincount(flat[alike.ravel()], minlength=regions) >= 0.5 * np.bincount(
        flat, minlength=regions
    )
    shown[0] = False  # not a region
    return shown[labels]


def _heal(
    frames: Sequence[np.ndarray],
    background: np.ndarray,
    sigma: float,
    min_area: float,
    ghost_edge_ratio: float,
    partners: Sequence[np.ndarray] | None,
    sure_only: bool,
) -> np.ndarray:
    """One pass of :func:`heal_ghosts`, from sure ghosts only or from every ghost (and
    from still regions at both ends of the clip)."""
    shape = background.shape[:2]
    shown = _Floor(shape)  # over the frames whose ghosts show the floor
    # still regions found at the change level (2), and at the still level (1)
    tiers = () if sure_only or partners is None else (2, 1)
    ends = {tier: _Floor(shape) for tier in tiers}
    at_ends = {tier: np.ones(shape, bool) for tier in tiers}
    last = len(frames) - 1
    if ends:  # what the first and the last frames show, and how near is alike
        reference, alike = (_grey(frames[0]) + _grey(frames[last])) / 2, _change_level(sigma)
    for k, frame in enumerate(frames):
        partner = None if partners is None else partners[k]
        still = np.zeros(shape, np.uint8) if ends else None
        ghosts = ghost_regions(frame, background, sigma, min_area, ghost_edge_ratio, partner, still)
        grey = None
        if still is not None:
            grey = _grey(frame)
            near = cv2.GaussianBlur(np.abs(grey - reference), (0, 0), 1.0) <= alike
            for tier in tiers:
                ends[tier].add(frame, grey, ((still >= tier) & near).astype(np.float32))
                if k in (0, last):
                    at_ends[tier] &= still >= tier
        if sure_only:
            ghosts = ghosts * (ghosts == 2)
        if not ghosts.any():
            continue
        if 0 < k < last:
            ghosts = np.minimum(ghosts, 1)  # sure ghosts count twice only at the ends
        grey = _grey(frame) if grey is None else grey
        shown.add(frame, grey, cv2.dilate(ghosts, _RING).astype(np.float32))
    healed = shown.count >= 2
    if healed.any():
        floor_grey = shown.greys / np.maximum(shown.count, 1.0)
        healed &= ~_shown_at_both_ends(
            healed, frames[0], frames[last], background, floor_grey, sigma
        )
    limit = max(2.0, 2.0 * sigma)
    out = background.copy()
    # Still and unlike the background in the first sample, the last and one between
    # that shows the same (a resting fish between them does not): the floor, whatever
    # the outlines say (slivers left alone). Regions found at the change level first:
    # one at the still level may join a region the frames agree on to floor they do not.
    written = np.zeros(shape, bool)
    for tier in tiers:
        where = at_ends[tier] & (ends[tier].count >= 3) & ~healed
        if where.any():
            written |= ends[tier].write(out, where, limit, min_area / 4, written)
    if healed.any():
        shown.write(out, healed, limit)
    return out
