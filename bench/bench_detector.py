"""Detector speed at 1600x1200 against a bare OpenCV MOG2 ``apply`` loop, and ``scale=0.5``.

Frames: a textured floor with 9 fish (dark, shadow-grey and low-contrast ones)
swimming, sensor noise; rendered once, then every timed loop runs on the same
frames. Rows:

- ``MOG2Detector.detect`` frames/s vs a bare ``createBackgroundSubtractorMOG2().apply``
  loop (aim: ratio >= 0.8). The primed, frozen detector no longer calls ``apply``: it
  evaluates the frozen model's verdict directly (``_frozen_mog2``, bit-identical masks,
  5-8x cheaper than ``apply`` on a 1600x1200 frame), and blobs are kept in their
  windows (no 1.9 MB frame mask per detection). Measured (min-median-max) on the 2-core
  machine: idle, 0.81-0.88-0.97 (6 runs; 75 frames/s) against 0.47-0.50 (2 runs; 44
  frames/s) for the detector before; loaded by other jobs (which slow the bare loop more),
  1.56-1.62-1.66 against 0.54-0.62-0.68. The smoothed-darkening and texture tests
  (issue 17) cost ~2.5 ms a frame: 0.72 against 0.87 without them (same session, idle);
  seeding splits by contrast (on by default since) ~1 ms more: 0.63-0.65 (2 runs); the
  second, thin texture box (``texture_thin_window``) 1.2 ms more (16.7 -> 17.9 ms a
  frame): 0.58 (1 run; 0.61-0.62 before it, same session); trimming each split fish's
  shadow again and joining tails cut off over gravel (``tail_reach``): 0.57 (51.5
  frames/s, against 51.9 before them, same session; ~1.4 ms more on a 110-fish frame);
  keeping small parts with a sure MOG2 core and joining any near pieces of one faint
  fish (``join_contrast``), a 1 px ring round thin blobs: 0.55-0.56 (50.4-51.1
  frames/s, 2 runs); the camera-shift and texture tests on a worker thread beside the
  frozen MOG2 test: 0.62-0.65 (56.2-59.2 frames/s, 3 runs, same masks); dropping
  what healing left of a ghost (``is_ghost``, ~0.1 ms a detection): 0.57-0.59
  (52.7-54.2 frames/s, 4 runs; 0.63 before it, same session); trimming dark fish
  without a foreground core by their contrast (the bench's shadow-grey fish): 0.56-0.58
  (51.9-53.1 frames/s, 2 runs), recall at scale 1 0.975 -> 0.978; a light fish's
  faint cast shadow kept apart, pieces joined over plain floors, the speck test by
  median |contrast| over plain floors: 0.58 (53.0-53.3 frames/s, 2 runs); border
  slivers from 5 px, slender split parts kept apart and pieces joined where they hide
  stones: 0.53-0.58 (4 runs; the bare loop varied 74-86 frames/s between them), the
  same time per frame as before them (22.0-22.3 ms against 22.4-23.1 ms, same session);
  dark pieces too dark for a light fish's shadow kept, a small blob's core from MOG2's
  strongest pixels (shadow too), patches of the other sign merged into their fish:
  0.55-0.59 (2 runs; the bare loop 73-87 frames/s), per frame the same within the noise
  (alternating runs: 21.5-29.6 ms before them, 20.9-27.9 ms after); the faint-light
  halo only round clearly light blobs (~0.1 ms a frame) and healing left alone where
  both ends of the clip show the background (priming only): 0.56 (1 run; the bare loop
  91 frames/s);
- ``scale=0.5`` frames/s vs ``scale=1`` (the speed-up: 1.8-2.05x, from 2.7-3.0x before,
  as MOG2 is no longer most of the cost);
- recall (mask IoU >= 0.3) at ``scale=0.5`` vs ``scale=1`` on the same frames.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402
from aquapose.segmentation._blobs import detection_rle  # noqa: E402
from aquapose.segmentation.detector import DetectorConfig, MOG2Detector  # noqa: E402
from aquapose.segmentation.masks import encode_rle  # noqa: E402
from aquapose.segmentation.metrics import match_masks  # noqa: E402

WIDTH, HEIGHT = 1600, 1200


def make_frames(
    n: int, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray], list[list[np.ndarray]]]:
    """(floor, frames, per-frame fish masks): 9 fish of 40-160 px swimming 25 px/frame
    (bouncing off the walls) on a textured floor."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(110, 180, (HEIGHT // 40, WIDTH // 40, 3)).astype(np.float32)
    floor = cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    floor += rng.normal(0, 6, floor.shape).astype(np.float32)  # sand grain
    floor = cv2.GaussianBlur(floor, (3, 3), 0)
    fish = []
    for i in range(9):
        length = float(rng.uniform(40, 160))
        start = rng.uniform([150, 150], [WIDTH - 150, HEIGHT - 150])
        heading = rng.uniform(0, 2 * np.pi)
        # dark (foreground), grey (MOG2 "shadow"), and a low-contrast one (-10 grey levels)
        kind = ("dark", "grey", "low")[i % 3] if i < 7 else "dark"
        fish.append((length, start, heading, kind))
    frames, masks = [], []
    for t in range(n):
        frame = floor.copy()
        frame_masks = []
        for length, start, heading, kind in fish:
            travel = start + 25.0 * t * np.array([np.cos(heading), np.sin(heading)])
            low, span = np.array([100.0, 100.0]), np.array([WIDTH - 200.0, HEIGHT - 200.0])
            folded = np.mod(travel - low, 2 * span)  # bounce off the walls
            centre = low + np.where(folded > span, 2 * span - folded, folded)
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            axes = (int(length / 2), max(3, int(length / 8)))
            angle = float(np.degrees(heading))
            cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, angle, 0, 360, 1, -1)
            m = mask.astype(bool)
            if kind == "dark":
                frame[m] *= 0.4
            elif kind == "grey":
                frame[m] *= 0.75
            else:
                frame[m] -= 10.0
            frame_masks.append(m)
        frame += rng.normal(0, 1.3, frame.shape).astype(np.float32)  # decoded-video noise
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        masks.append(frame_masks)
    return np.clip(floor, 0, 255).astype(np.uint8), frames, masks


