"""Blob-mask helpers of the detector: kernels, components, the watershed merge rule,
and the windowed RLE encoding of a detection's blob mask."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from aquapose.segmentation.background import smoother
from aquapose.segmentation.masks import window_rle
from aquapose.segmentation.types import Detection

__all__ = [
    "FOREGROUND",
    "BlobRules",
    "absorb_patches",
    "components",
    "core_hulls",
    "detection_rle",
    "faint_fish_beside",
    "fill_to_nearest",
    "join_tails",
    "kernel",
    "merge_small_parts",
    "merge_wide_necks",
    "Piece",
    "pad1",
    "quantile",
    "split_by_cores",
    "split_bridged",
    "split_by_sign",
    "trim_shadows",
]

#: MOG2's label of foreground-only pixels (shadow pixels are 127).
FOREGROUND = 255
#: A light fish's cast shadow holds at most this x the fish's area (its visible part is
#: the fish's silhouette moved aside, never larger; a pale fish's own kept part can be
#: half of it) and lines the fish's edge over this fraction of the shorter one's length.
_SHADOW_AREA, _SHADOW_CONTACT = 2.5, 0.2
#: a patch with this share of its pixels in a larger piece's hull is part of it
_PATCH_INSIDE = 0.9
_OPEN3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_NEAR2 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))  # within 2 px


@dataclass(frozen=True)
class BlobRules:
    """The detector's blob thresholds at working scale (areas in working pixels).

    Built by :class:`~aquapose.segmentation.detector.MOG2Detector` from its config;
    see :class:`~aquapose.segmentation.detector.DetectorConfig` for their meaning.
    """

    min_area: float
    min_core: float
    min_seed: float
    trim: np.ndarray | None
    shadow_contrast: float
    split_core_depth: float
    max_neck_ratio: float
    min_part_fraction: float
    sign_split_contrast: float
    max_shadow_reach: float = 0.0
    min_faint_fraction: float = 0.0
    max_shadow_darkening: float = 0.0
    bridge_contrast: float = 0.0
    tail_reach: float = 0.0
    join_contrast: float = 0.0
    join_texture_loss: float = 0.0
    slender_part_aspect: float = 0.0


def quantile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, 100 * q, method="nearest")`` of a 1-D array, by one
    ``np.partition``: ~4 us where ``np.percentile`` takes ~40 (many times a frame)."""
    k = int(round(q * (values.size - 1)))
    return float(np.partition(values, k)[k])


def _convex_hull(mask: np.ndarray) -> np.ndarray:
    """uint8 0/1: the convex hull of a non-empty uint8 0/1 mask, filled."""
    hull = np.zeros_like(mask)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(mask)), 1)
    return hull


def pad1(mask: np.ndarray) -> np.ndarray:
    """One-pixel zero border, so distances count from the window's edge too."""
    return cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def kernel(side: float) -> np.ndarray | None:
    """Elliptic kernel of the nearest odd side (even kernels shift the mask); None if < 3."""
    odd = 2 * int(round((side - 1) / 2)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (odd, odd)) if odd >= 3 else None


