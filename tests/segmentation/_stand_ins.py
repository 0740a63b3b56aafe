"""Test stand-ins for the segmentation model (importable by Ray workers: see test_cluster)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import SegmentationResult


class DarkPixelModel:
    """Test stand-in with MaskRCNNSegmentor's predict signature: one result per dark blob."""

    crop_size = 64
    background_input = False

    def __init__(self) -> None:
        self.calls = 0  # one call per frame that has crops

    def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
        self.calls += 1
        out = []
        for crop, region in zip(crops, regions, strict=True):
            gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
            n, labels = cv2.connectedComponents((gray < 60).astype(np.uint8))
            results = []
            for k in range(1, n):
                mask = labels == k
                if mask.sum() < 10:
                    continue
                results.append(
                    SegmentationResult(mask_to_box_xyxy(mask), encode_rle(mask), 0.9, region)
                )
            out.append(results)
        return out


class ContrastModel(DarkPixelModel):
    """Like :class:`DarkPixelModel` for fish lighter or darker than the floor: pixels
    whose grey level differs from the crop's median by more than ``level``."""

    def __init__(self, level: int = 20) -> None:
        super().__init__()
        self.level = level

    def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
        self.calls += 1
        out = []
        for crop, region in zip(crops, regions, strict=True):
            gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.int16)
            fish = (np.abs(gray - int(np.median(gray))) > self.level).astype(np.uint8)
            n, labels = cv2.connectedComponents(cv2.morphologyEx(fish, cv2.MORPH_OPEN, None))
            results = []
            for k in range(1, n):
                mask = labels == k
                if mask.sum() >= 10:
                    box = mask_to_box_xyxy(mask)
                    results.append(SegmentationResult(box, encode_rle(mask), 0.9, region))
            out.append(results)
        return out


class CrashOnceModel(ContrastModel):
    """Kills its worker process (``os._exit``) on its first call of the whole run, then
    raises ``RuntimeError`` on the next one; the ``marker`` files remember that it did,
    so the retried tasks run through."""

    def __init__(self, marker: str, raise_marker: str) -> None:
        super().__init__()
        self.marker = Path(marker)
        self.raise_marker = Path(raise_marker)

    def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
        if not self.marker.exists():
            self.marker.write_text("crashed")
            os._exit(1)
        if not self.raise_marker.exists():
            self.raise_marker.write_text("raised")
            raise RuntimeError("CUDA out of memory (a stand-in)")
        return super().predict(crops, regions, score_threshold, batch_size)
