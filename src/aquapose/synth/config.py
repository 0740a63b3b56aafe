"""Configuration of the synthetic aquarium: one frozen dataclass and its presets.

``SynthConfig`` holds everything a clip depends on besides the seed. Presets:

- ``tiny``: 2 cameras x 60 frames of 192x144 at 10 fps, 3 fish (unit tests, ~1 s);
- ``demo``: 3 cameras x 600 frames of 640x480 at 15 fps (40 s each), 5 fish of 30-120 px;
- ``rig``: 12 cameras x 900 frames of 1600x1200 at 30 fps, 9 fish of 30-300 px;
- ``crowd``: 1 camera x 240 frames of 640x480, 110 small fish (15-32 px) on sand;
- ``resting``: 1 camera x 240 frames of 640x480, 6 fish, three of them resting in one
  spot for 40-80 % of the clip, on gravel;
- ``random``: 1 camera x 240 frames of 640x480 whose tank is drawn from the seed
  (:func:`random_config`): floor, light, noise, compression, 1-120 fish of 15-150 px,
  contrast from faint to dark, rests from seconds to most of the clip.

Every difficulty is a switch (all on in ``demo`` and ``rig``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Short names accepted by ``generate(**overrides)`` and the CLI, mapped to fields.
OVERRIDE_ALIASES = {"cameras": "num_cameras", "fish": "num_fish", "frames": "num_frames"}

#: Floors (``texture`` off is ``plain`` too) and lights of :class:`SynthConfig`.
FLOORS = ("plain", "sand", "gravel")
LIGHTS = ("even", "vignette", "gradient", "flicker")


@dataclass(frozen=True)
class SynthConfig:
    """Everything a synthetic clip depends on besides the seed.

    Sizes are in pixels, durations in seconds (converted to frames with ``fps``).

    Attributes:
        num_cameras: cameras of the rig; each sees its own part of the tank.
        num_frames: frames per camera.
        width, height: frame size in pixels.
        fps: frames per second of the videos.
        num_fish: fish in the population (the same animals, by ``fish_id``, in every camera).
        fish_length_px: (min, max) body length, nose to tail-fin tip.
        fish_length_median_px: median of the log-normal length distribution (clipped to the range).
        contrast_range: (min, max) grey-level difference between a fish and the floor.
        swim_speed_bl: (min, max) cruising speed in body lengths per second.
        stationary: long still episodes (``long_rest_seconds``), then swimming again.
        long_rest_seconds: (min, max) duration of a long still episode.
        long_rests_per_camera: long still episodes planned per camera (>= 1 when ``stationary``).
        touching: planned encounters where two fish cross / touch / overlap.
        encounters_per_minute: planned encounters per camera per minute of video.
        shadows: soft shadows cast on the floor (never part of the ground truth).
        texture: textured floor (``floor``); otherwise a flat floor.
        floor: ``sand`` (grain, ripples, pebbles), ``gravel`` (sand under packed stones
            of 2-7 px with dark gaps) or ``plain`` (flat).
        light: ``vignette`` (darker corners), ``even``, ``gradient`` (a static 15-30 %
            ramp across the floor, on top of the vignette) or ``flicker`` (slow flicker of
            3-6 % at 0.1-0.4 Hz, on top of the vignette).
        tank_edges: some cameras see the tank wall.
        illumination: slow illumination drift and flicker.
        noise_sigma: sensor noise standard deviation in grey levels (0 turns it off).
        compression: lossy ``mp4v`` video (.mp4); otherwise lossless FFV1 (.avi).
        enter_leave: fish swim out of a camera's view and come back.
        empty_frames: some cameras get a stretch of frames with no fish at all.
        low_contrast: at least one fish is nearly the floor's grey (``contrast_range[0]``).
        low_contrast_threshold: a fish whose mean contrast is below this is flagged ``low_contrast``.
        stationary_flag_seconds: a fish still for this long is flagged ``stationary``.
    """

    num_cameras: int = 3
    num_frames: int = 600
    width: int = 640
    height: int = 480
    fps: float = 15.0
    num_fish: int = 5
    fish_length_px: tuple[float, float] = (30.0, 120.0)
    fish_length_median_px: float = 60.0
    contrast_range: tuple[float, float] = (10.0, 80.0)
    swim_speed_bl: tuple[float, float] = (0.6, 1.6)
    stationary: bool = True
    long_rest_seconds: tuple[float, float] = (10.0, 14.0)
    long_rests_per_camera: int = 1
    touching: bool = True
    encounters_per_minute: float = 6.0
    shadows: bool = True
    texture: bool = True
    floor: str = "sand"
    light: str = "vignette"
    tank_edges: bool = True
    illumination: bool = True
    noise_sigma: float = 2.5
    compression: bool = True
    enter_leave: bool = True
    empty_frames: bool = True
    low_contrast: bool = True
    low_contrast_threshold: float = 25.0
    stationary_flag_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("num_cameras", "num_frames", "width", "height", "num_fish"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if not 1 <= self.num_cameras <= 99:
            raise ValueError(f"num_cameras must be in 1..99, got {self.num_cameras}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.width < 64 or self.height < 64:
            raise ValueError(f"frame size must be at least 64x64, got {self.width}x{self.height}")
        if self.width % 2 or self.height % 2:
            raise ValueError(
                f"frame width and height must be even (video codecs), got {self.width}x{self.height}"
            )
        if not 1 <= self.num_fish <= 250:
            raise ValueError(f"num_fish must be in 1..250, got {self.num_fish}")
        if not 1.0 <= float(self.fps) <= 240.0:
            raise ValueError(f"fps must be in [1, 240], got {self.fps}")
        lo, hi = self.fish_length_px
        if not 8.0 <= lo <= hi:
            raise ValueError(
                f"fish_length_px must be (min, max) with 8 <= min <= max, got {(lo, hi)}"
            )
        if hi > 0.6 * min(self.width, self.height):
            raise ValueError(
                f"fish_length_px max {hi} is too long for {self.width}x{self.height} frames "
                f"(at most {0.6 * min(self.width, self.height):.0f} px)"
            )
        for name in ("contrast_range", "swim_speed_bl", "long_rest_seconds"):
            a, b = getattr(self, name)
            if not 0 < a <= b:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {(a, b)}")
        if self.floor not in FLOORS:
            raise ValueError(f"floor must be one of {', '.join(FLOORS)}, got {self.floor!r}")
        if self.light not in LIGHTS:
            raise ValueError(f"light must be one of {', '.join(LIGHTS)}, got {self.light!r}")
        if self.noise_sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.encounters_per_minute < 0 or self.long_rests_per_camera < 0:
            raise ValueError("encounters_per_minute and long_rests_per_camera must be >= 0")

    @property
    def duration_s(self) -> float:
        """Length of each camera's clip in seconds."""
        return self.num_frames / self.fps

    @property
    def video_suffix(self) -> str:
        """``.mp4`` (lossy mp4v) with compression, ``.avi`` (lossless FFV1) without."""
        return ".mp4" if self.compression else ".avi"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(
        num_cameras=2,
        num_frames=60,
        width=192,
        height=144,
        fps=10.0,
        num_fish=3,
        fish_length_px=(22.0, 48.0),
        fish_length_median_px=32.0,
        long_rest_seconds=(3.0, 3.5),
        encounters_per_minute=20.0,
        empty_frames=False,
    ),
    "demo": SynthConfig(),
    "rig": SynthConfig(
        num_cameras=12,
        num_frames=900,
        width=1600,
        height=1200,
        fps=30.0,
        num_fish=9,
        fish_length_px=(30.0, 300.0),
        fish_length_median_px=56.0,
        long_rest_seconds=(10.0, 15.0),
        encounters_per_minute=4.0,
    ),
    "crowd": SynthConfig(
        num_cameras=1,
        num_frames=240,
        num_fish=110,
        fish_length_px=(15.0, 32.0),
        fish_length_median_px=22.0,
        contrast_range=(14.0, 70.0),
        long_rest_seconds=(3.0, 8.0),
        long_rests_per_camera=3,
        encounters_per_minute=10.0,
        empty_frames=False,
    ),
    "resting": SynthConfig(
        num_cameras=1,
        num_frames=240,
        num_fish=6,
        fish_length_px=(30.0, 90.0),
        fish_length_median_px=50.0,
        long_rest_seconds=(6.4, 12.8),  # 40-80 % of the 16 s clip
        long_rests_per_camera=3,
        floor="gravel",
        empty_frames=False,
    ),
}