def components(mask: np.ndarray, min_area: float) -> list[np.ndarray]:
    """Connected components (uint8 0/1, 8-connected) of at least ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n == 2:
        return [mask] if stats[1, cv2.CC_STAT_AREA] >= min_area else []
    return [
        (labels == i).astype(np.uint8)
        for i in range(1, n)
        if stats[i, cv2.CC_STAT_AREA] >= min_area
    ]


def merge_wide_necks(
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


def trim_shadows(
    blob: np.ndarray,
    fg_window: np.ndarray,
    contrast: np.ndarray | None,
    rules: BlobRules,
    noise_sigma: float,
    floor_detail: Callable[[], float] | None = None,
    background: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Drop a fish's cast shadow from its blob; returns the pieces big enough for a fish.

    A blob with a sizeable foreground (255) core is a fish plus, often, its shadow
    (127). Kept: pixels within ``shadow_trim`` of the core or inside its convex hull
    (the body between dark patches; one hull per fish: :func:`core_hulls`), and pixels
    with the core's sign of contrast and at least ``shadow_contrast`` of its strength
    (fins, tail, a touching dark fish).
    A shadow is fainter than the dark fish casting it, and darker (not brighter)
    than the floor under a light fish. A blob without a core (a dark fish labelled
    shadow all over) is trimmed by its contrast alone: :func:`_trim_by_contrast`
    (``floor_detail``: called then, the std of the floor's detail under the blob).
    A trimmed-off piece that reaches away from the fish is a faint fish touching it
    (:func:`faint_fish_beside`), unless it is a light fish's cast shadow
    (:func:`_cast_shadow`; ``background``: the background's grey levels, uint8); a piece
    of a light fish's dark surround too dark for a cast shadow is a dark fish touching it,
    wherever it lies (:func:`_too_dark_for_a_shadow`).
    """
    core = ((fg_window == FOREGROUND) & (blob > 0)).astype(np.uint8)
    if np.count_nonzero(core) < rules.min_core:
        if contrast is None:
            return [blob]
        return _trim_by_contrast(blob, contrast, rules, noise_sigma, floor_detail)
    keep = cv2.dilate(core, rules.trim)
    hull = core_hulls(core, keep, blob, contrast)
    shadow = None
    if contrast is not None:
        level = quantile(contrast[core > 0], 0.5)
        if level > 0:  # a light fish: what darkens the floor beside it is its shadow
            shadow = _shadow_beside(blob, core, hull, contrast, rules, noise_sigma)
            keep &= 1 - shadow
        floor = max(rules.shadow_contrast * abs(level), 3.0 * noise_sigma)
        keep |= (contrast * np.sign(level) >= floor).astype(np.uint8)
    keep |= hull
    fish = blob & keep
    parts = components(fish, rules.min_area)
    if rules.max_shadow_reach > 0:
        dropped = blob & (1 - keep)
        if shadow is not None and contrast is not None and background is not None:
            dropped &= 1 - _cast_shadow(shadow, fish, contrast, background, rules)
            for piece in _too_dark_for_a_shadow(
                shadow & dropped, fish, contrast, background, rules
            ):
                parts.append(piece)
                dropped &= 1 - piece
        parts += faint_fish_beside(dropped, fish, rules)
    return parts


def _trim_by_contrast(
    blob: np.ndarray,
    contrast: np.ndarray,
    rules: BlobRules,
    noise_sigma: float,
    floor_detail: Callable[[], float] | None,
) -> list[np.ndarray]:
    """A blob without a foreground core, trimmed to its strong part (:func:`_strong_part`
    at ``shadow_contrast`` of its strength, against the noise and the floor's detail;
    closed 1 px), in pieces big enough for a fish. A dark fish that MOG2 labels shadow
    all over is darker than the shadow it casts, which joins its blob in a clear, still
    tank. Kept whole when its contrast is too faint or, over gravel, too patchy."""
    keep = _strong_part(blob, contrast, noise_sigma, rules.shadow_contrast, floor_detail)
    if keep is None:
        return [blob]
    keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, _OPEN3) & blob
    return components(keep, rules.min_area) or [blob]


def _shadow_beside(
    blob: np.ndarray,
    core: np.ndarray,
    hull: np.ndarray,
    contrast: np.ndarray,
    rules: BlobRules,
    noise_sigma: float,
) -> np.ndarray:
    """The cast shadow of a light fish (uint8 0/1): the blob's pieces outside the core's
    hull that are darker than the floor (smoothed, 1 px: 2 noise std), at least half a
    fish's area and a quarter of the core's (a pale fish's dark eyes are smaller). Left in,
    a small pale fish's shadow pulls its median contrast to the floor's (a faint speck)."""
    smooth = cv2.GaussianBlur(contrast, (0, 0), 1.0)
    dark = ((smooth <= -2.0 * noise_sigma) & (blob > 0) & (hull == 0)).astype(np.uint8)
    shadow = np.zeros_like(blob)
    for piece in components(dark, max(0.5 * rules.min_area, 0.25 * np.count_nonzero(core))):
        shadow |= piece
    return shadow


def _darkening(inside: np.ndarray, contrast: np.ndarray, background: np.ndarray) -> float:
    """How much darker than the floor a piece (bool mask) is, as a fraction of the floor's
    grey: the 10th percentile of ``contrast`` over the median ``background`` grey."""
    return -quantile(contrast[inside], 0.1) / max(quantile(background[inside], 0.5), 1.0)


