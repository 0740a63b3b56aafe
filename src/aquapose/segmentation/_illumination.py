"""Light changes between a background image and a frame, for the detector.

The light of a tank drifts slowly (global gain) and moves (a gradient across the
floor). A frozen background model sees both as foreground. :class:`LightField` fits
``frame / background`` with a plane ``a + b x + c y`` through block medians of a
sparse pixel sample (robust to the few fish in a frame) and divides it out, tile
by tile (one scalar gain per tile: cheap at 1600x1200).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Gains this close to 1 everywhere leave the frame untouched.
_GAIN_TOLERANCE = 0.003


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
        ty, tx = min(tiles, h), min(tiles, w)
        self._ys = np.linspace(0, h, ty + 1).round().astype(int)
        self._xs = np.linspace(0, w, tx + 1).round().astype(int)
        cy = (self._ys[:-1] + self._ys[1:]) / (2.0 * h) - 0.5
        cx = (self._xs[:-1] + self._xs[1:]) / (2.0 * w) - 0.5
        self._tile_y, self._tile_x = np.meshgrid(cy, cx, indexing="ij")

    def _sample(self, image: np.ndarray) -> np.ndarray:
        s = self._step
        return image[s // 2 :: s, s // 2 :: s].mean(axis=2, dtype=np.float32)

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
            raise ValueError(f"frame size {frame.shape[:2]} differs from the background's {self.shape}")
        a, b, c = self.plane(frame)
        light = a + b * self._tile_x + c * self._tile_y
        gains = 1.0 / np.maximum(light, 1e-3)
        if np.all(np.abs(gains - 1.0) < _GAIN_TOLERANCE):
            return frame
        out = np.empty_like(frame)
        for i in range(len(self._ys) - 1):
            y0, y1 = self._ys[i], self._ys[i + 1]
            for j in range(len(self._xs) - 1):
                x0, x1 = self._xs[j], self._xs[j + 1]
                cv2.convertScaleAbs(frame[y0:y1, x0:x1], dst=out[y0:y1, x0:x1], alpha=float(gains[i, j]))
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
