"""Fish of the synthetic aquarium: who they are (appearance) and their shape (silhouette).

A fish seen from above is a midline (nose -> tail tip) with a width profile:
rounded head, body tapering to the caudal peduncle, then a forked tail fin.
The midline follows the path the head swam along (so the body bends in turns)
plus a travelling wave whose amplitude grows towards the tail (undulation).
All coordinates are frame pixels ``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aquapose.synth.config import SynthConfig

#: Fraction of the body length where the tail fin starts.
FIN_START = 0.8


@dataclass(frozen=True)
class FishAppearance:
    """One animal of the population (the same in every camera).

    Attributes:
        fish_id: stable identity (0-based), written as ``fish_id`` in the ground truth.
        length_px: body length, nose to tail tip, in pixels.
        width_ratio: maximum half-width / length (top-down view).
        contrast: grey levels between the fish's body colour and the floor's mean.
        lighter: True for a fish lighter than the floor (most are darker).
        tint: (3,) BGR weights (around 1) of the colour difference; gives fish a hue.
        stripes: number of dark bars across the body (0 = plain).
        pattern_strength: darkening of dorsal stripe and bars, as a fraction of ``contrast``.
        fin_alpha: opacity of the tail fin (the body is ``body_alpha``).
        body_alpha: opacity of the body (a little floor texture shows through).
        swim_speed_px: cruising speed in pixels per second.
        depth: mean height above the floor in [0, 1] (1 = near the camera): draws order, shadows.
        tail_amplitude: lateral tail-tip amplitude as a fraction of the length.
    """

    fish_id: int
    length_px: float
    width_ratio: float
    contrast: float
    lighter: bool
    tint: tuple[float, float, float]
    stripes: int
    pattern_strength: float
    fin_alpha: float
    body_alpha: float
    swim_speed_px: float
    depth: float
    tail_amplitude: float

    @property
    def half_width_px(self) -> float:
        return self.width_ratio * self.length_px

    def to_dict(self) -> dict[str, object]:
        return {
            "fish_id": self.fish_id,
            "length_px": round(self.length_px, 2),
            "contrast": round(self.contrast, 2),
            "lighter": self.lighter,
            "stripes": self.stripes,
            "swim_speed_px": round(self.swim_speed_px, 2),
        }


def make_population(config: SynthConfig, seed: int) -> tuple[FishAppearance, ...]:
    """The fish of a rig, drawn from ``seed`` (independent of the cameras).

    Lengths are log-normal around ``fish_length_median_px`` clipped to the range; with
    3+ fish the shortest and longest are pushed to the range's ends. With
    ``low_contrast`` the first fish is barely darker than the floor (the range's minimum
    contrast) and, with 4+ fish, a second one is below the low-contrast threshold.
    """
    rng = np.random.default_rng([seed, 1000, 0])
    n = config.num_fish
    lo, hi = config.fish_length_px
    lengths = np.clip(config.fish_length_median_px * np.exp(0.45 * rng.standard_normal(n)), lo, hi)
    if n >= 3 and hi > lo:
        order = np.argsort(lengths)
        lengths[order[0]] = lo + 0.05 * (hi - lo) * rng.random()
        lengths[order[-1]] = hi - 0.05 * (hi - lo) * rng.random()
    c_lo, c_hi = config.contrast_range
    # Fish other than the forced low-contrast ones stay clearly above the threshold.
    c_min = 1.2 * config.low_contrast_threshold
    c_min = c_min if c_min < c_hi else c_lo
    contrasts = np.exp(rng.uniform(np.log(c_min), np.log(c_hi), n))
    lighter = rng.random(n) < 0.2
    if config.low_contrast:
        contrasts[0] = c_lo + 2.0 * rng.random()
        lighter[0] = False
        if n >= 4:
            contrasts[1] = float(
                np.clip(rng.uniform(14.0, 0.8 * config.low_contrast_threshold), c_lo, c_hi)
            )
    fish = []
    for i in range(n):
        length = float(lengths[i])
        bl_speed = rng.uniform(*config.swim_speed_bl)
        fish.append(
            FishAppearance(
                fish_id=i,
                length_px=length,
                width_ratio=float(rng.uniform(0.085, 0.12)),
                contrast=float(contrasts[i]),
                lighter=bool(lighter[i]),
                tint=tuple(float(v) for v in rng.uniform(0.75, 1.25, 3)),  # type: ignore[arg-type]
                stripes=int(rng.choice([0, 0, 3, 4, 5])),
                pattern_strength=float(rng.uniform(0.2, 0.5)),
                fin_alpha=float(rng.uniform(0.55, 0.8)),
                body_alpha=float(rng.uniform(0.9, 0.96)),
                swim_speed_px=float(bl_speed * length),
                depth=float(rng.uniform(0.1, 0.9)),
                tail_amplitude=float(rng.uniform(0.07, 0.11)),
            )
        )
    return tuple(fish)


def half_width_profile(u: np.ndarray, half_width: float) -> np.ndarray:
    """Half-width (px) at body fractions ``u`` in [0, 1] (0 = nose): head, taper, tail fin."""
    u = np.asarray(u, dtype=np.float64)
    head = np.sqrt(np.clip(1.0 - ((0.22 - u) / 0.22) ** 2, 0.0, 1.0)) * 0.92 + 0.08
    taper = 0.28 + 0.72 * 0.5 * (1.0 + np.cos(np.pi * (u - 0.22) / (FIN_START - 0.22)))
    fin = 0.28 + 0.5 * np.clip((u - FIN_START) / (1.0 - FIN_START), 0.0, 1.0) ** 0.8
    profile = np.where(u < 0.22, head, np.where(u < FIN_START, taper, fin))
    return half_width * profile


@dataclass(frozen=True, eq=False)
class BodyShape:
    """A fish's sampling along its body, computed once: ``u`` in [0, 1] and half-widths."""

    u: np.ndarray
    half: np.ndarray
    envelope: np.ndarray
    fin_index: int
    dorsal: np.ndarray

    @classmethod
    def of(cls, fish: FishAppearance) -> BodyShape:
        n = int(np.clip(fish.length_px / 3.0, 14, 48))
        u = np.linspace(0.0, 1.0, n)
        return cls(
            u=u,
            half=half_width_profile(u, fish.half_width_px),
            envelope=(0.12 + u) ** 2 / 1.12**2,
            fin_index=int(np.searchsorted(u, FIN_START)),
            dorsal=np.flatnonzero((u > 0.06) & (u < FIN_START - 0.02)),
        )