def _too_dark_for_a_shadow(
    shadow: np.ndarray,
    fish: np.ndarray,
    contrast: np.ndarray,
    background: np.ndarray,
    rules: BlobRules,
) -> list[np.ndarray]:
    """The pieces of a light fish's dark surround (``shadow``, uint8 0/1, not its cast
    shadow) darker than any cast shadow (``max_shadow_darkening``, :func:`_darkening`):
    a dark fish touching it, lying beside it or reaching away. Opened, at least
    ``min_area`` and ``min_faint_fraction`` of the fish's (``fish``) area."""
    if rules.max_shadow_darkening <= 0:
        return []
    shadow = cv2.morphologyEx(shadow, cv2.MORPH_OPEN, _OPEN3)
    smallest = max(rules.min_area, rules.min_faint_fraction * np.count_nonzero(fish))
    return [
        piece
        for piece in components(shadow, smallest)
        if _darkening(piece > 0, contrast, background) >= rules.max_shadow_darkening
    ]


def _cast_shadow(
    shadow: np.ndarray,
    fish: np.ndarray,
    contrast: np.ndarray,
    background: np.ndarray,
    rules: BlobRules,
) -> np.ndarray:
    """The pieces of a light fish's dark surround (``shadow``, :func:`_shadow_beside`)
    that are its cast shadow, not a faint fish touching it (uint8 0/1): each darkens
    the floor by less than ``max_shadow_darkening`` of its grey (``background``: the
    background's grey levels; 10th percentile of ``contrast``), is at most
    ``_SHADOW_AREA`` x the fish's (``fish``) area and lines its edge. A faint dark
    fish this pale is larger or meets the fish at a point."""
    cast = np.zeros_like(shadow)
    if rules.max_shadow_darkening <= 0:
        return cast
    fish_area = np.count_nonzero(fish)
    fish_length = max(cv2.minAreaRect(cv2.findNonZero(fish))[1]) if fish_area else 0.0
    for piece in components(shadow, 1):
        inside = piece > 0
        if (
            _darkening(inside, contrast, background) >= rules.max_shadow_darkening
            or inside.sum() > _SHADOW_AREA * fish_area
        ):
            continue
        # the fish's pixels within 2 px of the piece: a band about 2 px deep along it
        contact = np.count_nonzero(fish & cv2.dilate(piece, _NEAR2)) / 2
        length = min(max(cv2.minAreaRect(cv2.findNonZero(piece))[1]), fish_length)
        if contact >= _SHADOW_CONTACT * length:
            cast |= piece
    return cast


def core_hulls(
    core: np.ndarray, near: np.ndarray, blob: np.ndarray, contrast: np.ndarray | None
) -> np.ndarray:
    """The body between a fish's core patches (uint8 0/1 windows): the core's convex hull.

    Patches of one sign whose groups (``near``: the core dilated by ``shadow_trim``) lie
    apart, with floor or shadow between them (median contrast under 0.3 of the core's),
    are several fish: one hull per group (crowds, whose shadows join them). A fish with
    dark patches is dark between them too; a fish over a textured floor differs from it
    both ways.
    """
    hull = _convex_hull(core)
    if contrast is None:
        return hull
    groups = components(near, 1)
    inside = contrast[core > 0]
    lighter = float(np.mean(inside > 0))
    if len(groups) < 2 or min(lighter, 1.0 - lighter) >= 0.1:
        return hull
    apart = np.zeros_like(core)
    for group in groups:
        apart |= _convex_hull(group & core)
    between = (hull > 0) & (apart == 0) & (near == 0) & (blob > 0)
    if between.any() and abs(quantile(contrast[between], 0.5)) >= 0.3 * abs(quantile(inside, 0.5)):
        return hull
    return apart


def faint_fish_beside(dropped: np.ndarray, fish: np.ndarray, rules: BlobRules) -> list[np.ndarray]:
    """Pieces trimmed off a fish's blob that are a faint fish touching it, not its shadow.

    A cast shadow shows as a rim along the fish's edge: none of its pixels lies much
    farther from the fish than the rim is thick. A faint fish touching a darker one
    reaches away from it. A piece (opened, at least ``min_area``) is returned as a fish
    of its own when its farthest pixel from the fish is more than ``max_shadow_reach``
    x its own half-thickness (deepest distance to its edge) and it holds at least
    ``min_faint_fraction`` of the fish's area (a fish's fainter fins are smaller).
    """
    dropped = cv2.morphologyEx(dropped, cv2.MORPH_OPEN, _OPEN3)
    smallest = max(rules.min_area, rules.min_faint_fraction * np.count_nonzero(fish))
    pieces = components(dropped, smallest)
    if not pieces:
        return []
    away = cv2.distanceTransform(1 - fish, cv2.DIST_L2, 3)
    found = []
    for piece in pieces:
        inside = piece > 0
        half_thickness = float(cv2.distanceTransform(pad1(piece), cv2.DIST_L2, 3).max())
        if float(away[inside].max()) > rules.max_shadow_reach * half_thickness:
            found.append(piece)
    return found


