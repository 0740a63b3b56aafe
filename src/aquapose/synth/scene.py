"""The empty tank as one camera sees it: floor, wall, light, sensor noise.

The floor (plain; sand: grain, pebbles, large blotches; gravel: sand under packed
stones; a vignette or even light or a static gradient; the tank wall where a camera
sees it) is drawn once per camera as float32 BGR. Per frame the light
changes slowly (global drift plus a moving gradient) and flickers; the sensor
adds noise. Shadows are darkenings of the floor (see :func:`cast_shadow`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aquapose.synth.config import SynthConfig
from aquapose.synth.motion import Tank

_NOISE_BANK = 3
_NOISE_PAD = 32


@dataclass(frozen=True, eq=False)
class Scene:
    """One camera's empty tank and lighting.

    Attributes:
        floor: float32 (H, W, 3) BGR, the empty tank under mean light.
        floor_ramp: float32 (H, W, 3), ``floor`` times a unit light gradient (moving light).
        floor_grey_mean: mean grey level of the tank floor (inside the wall).
        floor_bgr_mean: float64 (3,) mean BGR of the tank floor.
        noise_bank: int16 (K, H + pad, W + pad, 3) sensor noise, or None.
    """

    floor: np.ndarray
    floor_ramp: np.ndarray
    floor_grey_mean: float
    floor_bgr_mean: np.ndarray
    noise_bank: np.ndarray | None
    drift_amplitude: float
    drift_period_s: float
    drift_phase: float
    ramp_amplitude: float
    ramp_period_s: float
    ramp_phase: float
    flicker_amplitude: float
    flicker_hz: float

    def light(self, t: float, jitter: float = 0.0) -> tuple[float, float]:
        """(global gain, gradient amplitude) at time ``t`` seconds."""
        gain = 1.0 + self.drift_amplitude * np.sin(
            2 * np.pi * t / self.drift_period_s + self.drift_phase
        )
        gain += self.flicker_amplitude * np.sin(2 * np.pi * self.flicker_hz * t) + jitter
        ramp = self.ramp_amplitude * np.sin(2 * np.pi * t / self.ramp_period_s + self.ramp_phase)
        return float(gain), float(ramp)

    def noise(self, rng: np.random.Generator) -> np.ndarray | None:
        """A (H, W, 3) int16 noise field for one frame (a random window of the bank)."""
        if self.noise_bank is None:
            return None
        h, w = self.floor.shape[:2]
        k = int(rng.integers(self.noise_bank.shape[0]))
        dy, dx = (int(v) for v in rng.integers(0, _NOISE_PAD, 2))
        return self.noise_bank[k, dy : dy + h, dx : dx + w]


def make_scene(config: SynthConfig, tank: Tank, seed: int, camera_index: int) -> Scene:
    """Draw one camera's floor and pick its light and noise (stream ``(seed, camera, 1)``)."""
    rng = np.random.default_rng([seed, camera_index, 1])
    h, w = config.height, config.width
    grey = float(rng.uniform(150.0, 185.0))
    tint = np.array([-6.0, 0.0, 5.0]) * rng.uniform(0.3, 1.2) + rng.normal(0, 2.0, 3)
    floor: np.ndarray = np.empty((h, w, 3), np.float32)
    floor[:] = (grey + tint).astype(np.float32)
    # Floors and lights beyond the first presets' draw from their own stream, so those
    # presets' clips stay the same.
    extra = np.random.default_rng([seed, camera_index, 4])
    if config.texture and config.floor != "plain":
        texture = _texture(rng, h, w)
        floor += texture[:, :, None]
        floor[:, :, 0] += 0.3 * _smooth_noise(rng, h, w, max(h, w) / 6.0, 3.0)  # colour blotches
        if config.floor == "gravel":
            floor += _gravel(extra, h, w)[:, :, None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (cx**2 + cy**2)
    vignette = float(rng.uniform(0.06, 0.16))
    if config.light != "even":
        floor *= (1.0 - vignette * r2)[:, :, None]
    if config.light == "gradient":
        slope = float(extra.uniform(0.15, 0.3))
        theta = float(extra.uniform(0, 2 * np.pi))
        ramp_xy = np.cos(theta) * (xx - cx) / w + np.sin(theta) * (yy - cy) / h
        floor *= (1.0 + slope * ramp_xy)[:, :, None]
    inside = np.ones((h, w), bool)
    if tank.radius is not None:
        floor, inside = _draw_wall(floor, tank, xx, yy, rng)
    floor = np.clip(floor, 0.0, 255.0).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - cx) / w + np.sin(angle) * (yy - cy) / h).astype(np.float32)
    floor_ramp = floor * ramp[:, :, None]
    weights = np.array([0.114, 0.587, 0.299], np.float32)
    inside_px = floor[inside] if inside.any() else floor.reshape(-1, 3)
    bgr_mean = inside_px.mean(axis=0).astype(np.float64)
    noise_bank = None
    if config.noise_sigma > 0:
        noise_rng = np.random.default_rng([seed, camera_index, 2])
        shape = (_NOISE_BANK, h + _NOISE_PAD, w + _NOISE_PAD, 3)
        bank = noise_rng.standard_normal(shape, dtype=np.float32)
        bank *= np.float32(config.noise_sigma)
        bank += np.float32(0.5)
        noise_bank = np.floor(bank, out=bank).astype(np.int16)  # rounded to the nearest int
    illum = config.illumination
    drift = (
        float(rng.uniform(0.03, 0.06)) if illum else 0.0,
        float(rng.uniform(15.0, 40.0)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    ramp_light = (
        float(rng.uniform(0.04, 0.08)) if illum else 0.0,
        float(rng.uniform(20.0, 60.0)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    flicker = (float(rng.uniform(0.006, 0.015)) if illum else 0.0, float(rng.uniform(0.7, 3.0)))
    if config.light == "flicker":  # slow and strong, whatever the drift
        flicker = (float(extra.uniform(0.03, 0.06)), float(extra.uniform(0.1, 0.4)))
    return Scene(
        floor=floor,
        floor_ramp=floor_ramp,
        floor_grey_mean=float(bgr_mean @ weights),
        floor_bgr_mean=bgr_mean,
        noise_bank=noise_bank,
        drift_amplitude=drift[0],
        drift_period_s=drift[1],
        drift_phase=drift[2],
        ramp_amplitude=ramp_light[0],
        ramp_period_s=ramp_light[1],
        ramp_phase=ramp_light[2],
        flicker_amplitude=flicker[0],
        flicker_hz=flicker[1],
    )


def cast_shadow(
    frame: np.ndarray,
    polygon_xy: np.ndarray,
    offset_xy: tuple[float, float],
    sigma: float,
    strength: float,
    shadow_map: np.ndarray | None = None,
) -> None:
    """Darken ``frame`` (float32 (H, W, 3), in place) with the blurred, offset ``polygon_xy``.

    ``shadow_map`` (float32 (H, W)), when given, accumulates the darkening (for tests).
    """
    h, w = frame.shape[:2]
    pts = polygon_xy + np.asarray(offset_xy)
    pad = int(np.ceil(3 * sigma)) + 2
    x0 = max(int(np.floor(pts[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + pad + 1, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + pad + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    patch: np.ndarray = np.zeros((y1 - y0, x1 - x0), np.float32)
    local = np.rint((pts - [x0, y0]) * 16).astype(np.int32)
    cv2.fillPoly(patch, [local], 1.0, lineType=cv2.LINE_8, shift=4)
    patch = cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    patch = patch * np.float32(strength)
    if shadow_map is not None:
        shadow_map[y0:y1, x0:x1] = 1.0 - (1.0 - shadow_map[y0:y1, x0:x1]) * (1.0 - patch)
    frame[y0:y1, x0:x1] *= (1.0 - patch)[:, :, None]


# --------------------------------------------------------------------------- internals


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float, amp: float) -> np.ndarray:
    """Band-limited noise (H, W) float32 with features of about ``scale`` px, std ~ ``amp``."""
    gh, gw = max(2, int(np.ceil(h / scale)) + 2), max(2, int(np.ceil(w / scale)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)
    return amp * big[:h, :w] / max(float(big.std()), 1e-6)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sand: large blotches, mid-scale ripples, fine grain and pebbles (grey offsets)."""
    tex = _smooth_noise(rng, h, w, max(h, w) / 5.0, 6.0)
    tex += _smooth_noise(rng, h, w, 22.0, 4.0)
    tex += _smooth_noise(rng, h, w, 2.5, 3.0)
    pebbles = np.zeros((h, w), np.float32)
    n = int(h * w / 500)
    xs = rng.uniform(0, w, n)
    ys = rng.uniform(0, h, n)
    radii = rng.uniform(1.0, 4.5, (n, 2))
    angles = rng.uniform(0, 180, n)
    values = rng.normal(0.0, 9.0, n)
    for x, y, (ra, rb), ang, v in zip(xs, ys, radii, angles, values, strict=True):
        cv2.ellipse(
            pebbles,
            (int(x), int(y)),
            (int(ra + 0.5), int(rb + 0.5)),
            float(ang),
            0,
            360,
            float(v),
            -1,
        )
    tex += cv2.GaussianBlur(pebbles, (0, 0), 0.9)
    return tex


def _gravel(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gravel: packed stones of 2-7 px, each its own grey (std 16), dark gaps between."""
    stones: np.ndarray = np.full((h, w), -14.0, np.float32)
    n = int(0.9 * h * w / 30.0)
    xs = rng.uniform(0, w, n)
    ys = rng.uniform(0, h, n)
    radii = rng.uniform(1.5, 3.5, (n, 2))
    angles = rng.uniform(0, 180, n)
    values = rng.normal(0.0, 16.0, n)
    for x, y, (ra, rb), ang, v in zip(xs, ys, radii, angles, values, strict=True):
        axes = (int(ra + 0.5), int(rb + 0.5))
        cv2.ellipse(stones, (int(x), int(y)), axes, float(ang), 0, 360, float(v), -1)
    return cv2.GaussianBlur(stones, (0, 0), 0.7)


def _draw_wall(
    floor: np.ndarray, tank: Tank, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Tank wall: a darkened seam and wall shadow inside, a bright rim, dark ground beyond."""
    if tank.radius is None:
        return floor, np.ones(floor.shape[:2], bool)
    cx, cy = tank.center_xy
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - tank.radius  # > 0 outside
    h, w = floor.shape[:2]
    band = 0.012 * max(h, w) + 5.0
    shade = 1.0 - 0.22 * np.exp(np.minimum(d, 0.0) / (0.03 * max(h, w) + 4.0))
    floor = floor * shade[:, :, None]
    rim = np.clip(1.0 - np.abs(d - band / 2) / (band / 2), 0.0, 1.0) ** 0.5
    rim_colour = np.array([205.0, 212.0, 214.0], np.float32) * float(rng.uniform(0.9, 1.05))
    outside = np.clip((d - band) / 2.0 + 0.5, 0.0, 1.0)
    ground = np.array([62.0, 70.0, 78.0], np.float32) * float(rng.uniform(0.8, 1.2))
    ground_img = ground + _smooth_noise(rng, h, w, 40.0, 6.0)[:, :, None]
    floor = floor * (1 - rim)[:, :, None] + rim_colour * rim[:, :, None]
    floor = floor * (1 - outside)[:, :, None] + ground_img * outside[:, :, None]
    return floor.astype(np.float32), d < -2.0
