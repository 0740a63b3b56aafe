"""``aquapose segment`` on 1600x1200 video: throughput and bounded memory.

- frames/s of ``segment_videos`` (detect -> crop -> predict -> paste, light model, every
  frame) beside the detector alone (``detect_video``) on the same clip: the floor the
  model's share is measured against;
- the same with ``refine_pad=0`` (the model's masks as they are): what snapping each
  mask to the fish's edges with GrabCut costs;
- peak resident memory of a whole ``segment_videos`` run on the long clip beside the
  same run on a clip a quarter as long (each in a fresh process): streaming keeps it flat.

The clip is a synthetic ``rig`` camera (1600x1200), looped to the wanted length. The model
is the light preset with random weights unless ``AQUAPOSE_BENCH_MODEL`` names a trained
checkpoint (speed depends on the number of crops, which the detector decides).

Run: ``.venv/bin/python bench/bench_segment.py [--quick]`` (~3 minutes; ~1 with --quick).
Linux only (peak memory is read from ``/proc``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402

# Peak RSS from /proc/self/status (VmHWM, this process only): getrusage's ru_maxrss
# survives fork + exec on Linux and would report the parent's peak.
_CHILD = """
import json, sys, time, torch
from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
from aquapose.segmentation.segment import SegmentConfig, segment_videos
torch.set_num_threads(2)
video, out, model_path, refine_pad = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.manual_seed(0)
model = (MaskRCNNSegmentor.load(model_path, device="cpu") if model_path
         else MaskRCNNSegmentor(LIGHT_ARCH, crop_size=128, device="cpu"))
start = time.perf_counter()
segment_videos([video], model, out, SegmentConfig(refine_pad=refine_pad))
seconds = time.perf_counter() - start
peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "max_rss_kb": peak_kb}))
"""


def _looped_clip(clip: list[np.ndarray], out: Path, frames: int) -> Path:
    """Write ``frames`` frames of ``clip`` (played forwards, looped) to ``out``."""
    height, width = clip[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for i in range(frames):
        writer.write(clip[i % len(clip)])
    writer.release()
    return out


def _segment_in_child(video: Path, out: Path, refine_pad: int = 12) -> dict[str, float]:
    model = os.environ.get("AQUAPOSE_BENCH_MODEL", "")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(video), str(out), model, str(refine_pad)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[BenchRow]:
    from aquapose.segmentation.detector import detect_video
    from aquapose.segmentation.io.video import sample_frames
    from aquapose.synth import generate

    short_n, long_n = (75, 300) if quick else (300, 1200)
    source_n = 150
    cv2.setNumThreads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = generate(root / "rig", preset="rig", seed=0, cameras=1, frames=source_n)
        source = manifest.parent / json.loads(manifest.read_text())["cameras"][0]["video"]
        clip = sample_frames(source, 0, source_n, source_n)
        short = _looped_clip(clip, root / "short.mp4", short_n)
        long = _looped_clip(clip, root / "long.mp4", long_n)

        start = time.perf_counter()
        for _ in detect_video(short):
            pass
        detect_fps = short_n / (time.perf_counter() - start)
        short_run = _segment_in_child(short, root / "seg_short")
        long_run = _segment_in_child(long, root / "seg_long")
        unrefined = _segment_in_child(short, root / "seg_unrefined", refine_pad=0)

    return [
        BenchRow(
            "segment fps 1600x1200 (light model)",
            short_n / short_run["seconds"],
            "frames/s",
            "detector alone (detect_video)",
            detect_fps,
        ),
        BenchRow(
            "segment fps 1600x1200 (light model)",
            short_n / short_run["seconds"],
            "frames/s",
            "same, masks not refined (refine_pad=0)",
            short_n / unrefined["seconds"],
        ),
        BenchRow(
            f"segment peak RSS, {long_n} frames",
            long_run["max_rss_kb"] / 1024,
            "MiB",
            f"segment peak RSS, {short_n} frames",
            short_run["max_rss_kb"] / 1024,
            higher_is_better=False,
        ),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