def split_by_sign(
    blob: np.ndarray,
    contrast: np.ndarray,
    fg_window: np.ndarray,
    rules: BlobRules,
    noise_sigma: float,
) -> list[np.ndarray]:
    """Split a blob holding a fish brighter than the floor and one darker than it.

    Each pixel goes to the nearer of the two (opened) regions of contrast beyond
    +/- ``sign_split_contrast``, when both are big enough for a fish and hold a
    foreground-only core (a shadow, pure darkening, has none) -- or, the dark one, a
    median twice that dark (a dark fish that MOG2 labels shadow all over; a shadow that
    dark, split off, is still dropped for its soft edge).
    """
    level = max(rules.sign_split_contrast, 4.0 * noise_sigma)
    inside = contrast[blob > 0]
    if np.count_nonzero(inside >= level) < rules.min_area or (
        np.count_nonzero(inside <= -level) < rules.min_area
    ):
        return [blob]
    regions = []
    for sign in (1.0, -1.0):
        clear = ((contrast * sign >= level) & (blob > 0)).astype(np.uint8)
        clear = cv2.morphologyEx(clear, cv2.MORPH_OPEN, _OPEN3)
        cored = np.count_nonzero(clear & (fg_window == FOREGROUND)) >= rules.min_core
        if sign < 0 and not cored and np.count_nonzero(clear):
            # MOG2 labels a dark fish on a light floor shadow: twice the level is no shadow
            cored = quantile(contrast[clear > 0], 0.5) <= -2.0 * level
        if np.count_nonzero(clear) < rules.min_area or not cored:
            return [blob]
        regions.append(clear)
    away = [cv2.distanceTransform(1 - r, cv2.DIST_L2, 3) for r in regions]
    bright = (away[0] <= away[1]).astype(np.uint8)
    return [p for p in (blob & bright, blob & (1 - bright)) if np.count_nonzero(p)]


def fill_to_nearest(parts: list[np.ndarray], blob: np.ndarray) -> list[np.ndarray]:
    """Give each blob pixel that no part holds (watershed lines, the rim the outside
    marker flooded) to the nearest part, so the parts tile the blob again."""
    away = np.stack([cv2.distanceTransform(1 - p, cv2.DIST_L2, 3) for p in parts])
    nearest = np.argmin(away, axis=0)
    return [((nearest == i) & (blob > 0)).astype(np.uint8) for i in range(len(parts))]


def split_by_cores(
    blob: np.ndarray,
    fg_window: np.ndarray,
    rules: BlobRules,
    contrast: np.ndarray | None = None,
    noise_sigma: float = 0.0,
    seed_contrast: Callable[[], tuple[np.ndarray, float]] | None = None,
) -> list[np.ndarray]:
    """Split a blob (uint8 0/1 window) between its sizeable cores.

    Cores are the blob's foreground (255) pixels, narrowed to where they are at least
    ``split_core_depth`` x the deepest point of their connected piece away from its
    edge (so two dark fish touching at a neck give two cores); a watershed on the blob's
    distance transform, seeded by the cores, draws the border between them. With
    ``contrast`` (frame - background, float32, the blob's window), the widths that decide
    whether parts stay apart (:func:`merge_wide_necks`) are measured on the fish's body
    (:func:`_strong_part`, 0.3 of its strength), not on the faint halo or shadow that
    joins two fish. Dark fish that MOG2 labels shadow (127) all over have no foreground
    core: with ``seed_contrast`` (called only then: frame - the floor's local mean, the
    same window, and the std of the floor's own detail) and fewer than two foreground
    seeds, the cores are its strong part (half its strength: a fish's body, not the gap
    or the fainter shadow between two fish), judged against the noise and that detail
    (a fish over gravel differs from the floor's mean in patches).
    """
    if np.count_nonzero(blob) < 2 * rules.min_area:
        return [blob]  # no room for two fish
    seeds = _core_seeds(((fg_window == FOREGROUND) & (blob > 0)).astype(np.uint8), rules)
    if len(seeds[1]) < 2 and seed_contrast is not None:
        floor_contrast, floor_std = seed_contrast()
        core = _strong_part(blob, floor_contrast, float(np.hypot(noise_sigma, floor_std)), 0.5)
        if core is not None:
            seeds = _core_seeds(core, rules)
    labels, big = seeds
    if len(big) < 2:
        return [blob]
    markers = np.zeros(blob.shape, np.int32)
    for k, i in enumerate(big, start=1):
        markers[labels == i] = k
    markers[blob == 0] = len(big) + 1  # the outside floods too, or a seed leaks round it
    dist = cv2.distanceTransform(pad1(blob), cv2.DIST_L2, 3)[1:-1, 1:-1]
    relief = 255 - cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers)
    body = None if contrast is None else _strong_part(blob, contrast, noise_sigma, 0.3)
    if body is not None:  # widths of the fish's body, not of the faint halo between fish
        dist = cv2.distanceTransform(pad1(body), cv2.DIST_L2, 3)[1:-1, 1:-1]
    parts = merge_wide_necks(markers, blob, dist, len(big), rules.max_neck_ratio)
    if len(parts) > 1:
        parts = merge_small_parts(fill_to_nearest(parts, blob), rules, body)
    return parts if len(parts) > 1 else [blob]