def _pair(frames: list[np.ndarray], first: DetectorConfig | None, second: DetectorConfig):
    """Seconds spent by two loops over ``frames`` and their detections; ``first=None`` is a
    bare MOG2 ``apply`` loop. The loops take turns frame by frame, so a slow moment of the
    shared machine hits both alike (a third loop in the turn made the ratio swing 0.4-0.55
    between runs; two loops: 0.51-0.57). Priming (once per clip) is not timed."""
    loops = []
    for config in (first, second):
        if config is None:
            loops.append(cv2.createBackgroundSubtractorMOG2())
        else:
            det = MOG2Detector(config)
            det.prime(frames[::2])  # as detect_video does: robust background from clip frames
            loops.append(det)
    seconds = [0.0, 0.0]
    results: list[list] = [[], []]
    for i, frame in enumerate(frames):
        for k, loop in enumerate(loops):
            start = time.perf_counter()
            if isinstance(loop, MOG2Detector):
                results[k].append(loop.detect(frame, frame_index=i))
            else:
                loop.apply(frame)
            seconds[k] += time.perf_counter() - start
    return seconds, results


def _recall(results: list, masks: list[list[np.ndarray]]) -> float:
    found = total = 0
    for detections, frame_masks in zip(results, masks, strict=True):
        gt = [encode_rle(m) for m in frame_masks if m.any()]
        pred = [detection_rle(d) for d in detections]
        found += len(match_masks(gt, pred, threshold=0.3))
        total += len(gt)
    return found / max(total, 1)


def run(quick: bool = False) -> list[BenchRow]:
    n, repeat = (15, 2) if quick else (40, 4)
    _, frames, masks = make_frames(n)
    # Best of the repeats for each loop.
    bare_s = full_s = speed_full_s = half_s = float("inf")
    for _ in range(repeat):
        (b, f), _ = _pair(frames, None, DetectorConfig())
        bare_s, full_s = min(bare_s, b), min(full_s, f)
        (f, h), (full_results, half_results) = _pair(
            frames, DetectorConfig(), DetectorConfig(scale=0.5)
        )
        speed_full_s, half_s = min(speed_full_s, f), min(half_s, h)
    bare_fps, full_fps = n / bare_s, n / full_s
    half_fps, speed_full_fps = n / half_s, n / speed_full_s
    full_recall, half_recall = _recall(full_results, masks), _recall(half_results, masks)
    return [
        BenchRow(
            "detector fps 1600x1200 (scale 1)",
            full_fps,
            "frames/s",
            "bare MOG2 apply loop",
            bare_fps,
        ),
        BenchRow(
            "detector fps 1600x1200 (scale 0.5)",
            half_fps,
            "frames/s",
            "detector scale 1",
            speed_full_fps,
        ),
        BenchRow(
            "recall scale 0.5 (IoU>=0.3)", half_recall, "recall", "recall scale 1", full_recall
        ),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
