"""Synthetic aquarium generation speed, against just writing blank frames to a video.

Rows:

- ``rig``-like generation (1600x1200, 9 fish, every difficulty on, mp4v video and COCO
  ground truth written) in frames/s, beside the cost of writing the same number of
  blank 1600x1200 frames through ``cv2.VideoWriter`` (mp4v): the ratio shows what
  rendering and ground truth add on top of encoding;
- rendering alone (no video, no files) in frames/s at 1600x1200, same baseline;
- wall time of the whole ``demo`` preset (3 cameras x 600 frames), beside writing as
  many blank 640x480 frames (``--quick``: 100 frames per camera).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402
from aquapose.synth import CameraRenderer, generate, resolve_config  # noqa: E402


def blank_write_seconds(frames: int, width: int, height: int, fps: float, folder: Path) -> float:
    """Seconds to write ``frames`` blank (mid-grey) frames through cv2.VideoWriter (mp4v)."""
    path = folder / f"blank_{width}x{height}.mp4"
    blank = np.full((height, width, 3), 128, np.uint8)
    start = time.perf_counter()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for _ in range(frames):
        writer.write(blank)
    writer.release()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[BenchRow]:
    cameras, frames = (1, 20) if quick else (2, 60)
    demo_frames = 100 if quick else None
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rig = resolve_config("rig", cameras=cameras, frames=frames)
        n = cameras * frames
        blank_s = blank_write_seconds(n, rig.width, rig.height, rig.fps, folder)
        start = time.perf_counter()
        generate(folder / "rig", preset="rig", seed=0, cameras=cameras, frames=frames)
        rig_s = time.perf_counter() - start
        rows.append(
            BenchRow(
                f"generate rig-like 1600x1200 ({cameras}x{frames} fr)",
                n / rig_s,
                "frames/s",
                "blank frames via cv2.VideoWriter",
                n / blank_s,
            )
        )
        renderer = CameraRenderer(rig, 0, 0)
        start = time.perf_counter()
        for i in range(frames):
            renderer.render(i)
        render_s = time.perf_counter() - start
        rows.append(
            BenchRow(
                "render only 1600x1200 (no video/files)",
                frames / render_s,
                "frames/s",
                "blank frames via cv2.VideoWriter",
                n / blank_s,
            )
        )
        demo = resolve_config("demo", frames=demo_frames)
        n_demo = demo.num_cameras * demo.num_frames
        blank_demo_s = blank_write_seconds(n_demo, demo.width, demo.height, demo.fps, folder)
        start = time.perf_counter()
        generate(folder / "demo", preset="demo", seed=0, frames=demo_frames)
        demo_s = time.perf_counter() - start
        label = "demo preset wall time" + (" (100 fr/cam)" if quick else " (3x600 fr)")
        rows.append(
            BenchRow(label, demo_s, "s", "blank 640x480 frames, same count", blank_demo_s, False)
        )
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