def _strong_part(
    blob: np.ndarray,
    contrast: np.ndarray,
    noise_sigma: float,
    fraction: float,
    floor_detail: Callable[[], float] | None = None,
) -> np.ndarray | None:
    """The blob's pixels (uint8 0/1) whose contrast (smoothed, 1 px), of the blob's sign,
    reaches ``fraction`` of its strongest (90th percentile); None when that strength is
    under 16 ``noise_sigma``: a faint fish's contrast is too patchy to trust. With
    ``floor_detail`` (called only when the strength passes that), under 16 x the hypot
    of the noise and that detail too (a fish over gravel differs from it in patches)."""
    smooth = cv2.GaussianBlur(contrast, (0, 0), 1.0)  # per-pixel noise out
    inside = smooth[blob > 0]
    sign = 1.0 if quantile(inside, 0.5) >= 0 else -1.0
    strong = quantile(inside * sign, 0.9)
    if strong < 16.0 * noise_sigma:
        return None
    if floor_detail is not None and strong < 16.0 * math.hypot(noise_sigma, floor_detail()):
        return None
    return ((smooth * sign >= fraction * strong) & (blob > 0)).astype(np.uint8)


def _slender_beside(
    part: np.ndarray, other: np.ndarray, body: np.ndarray | None, rules: BlobRules
) -> bool:
    """Whether ``part`` (uint8 0/1) is a slender fish beside ``other``: see
    :func:`merge_small_parts`."""
    if rules.slender_part_aspect <= 0:
        return False
    shape = part if body is None or not (part & body).any() else part & body
    _, (w, h), _ = cv2.minAreaRect(cv2.findNonZero(shape))
    if max(w, h) < rules.slender_part_aspect * max(min(w, h), 1.0):
        return False
    _, cx, cy, half, angle = _axis(Piece(other, 0, 0, 0.0))
    _, px, py, _, _ = _axis(Piece(part, 0, 0, 0.0))
    along, across = _along_across(px - cx, py - cy, angle)
    return not _beyond_end(along, across, half)  # not a tail


def merge_small_parts(
    parts: list[np.ndarray], rules: BlobRules, body: np.ndarray | None = None
) -> list[np.ndarray]:
    """Join each part too small to be a fish of its own to the part it shares the
    longest border with (the parts tile one connected blob, so it has one).

    Too small: under ``min_area``, or under ``min_part_fraction`` of itself plus that
    neighbour (a tail fin behind its peduncle holds up to ~25 % of its fish). With two
    parts this is a fraction of the blob; with three or more (a small fish beside a
    touching pair, or a fin of one of them) only the small part is joined, and the
    split between the others stands. A slender part (``slender_part_aspect`` times
    longer than wide, measured on its ``body`` pixels, uint8 0/1, if it has any: the
    halo and shadow round a fish are wide) lying beside its neighbour, not beyond its end
    along its axis (a tail), is a small fish whatever its fraction: a fin is not slender.
    """
    parts = list(parts)
    areas = [int(np.count_nonzero(p)) for p in parts]
    while len(parts) > 1:
        worst, into, short = -1, -1, 0.0
        for i, part in enumerate(parts):
            rim = cv2.dilate(part, _OPEN3)
            contact = [
                -1 if j == i else int(np.count_nonzero(rim & p)) for j, p in enumerate(parts)
            ]
            j = int(np.argmax(contact))
            need = max(rules.min_area, rules.min_part_fraction * (areas[i] + areas[j]))
            if need > areas[i] >= rules.min_area and _slender_beside(part, parts[j], body, rules):
                continue
            if need - areas[i] > short:
                worst, into, short = i, j, need - areas[i]
        if worst < 0:
            break
        parts[into] = parts[into] | parts[worst]
        areas[into] += areas[worst]
        del parts[worst], areas[worst]
    return parts


