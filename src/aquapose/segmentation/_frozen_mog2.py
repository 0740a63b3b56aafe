"""MOG2's per-pixel test against a frozen one-mode model, without OpenCV's update loop.

:meth:`~aquapose.segmentation.detector.MOG2Detector.prime` seeds a fresh
``cv2.BackgroundSubtractorMOG2`` with one background image, fed several times, then
every frame is applied with ``learningRate=0``. Each pixel's model is then one
Gaussian of weight ~1 whose mean is the background pixel (exactly: the updates add
``k * 0``) and whose variance is ``varInit`` (the priming's variance updates are
clamped to ``varMin``, set to the same value, while that is <= ``varMax``); a zero
learning rate leaves all of it unchanged and adds no mode. OpenCV's ``apply`` still
walks the update code for every pixel (~20 ms at 1600x1200), while its verdict is:

- background (0) when ``dist2 < Tb * var``, ``dist2`` the squared BGR distance to the
  mean, ``Tb`` the variance threshold;
- else shadow (127) when ``tau <= a <= 1``, ``a = <x, m> / <m, m>`` (brightness ratio
  of the pixel ``x`` to the mean ``m``), and ``|a m - x|^2 < Tb * var * a * a``;
- else foreground (255).

:class:`FrozenMOG2` evaluates exactly that (same float32 operations, in the same
order, as OpenCV's ``detectShadowGMM``; ``dist2`` is an exact integer). Only pixels
whose largest channel difference can reach the threshold are examined
(``3 * max_c d_c^2 >= dist2``): a few per cent of a frame.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FrozenMOG2"]


class FrozenMOG2:
    """The mask ``cv2.BackgroundSubtractorMOG2.apply(frame, learningRate=0)`` gives after
    the model was primed with ``background`` alone (see the module docstring).

    Args:
        background: (H, W, 3) uint8 BGR, the image the model was primed with.
        variance: the model's ``varInit`` (and ``varMin``): each pixel's variance.
        var_threshold: MOG2's ``varThreshold`` (``Tb``).
        shadow_threshold: MOG2's ``shadowThreshold`` (``tau``).
        detect_shadows: whether MOG2 labels shadows (else 0/255 only).
        shadow_value: MOG2's ``shadowValue`` (127 by default).
    """

    def __init__(
        self,
        background: np.ndarray,
        variance: float,
        var_threshold: float,
        shadow_threshold: float,
        detect_shadows: bool,
        shadow_value: int = 127,
    ) -> None:
        if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3:
            raise ValueError(
                f"background must be (H, W, 3) uint8 BGR, got shape {background.shape} "
                f"dtype {background.dtype}"
            )
        self.background = np.ascontiguousarray(background)
        # OpenCV keeps these as float32; products below are float32 as in its C++.
        self._threshold = np.float32(var_threshold) * np.float32(variance)  # Tb * var
        self._tau = np.float32(shadow_threshold)
        self._shadows = bool(detect_shadows)
        self._shadow_value = np.uint8(shadow_value)
        # Smallest largest-channel difference k that can reach the threshold (3 k^2 >= it).
        k = np.arange(256, dtype=np.float32)
        reach = np.flatnonzero(np.float32(3.0) * k * k >= self._threshold)
        self._min_channel = int(reach[0]) if reach.size else 256

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frames it takes."""
        return self.background.shape[0], self.background.shape[1]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W) mask of ``frame`` ((H, W, 3) uint8 BGR): 0 background, shadow value,
        255 foreground."""
        h, w = self.shape
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be ({h}, {w}, 3) uint8 like the background, got shape "
                f"{frame.shape} dtype {frame.dtype}"
            )
        mask = np.zeros(h * w, np.uint8)
        if self._min_channel > 255:
            return mask.reshape(h, w)
        diff = cv2.absdiff(frame, self.background)
        b, g, r = cv2.split(diff)
        largest = cv2.max(cv2.max(b, g), r)
        index = np.flatnonzero(largest.reshape(-1) >= self._min_channel)
        if index.size == 0:
            return mask.reshape(h, w)
        d = diff.reshape(-1, 3)[index].T.astype(np.float32)  # (3, N)
        dist2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]  # an exact integer (< 2^24)
        index = index[dist2 >= self._threshold]  # not background
        mask[index] = 255
        if self._shadows and index.size:
            shadow = self._shadow(
                frame.reshape(-1, 3)[index], self.background.reshape(-1, 3)[index]
            )
            mask[index[shadow]] = self._shadow_value
        return mask.reshape(h, w)

    def _shadow(self, pixels: np.ndarray, means: np.ndarray) -> np.ndarray:
        """OpenCV's ``detectShadowGMM`` for one mode of weight 1, per row (bool (N,))."""
        x, m = pixels.T.astype(np.float32), means.T.astype(np.float32)  # (3, N)
        # Sums of integer products: exact in float32 (< 2^24) in any order, as in OpenCV.
        numerator = x[0] * m[0] + x[1] * m[1] + x[2] * m[2]
        denominator = m[0] * m[0] + m[1] * m[1] + m[2] * m[2]
        shadow = (
            (denominator != 0) & (numerator <= denominator) & (numerator >= self._tau * denominator)
        )
        dark = np.flatnonzero(shadow)
        a = numerator[dark] / denominator[dark]
        x, m = x[:, dark], m[:, dark]
        dist2a = np.zeros(a.shape, np.float32)
        for c in range(3):  # dD = a * m - x; dist2a += dD * dD, channel by channel
            dd = a * m[c] - x[c]
            dist2a = dist2a + dd * dd
        shadow[dark] = dist2a < (self._threshold * a) * a
        return shadow
