"""FrozenMOG2 gives exactly OpenCV MOG2's mask for a model primed with one image."""

from __future__ import annotations

import multiprocessing
import os

import cv2
import numpy as np
import pytest

from aquapose.segmentation._frozen_mog2 import FrozenMOG2
from aquapose.segmentation.detector import DetectorConfig, MOG2Detector

H, W = 48, 64


def _primed_mog2(background, variance, var_threshold, tau, shadows, repeats=10):
    """A cv2 MOG2 primed as MOG2Detector.prime does."""
    mog = cv2.createBackgroundSubtractorMOG2(
        history=500, varThreshold=var_threshold, detectShadows=shadows
    )
    mog.setShadowThreshold(tau)
    mog.setVarMin(variance)
    mog.setVarInit(variance)
    for i in range(repeats):
        mog.apply(background, learningRate=1.0 / (i + 1))
    return mog


def _frames(rng, background, n=4):
    """Frames mixing every case: noise, darker (shadow-like) and brighter regions,
    colour changes, black and saturated pixels."""
    out = []
    for _ in range(n):
        frame = background.astype(np.float32) + rng.normal(0, 3.0, background.shape)
        gain = rng.uniform(0.2, 1.3, (H // 8, W // 8, 1)).astype(np.float32)
        frame *= cv2.resize(gain, (W, H), interpolation=cv2.INTER_NEAREST)[..., None]
        frame[rng.random((H, W)) < 0.05] = rng.integers(0, 256, 3)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("variance", [1.0, 1.7036546, 4.0, 36.0, 75.0])
@pytest.mark.parametrize(
    ("var_threshold", "tau", "shadows"), [(144, 0.5, True), (16, 0.3, True), (144, 0.5, False)]
)
def test_frozen_mog2_equals_opencv_apply(rng, variance, var_threshold, tau, shadows):
    background = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    background[:4, :4] = 0  # <m, m> == 0: never a shadow
    mog = _primed_mog2(background, variance, var_threshold, tau, shadows)
    frozen = FrozenMOG2(
        background,
        variance,
        mog.getVarThreshold(),
        mog.getShadowThreshold(),
        mog.getDetectShadows(),
        mog.getShadowValue(),
    )
    labels = set()
    for frame in _frames(rng, background):
        expected = mog.apply(frame, learningRate=0)
        np.testing.assert_array_equal(frozen.apply(frame), expected)
        labels |= set(np.unique(expected).tolist())
    assert labels == ({0, 127, 255} if shadows else {0, 255})


def test_frozen_mog2_rejects_a_frame_of_another_size(rng):
    frozen = FrozenMOG2(np.zeros((H, W, 3), np.uint8), 4.0, 144, 0.5, True)
    with pytest.raises(ValueError, match="frame must be"):
        frozen.apply(np.zeros((H, W + 1, 3), np.uint8))


def _scene(rng, n=6):
    background = cv2.resize(rng.integers(100, 180, (H // 8, W // 8, 3)).astype(np.uint8), (W, H))
    frames = []
    for t in range(n):
        frame = background.astype(np.float32) + rng.normal(0, 1.5, background.shape)
        fish = np.zeros((H, W), np.uint8)
        cv2.ellipse(fish, (12 + 6 * t, 24), (10, 4), 0, 0, 360, 1, -1)
        frame[fish > 0] *= 0.45
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def test_detector_uses_the_frozen_test_and_finds_the_same(rng):
    frames = _scene(rng)
    config = DetectorConfig(min_blob_area=20, min_core_area=6)
    fast, slow = MOG2Detector(config), MOG2Detector(config)
    fast.prime(frames[::2])
    slow.prime(frames[::2])
    slow._frozen = None  # OpenCV's apply on every frame
    for frame in frames:
        a, b = fast.detect(frame), slow.detect(frame)
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x.box_xyxy, y.box_xyxy)
            np.testing.assert_array_equal(x.blob_mask, y.blob_mask)
    assert fast._frozen is not None and fast._frozen_checked


def test_detector_falls_back_to_apply_when_the_model_differs(rng):
    frames = _scene(rng)
    det = MOG2Detector(DetectorConfig(min_blob_area=20, min_core_area=6))
    det.prime(frames[::2])
    assert det._frozen is not None
    det._frozen = FrozenMOG2(frames[1], 2.0, 144, 0.5, True)  # not the model's background
    expected = det._mog.apply(det._light.correct(frames[0]) if det._light else frames[0], 0)
    np.testing.assert_array_equal(det.foreground_mask(frames[0]), expected)
    assert det._frozen is None  # OpenCV's apply from now on


@pytest.mark.parametrize("kwargs", [{"learning_rate": -1.0}, {"var_min": 100.0}])
def test_no_frozen_test_for_a_learning_or_clamped_model(rng, kwargs):
    det = MOG2Detector(DetectorConfig(**kwargs))
    det.prime(_scene(rng)[::2])
    assert det._frozen is None


def _count_in_fork(frames, out) -> None:
    det = MOG2Detector(DetectorConfig(min_blob_area=20, min_core_area=6))
    det.prime(frames[::2])
    out.put(len(det.detect(frames[3])))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only (Windows spawns)")
def test_a_forked_process_runs_the_frame_tests_on_its_own_thread(rng):
    """The frozen model's frame tests run on a worker thread; a process forked after the
    parent started it (fork copies no threads) starts its own instead of waiting forever."""
    frames = _scene(rng)
    parent = MOG2Detector(DetectorConfig(min_blob_area=20, min_core_area=6))
    parent.prime(frames[::2])
    expected = len(parent.detect(frames[3]))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_count_in_fork, args=(frames, out))
    child.start()
    try:
        assert out.get(timeout=60) == expected >= 1
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