def random_config(seed: int) -> SynthConfig:
    """The ``random`` preset's tank for ``seed``: one camera, 240 frames of 640x480 at 15 fps.

    Drawn: floor and light (uniformly), noise std 0.5-4, lossy compression (70 %), fish
    count 1-120 (log-uniform), lengths within 15-150 px (fewer, larger fish; the fish
    cover at most ~5 % of the floor), contrast from faint (10-18 grey levels) to dark
    (30-90), 1-3 rests of 10-80 % of the clip, shadows (80 %), moving light (70 %), the
    tank wall (50 %).
    """
    rng = np.random.default_rng([int(seed), 2000])
    w, h, frames, fps = 640, 480, 240, 15.0
    fish = int(math.floor(math.exp(rng.uniform(0.0, math.log(121.0)))))
    fish = min(max(fish, 1), 120)
    cap = min(150.0, math.sqrt(0.05 * w * h / (0.14 * fish)))  # median length cap
    lo = float(rng.uniform(15.0, max(15.0, min(40.0, 0.7 * cap))))
    hi_min = min(150.0, 1.5 * lo)
    hi = float(rng.uniform(hi_min, max(hi_min, min(150.0, 2.0 * cap))))
    median = float(np.clip(math.sqrt(lo * hi), lo, hi))
    contrast = (float(rng.uniform(10.0, 18.0)), float(rng.uniform(30.0, 90.0)))
    rest = float(rng.uniform(0.1, 0.8)) * frames / fps
    return SynthConfig(
        num_cameras=1,
        num_frames=frames,
        width=w,
        height=h,
        fps=fps,
        num_fish=fish,
        fish_length_px=(round(lo, 1), round(hi, 1)),
        fish_length_median_px=round(median, 1),
        contrast_range=(round(contrast[0], 1), round(contrast[1], 1)),
        long_rest_seconds=(round(0.8 * rest, 2), round(rest, 2)),
        long_rests_per_camera=int(rng.integers(1, 4)),
        shadows=bool(rng.random() < 0.8),
        floor=str(rng.choice(FLOORS)),
        light=str(rng.choice(LIGHTS)),
        illumination=bool(rng.random() < 0.7),
        noise_sigma=round(float(rng.uniform(0.5, 4.0)), 2),
        compression=bool(rng.random() < 0.7),
        tank_edges=bool(rng.random() < 0.5),
        empty_frames=bool(rng.random() < 0.3),
        encounters_per_minute=float(rng.uniform(2.0, 10.0)),
    )