def _core_seeds(core: np.ndarray, rules: BlobRules) -> tuple[np.ndarray, list[int]]:
    """Labels of ``core`` narrowed to its deep pixels (``split_core_depth`` x its piece's
    deepest), and the labels of the narrowed pieces big enough to seed (``min_seed``)."""
    if np.count_nonzero(core) < 2 * rules.min_core:
        return core, []
    depth = cv2.distanceTransform(pad1(core), cv2.DIST_L2, 3)[1:-1, 1:-1]
    n, labels = cv2.connectedComponents(core, connectivity=8)
    deepest = np.zeros(n, np.float32)  # per core component: a small fish's own depth
    np.maximum.at(deepest, labels.ravel(), depth.ravel())
    limit = np.maximum(1.0, rules.split_core_depth * deepest[labels])
    core = ((depth >= limit) & (labels > 0)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= rules.min_seed]
    return labels, big


def split_bridged(
    blob: np.ndarray,
    opened: np.ndarray,
    contrast: np.ndarray | None,
    rules: BlobRules,
    noise_sigma: float,
) -> list[np.ndarray]:
    """Split a blob that the closing joined from several fish lying close to each other.

    ``opened`` is the candidate mask before the closing (uint8 0/1, the blob's window).
    When it holds two or more pieces of fish size and the pixels the closing added
    between them are floor (their median |contrast| under ``bridge_contrast`` x the
    faintest piece's, and under 3 noise std), each blob pixel goes to the nearest
    piece. Fragments of one faint fish are joined by pixels of the fish's own sign, or,
    over gravel, by pixels that differ from the floor both ways (it hides the stones):
    they stay one.
    """
    if rules.bridge_contrast <= 0 or contrast is None:
        return [blob]
    inside = opened & blob
    pieces = components(inside, rules.min_area)
    if len(pieces) < 2:
        return [blob]
    bridge = (blob > 0) & (inside == 0)
    if not bridge.any():
        return [blob]
    faintest = min(abs(quantile(contrast[p > 0], 0.5)) for p in pieces)
    gap = quantile(np.abs(contrast[bridge]), 0.5)
    if gap >= max(rules.bridge_contrast * faintest, 3.0 * noise_sigma):
        return [blob]
    return fill_to_nearest(pieces, blob)


@dataclass
class Piece:
    """A fish found in a frame: ``mask`` uint8 0/1 (h, w) in its window, whose top-left
    pixel is (``x``, ``y``) (working pixels); ``sign`` of its median contrast (+1 lighter
    than the floor, -1 darker)."""

    mask: np.ndarray
    x: int
    y: int
    sign: float


def _axis(piece: Piece) -> tuple[float, float, float, float, float]:
    """(area, centre x, centre y, half-length, long axis angle in radians) of a piece,
    from its moments (an ellipse's semi-axis is 2 std along it)."""
    m = cv2.moments(piece.mask, binaryImage=True)
    area = m["m00"]
    mu20, mu02, mu11 = m["mu20"] / area, m["mu02"] / area, m["mu11"] / area
    spread = math.hypot((mu20 - mu02) / 2, mu11)
    half = 2.0 * math.sqrt((mu20 + mu02) / 2 + spread)
    angle = 0.5 * math.atan2(2 * mu11, mu20 - mu02)
    return area, piece.x + m["m10"] / area, piece.y + m["m01"] / area, half, angle


def _along_across(dx: Any, dy: Any, angle: Any) -> tuple[Any, Any]:
    """|Components| of the offset (``dx``, ``dy``) along and across a long axis at
    ``angle`` (radians); floats or broadcasting arrays."""
    ux, uy = np.cos(angle), np.sin(angle)
    return np.abs(dx * ux + dy * uy), np.abs(dx * uy - dy * ux)


def _beyond_end(along: Any, across: Any, half: Any) -> Any:
    """Whether a point (``along``, ``across`` a piece's axis from its centre,
    :func:`_along_across`) lies beyond the end of a piece of half-length ``half``:
    at least half of it along, within 35 degrees of the axis."""
    return (along >= 0.5 * half) & (across <= 0.7 * along)