@dataclass(frozen=True, eq=False)
class FishOutline:
    """One pose of a fish: float (K, 2) frame-pixel polygons and the body edges.

    Attributes:
        midline: (n, 2) nose -> tail tip.
        left, right: (n, 2) body edges along the midline.
        whole: polygon of the whole fish (forked tail fin included).
        body: polygon of the body without the tail fin.
        dorsal: polygon of the darker dorsal band.
    """

    midline: np.ndarray
    left: np.ndarray
    right: np.ndarray
    whole: np.ndarray
    body: np.ndarray
    dorsal: np.ndarray


def fish_outline(
    path_xy: np.ndarray,
    path_s: np.ndarray,
    head_s: float,
    fish: FishAppearance,
    shape: BodyShape | None = None,
) -> FishOutline:
    """The fish's outline with its head at arc length ``head_s`` of the path.

    The body lies along the head's path (arc positions ``head_s - u * length``, so it
    bends in turns) plus a travelling wave whose amplitude grows towards the tail and
    whose phase advances with the distance swum (a still fish is still).
    """
    shape = shape if shape is not None else BodyShape.of(fish)
    s = head_s - shape.u * fish.length_px
    pts = np.empty((len(s), 2))
    pts[:, 0] = np.interp(s, path_s, path_xy[:, 0])
    pts[:, 1] = np.interp(s, path_s, path_xy[:, 1])
    phase = head_s / (0.75 * fish.length_px)
    lateral = (
        fish.tail_amplitude
        * fish.length_px
        * shape.envelope
        * np.sin(2 * np.pi * (shape.u - phase))
    )
    midline = pts + _normals(pts) * lateral[:, None]
    normals = _normals(midline)
    offset = normals * shape.half[:, None]
    left, right = midline + offset, midline - offset
    n = len(midline)
    notch = midline[-1] - 0.45 * (midline[-1] - midline[max(0, n - 4)])  # tail fork
    whole = np.concatenate([left, notch[None], right[::-1]], axis=0)
    k = shape.fin_index
    body = np.concatenate([left[: k + 1], right[: k + 1][::-1]], axis=0)
    d = shape.dorsal
    band = 0.45 * offset[d]
    dorsal = np.concatenate([midline[d] + band, (midline[d] - band)[::-1]], axis=0)
    return FishOutline(midline, left, right, whole, body, dorsal)


def _normals(pts: np.ndarray) -> np.ndarray:
    """Unit left normals (n, 2) of a polyline (tangent rotated by +90 degrees)."""
    tangent = np.empty_like(pts)
    tangent[1:-1] = pts[2:] - pts[:-2]
    tangent[0] = pts[1] - pts[0]
    tangent[-1] = pts[-1] - pts[-2]
    norm = np.sqrt(tangent[:, 0] ** 2 + tangent[:, 1] ** 2)[:, None]
    tangent /= np.maximum(norm, 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
