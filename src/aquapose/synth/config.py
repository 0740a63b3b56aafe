"""Configuration of the synthetic aquarium: one frozen dataclass and three presets.

``SynthConfig`` holds everything a clip depends on besides the seed. Presets:

- ``tiny``: 2 cameras x 60 frames of 192x144 at 10 fps, 3 fish (unit tests, ~1 s);
- ``demo``: 3 cameras x 600 frames of 640x480 at 15 fps (40 s each), 5 fish of 30-120 px;
- ``rig``: 12 cameras x 900 frames of 1600x1200 at 30 fps, 9 fish of 30-300 px.

Every difficulty is a switch (all on in ``demo`` and ``rig``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Short names accepted by ``generate(**overrides)`` and the CLI, mapped to fields.
OVERRIDE_ALIASES = {"cameras": "num_cameras", "fish": "num_fish", "frames": "num_frames"}


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
        texture: textured floor (sand, pebbles); otherwise a flat floor.
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
}


def get_preset(name: str) -> SynthConfig:
    """The preset called ``name``; ValueError listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def resolve_config(preset: str | SynthConfig = "tiny", **overrides: Any) -> SynthConfig:
    """A preset (by name or config) with ``overrides`` applied (field names or short aliases).

    Raises ValueError naming an unknown override key and listing the valid ones.
    """
    base = preset if isinstance(preset, SynthConfig) else get_preset(preset)
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