def _window(pieces: tuple[Piece, ...]) -> tuple[int, int, int, int]:
    """(x, y, w, h): the window holding all ``pieces``."""
    x0, y0 = min(p.x for p in pieces), min(p.y for p in pieces)
    x1 = max(p.x + p.mask.shape[1] for p in pieces)
    y1 = max(p.y + p.mask.shape[0] for p in pieces)
    return x0, y0, x1 - x0, y1 - y0


def _place(piece: Piece, window: tuple[int, int, int, int]) -> np.ndarray:
    """``piece``'s mask in ``window`` (x, y, w, h), uint8 0/1."""
    x, y, w, h = window
    out = np.zeros((h, w), np.uint8)
    ph, pw = piece.mask.shape
    out[piece.y - y : piece.y - y + ph, piece.x - x : piece.x - x + pw] = piece.mask
    return out


def _between(masks: tuple[np.ndarray, np.ndarray]) -> tuple[float, np.ndarray]:
    """(the shortest distance between two masks (uint8 0/1, one window), uint8 0/1 the
    pixels of neither that lie on (about) the shortest paths between them)."""
    away = [cv2.distanceTransform(1 - m, cv2.DIST_L2, 3) for m in masks]
    total = away[0] + away[1]
    gap = float(total.min())
    return gap, ((away[0] > 0) & (away[1] > 0) & (total <= gap + 1.5)).astype(np.uint8)


def _hides_stones(
    grain: Callable[[int, int, int, int, np.ndarray], tuple[float, float]] | None,
    window: tuple[int, int, int, int],
    path: np.ndarray,
    noise_sigma: float,
    rules: BlobRules,
) -> bool:
    """Whether the frame is smooth over ``path`` (uint8 0/1 in ``window``) where the floor
    has grain (a fish hiding stones): see :func:`join_tails`."""
    if grain is None or rules.join_texture_loss <= 0:
        return False
    frame, floor = grain(*window, path)
    return floor > max(2.0 * noise_sigma, 3.0) and smoother(
        frame, floor, noise_sigma, rules.join_texture_loss
    )