#: Presets drawn from the seed (``get_preset(name)`` gives seed 0's draw).
SEEDED_PRESETS = {"random": random_config}


def get_preset(name: str, seed: int = 0) -> SynthConfig:
    """The preset called ``name`` (a seeded one, ``random``, drawn from ``seed``);
    ValueError listing the valid names otherwise."""
    if name in SEEDED_PRESETS:
        return SEEDED_PRESETS[name](seed)
    if name not in PRESETS:
        valid = ", ".join([*PRESETS, *SEEDED_PRESETS])
        raise ValueError(f"unknown preset {name!r}; valid presets: {valid}")
    return PRESETS[name]


def resolve_config(preset: str | SynthConfig = "tiny", **overrides: Any) -> SynthConfig:
    """A preset (by name or config) with ``overrides`` applied (field names or short aliases).

    ``seed=`` among the overrides draws the seeded presets (``random``; 0 by default).
    Raises ValueError naming an unknown override key and listing the valid ones.
    """
    seed = int(overrides.pop("seed", None) or 0)
    base = preset if isinstance(preset, SynthConfig) else get_preset(preset, seed)
    fields = {f.name for f in dataclasses.fields(SynthConfig)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        name = OVERRIDE_ALIASES.get(key, key)
        if name not in fields:
            valid = sorted(fields | set(OVERRIDE_ALIASES))
            raise ValueError(f"unknown synth setting {key!r}; valid: {', '.join(valid)}")
        if name in {"fish_length_px", "contrast_range", "swim_speed_bl", "long_rest_seconds"}:
            value = tuple(float(v) for v in value)
        changes[name] = value
    if "fish_length_px" in changes and "fish_length_median_px" not in changes:
        lo, hi = changes["fish_length_px"]
        changes["fish_length_median_px"] = min(max(base.fish_length_median_px, lo), hi)
    return dataclasses.replace(base, **changes)