def join_tails(
    pieces: list[Piece],
    rules: BlobRules,
    noise_sigma: float,
    contrast: Callable[[int, int, int, int], np.ndarray | None],
    floor_detail: Callable[[int, int, int, int, np.ndarray], float],
    grain: Callable[[int, int, int, int, np.ndarray], tuple[float, float]] | None = None,
) -> list[Piece]:
    """Join the pieces MOG2 cut one fish into: over a textured floor a smooth fish
    differs from it only where it hides stones (a tail beyond a faint peduncle, a body
    broken where it covers sand between stones); over a plain floor a fish of nearly
    its grey shows only in patches (its light or dark flank, its head).

    A piece joins a larger one of its sign no farther from it than ``tail_reach`` x the
    larger's length when the pixels between them are not floor: their median
    contrast over 2 noise std and over ``join_contrast`` x the fainter piece's |median|
    (itself at least half as unlike the floor as the other: not a faint fish touching
    a dark one); over ``bridge_contrast`` x only for a tail: a piece with at most 60 %
    of the larger's area, at most half as long (not a fish lying end to end), beyond
    its end along its long axis (within 35 degrees, seen from its centre; a dark one
    beyond a light one's end too, at most a fifth of its area: its head, with dark
    eyes and their shadow). The contrast counts either way where the floor between has
    detail (std over 1 noise std: stones), and only with the pieces' sign where it is
    plain (a cast shadow between two light fish is floor). Over stones the pixels
    between are not floor either where the frame is smooth and the floor is not (the
    fish hides the stones): their grain in the frame under ``join_texture_loss`` x the
    floor's, its noise taken out. Fish with floor between stay apart.
    ``contrast(x, y, w, h)``: frame - background in a window;
    ``floor_detail(x, y, w, h, mask)``: the std of the floor's detail under ``mask``;
    ``grain(x, y, w, h, mask)``: the median 3x3 grey std under ``mask`` of the frame and
    of the background.
    """
    if len(pieces) < 2:
        return pieces
    area, cx, cy, half, angle = np.array([_axis(p) for p in pieces]).T
    sign = np.array([p.sign for p in pieces])
    # [i, j]: piece j seen from piece i's centre, along and across i's long axis.
    dx, dy = cx[None, :] - cx[:, None], cy[None, :] - cy[:, None]
    along, across = _along_across(dx, dy, angle[:, None])
    reach = rules.tail_reach * 2 * half
    alike = (sign[None, :] == sign[:, None]) & (area[None, :] <= area[:, None])
    # a light fish's dark head (eyes, their shadow): a fifth of its area at most
    eyes = (sign[:, None] > 0) & (sign[None, :] < 0) & (area[None, :] <= 0.2 * area[:, None])
    tail = (
        (alike | eyes)
        & (area[None, :] <= 0.6 * area[:, None])
        & (half[None, :] <= 0.5 * half[:, None])
        & _beyond_end(along, across, half[:, None])
        & (along <= (half + reach)[:, None] + 2 * half[None, :])
    )
    near = np.hypot(dx, dy) <= (half + reach)[:, None] + 2 * half[None, :]
    candidate = tail | (alike & near) if rules.join_contrast > 0 else tail
    np.fill_diagonal(candidate, False)
    order = np.argsort(-area, kind="stable")
    into: dict[int, int] = {}  # a tail's index -> its body's
    joined = dict(enumerate(pieces))
    for i in order:
        if i in into or not candidate[i].any():
            continue
        for j in order[candidate[i][order]]:
            if j in into:
                continue
            pair = _window((pieces[i], pieces[j]))
            masks = (_place(pieces[i], pair), _place(pieces[j], pair))
            gap, path = _between(masks)
            if gap > reach[i] or not path.any():
                continue
            diff = contrast(*pair)
            if diff is None:
                continue
            on_path = diff[path > 0]
            stones = floor_detail(*pair, path) >= noise_sigma
            on_path = np.abs(on_path) if stones else on_path * sign[i]  # either way / own sign
            levels = [abs(quantile(diff[m > 0], 0.5)) for m in masks]
            level = min(levels)
            bridge = rules.bridge_contrast if tail[i, j] else rules.join_contrast
            if not tail[i, j] and level < 0.5 * max(levels):
                continue  # a faint fish touching a dark one
            if quantile(on_path, 0.5) < max(bridge * level, 2.0 * noise_sigma) and not (
                stones and _hides_stones(grain, pair, path, noise_sigma, rules)
            ):
                continue
            into[j] = i
            between = Piece(path, pair[0], pair[1], 0.0)
            window = _window((joined[i], pieces[j]))
            mask = _place(joined[i], window) | _place(pieces[j], window) | _place(between, window)
            joined[i] = Piece(mask, window[0], window[1], pieces[i].sign)
    return [joined[i] for i in range(len(pieces)) if i not in into]


def detection_rle(detection: Detection) -> dict[str, Any]:
    """COCO compressed RLE of a detection's frame-space blob mask, encoded from its window
    (:func:`~aquapose.segmentation.masks.window_rle`; never builds the full-frame mask)."""
    if detection.window_mask is None or detection.frame_hw is None:
        raise ValueError("detection has no blob mask (window_mask) to encode")
    return window_rle(detection.window_mask, detection.window_xy, detection.frame_hw)


def absorb_patches(pieces: list[Piece], rules: BlobRules, largest: float) -> list[Piece]:
    """``pieces`` with each small patch of the other sign inside a larger piece of the
    same blob merged into it: a fish hiding a dark stone is lighter than the floor there
    (a bright one: darker), a patch of the other sign in or at the edge of its body. A
    patch: under ``largest`` pixels (a small fish's area) and ``min_part_fraction`` of
    the larger piece's, the other sign, in the same window (one blob), with
    ``_PATCH_INSIDE`` of its pixels inside the larger piece's convex hull (a pale fish
    beside a dark one, in its shadow's hull, is larger)."""
    order = sorted(pieces, key=lambda p: -np.count_nonzero(p.mask))
    out: list[Piece] = []
    for piece in order:
        area = np.count_nonzero(piece.mask)
        for k, big in enumerate(out if area < largest else []):
            if (
                (big.x, big.y) != (piece.x, piece.y)
                or big.mask.shape != piece.mask.shape
                or big.sign == piece.sign
                or area > rules.min_part_fraction * np.count_nonzero(big.mask)
            ):
                continue
            if np.count_nonzero(_convex_hull(big.mask) & piece.mask) >= _PATCH_INSIDE * area:
                out[k] = Piece(big.mask | piece.mask, big.x, big.y, big.sign)
                break
        else:
            out.append(piece)
    return out
