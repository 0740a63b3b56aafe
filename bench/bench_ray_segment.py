"""``aquapose segment --engine ray``: throughput with 1 and 2 Ray workers against one process.

In the same run, on a 2-camera synthetic ``rig`` clip (1600x1200, light model with
random weights unless ``AQUAPOSE_BENCH_MODEL`` names a trained checkpoint):

- one process (``segment_videos``, default threads) and one process with 1 thread
  (what one Ray worker gets: ``OMP_NUM_THREADS=1``). On a 2-core machine shared with
  other jobs, torch's 2 OpenMP threads ran 5-6x slower than 1 (threads spinning for a
  busy core), so compare the workers with the 1-thread process;
- ``segment_videos_ray`` on a local cluster of 1 and of 2 CPUs (the cluster's start is
  timed apart), chunks of half a video, 15 frames of overlap; the overhead per chunk is
  (1 worker - 1-thread process) / chunks: task, model load, overlap frames, merge;
- the per-stage costs of one frame (decode + detect, model, the rest: crops, GrabCut,
  masks), the straight-through decode rate, and from them a projection for a 13-camera
  hour (30 fps) on N workers, printed below the table.

Run: ``.venv/bin/python bench/bench_ray_segment.py [--quick]`` (~4 minutes; ~2 with --quick).
Needs Ray (``pip install 'ray>=2.9'``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table  # noqa: E402

HOUR_FRAMES = 13 * 30 * 3600  # a 13-camera rig, 30 fps, one hour
_notes: list[str] = []


class _TimedModel:
    """The model with the time spent in ``predict`` summed."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.crop_size = model.crop_size  # type: ignore[attr-defined]
        self.seconds = 0.0

    def predict(self, *args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return self.model.predict(*args, **kwargs)  # type: ignore[attr-defined]
        finally:
            self.seconds += time.perf_counter() - start


def _grab_fps(video: Path) -> float:
    cap = cv2.VideoCapture(str(video))
    n, start = 0, time.perf_counter()
    while cap.grab():
        n += 1
    cap.release()
    return n / (time.perf_counter() - start)


def run(quick: bool = False) -> list[BenchRow]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster
    import ray
    import torch

    from aquapose.segmentation.cluster import RayConfig, segment_videos_ray
    from aquapose.segmentation.detector import detect_video
    from aquapose.segmentation.io.video import find_videos
    from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
    from aquapose.segmentation.segment import SegmentConfig, plan_chunks, segment_videos
    from aquapose.synth import generate

    frames = 48 if quick else 120
    config = SegmentConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "rig", preset="rig", seed=0, cameras=2, frames=frames)
        videos = find_videos([root / "rig"])
        n_frames = len(videos) * frames
        checkpoint = os.environ.get("AQUAPOSE_BENCH_MODEL")
        if not checkpoint:
            torch.manual_seed(0)
            model = MaskRCNNSegmentor(LIGHT_ARCH, crop_size=128, device="cpu")
            checkpoint = str(model.save(root / "model.pt"))
        model = MaskRCNNSegmentor.load(checkpoint, device="cpu")

        # One process, one thread, with the stages timed.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        try:
            start = time.perf_counter()
            for _ in detect_video(videos[0]):
                pass
            detect_s = (time.perf_counter() - start) / frames
            grab_fps = _grab_fps(videos[0])
            timed = _TimedModel(model)
            start = time.perf_counter()
            segment_videos(videos, timed, root / "single1", config)  # type: ignore[arg-type]
            single1 = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)
            cv2.setNumThreads(-1)
        # One process, default threads (the baseline of the 2-worker run), warm now.
        start = time.perf_counter()
        segment_videos(videos, model, root / "single", config)
        single = time.perf_counter() - start
        model_s = timed.seconds / n_frames
        rest_s = single1 / n_frames - detect_s - model_s

        cluster = RayConfig(chunk_frames=frames // 2, overlap_frames=15)
        n_chunks = len(plan_chunks(videos, cluster.chunk_frames, config))
        runs: dict[int, tuple[float, float, int]] = {}
        statuses: dict[int, list[str]] = {1: [], 2: []}
        for cpus in (1, 2):
            start = time.perf_counter()
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                object_store_memory=128 * 1024**2,
                log_to_driver=False,
            )
            boot = time.perf_counter() - start
            try:
                start = time.perf_counter()
                segment_videos_ray(
                    videos,
                    checkpoint,
                    root / f"ray{cpus}",
                    config,
                    cluster,
                    on_chunk=lambda c, s, cpus=cpus: statuses[cpus].append(s),
                )
                runs[cpus] = (time.perf_counter() - start, boot, statuses[cpus].count("redo"))
            finally:
                ray.shutdown()
        same = all(
            (root / f"ray{c}" / "segments.jsonl").read_bytes()
            == (root / "single" / "segments.jsonl").read_bytes()
            for c in (1, 2)
        )

    overhead = (runs[1][0] - single1) / n_chunks
    # the overlap frames segmented (or only decoded, for a re-run) beyond one pass
    warm = (n_chunks - len(videos)) * cluster.overlap_frames * single1 / n_frames / n_chunks
    _notes.extend(
        [
            f"{n_frames} frames, {n_chunks} chunks of {cluster.chunk_frames} frames (overlap "
            f"{cluster.overlap_frames}); chunks run again (tracks differed): "
            f"1 worker {runs[1][2]}, 2 workers {runs[2][2]}; segments.jsonl equal to one "
            f"process: {same}",
            f"per frame, 1 thread: decode+detect {detect_s * 1e3:.0f} ms, model "
            f"{model_s * 1e3:.0f} ms, rest (crops, GrabCut, masks) {rest_s * 1e3:.0f} ms; "
            f"straight-through decode {grab_fps:.0f} frames/s",
            *_projection(detect_s, model_s, rest_s, overhead),
        ]
    )
    return [
        BenchRow(
            "ray, 1 worker (1 CPU)",
            n_frames / runs[1][0],
            "frames/s",
            "one process, 1 thread",
            n_frames / single1,
        ),
        BenchRow(
            "ray, 2 workers (2 CPUs)",
            n_frames / runs[2][0],
            "frames/s",
            "one process, 1 thread",
            n_frames / single1,
        ),
        BenchRow(
            "ray, 2 workers (2 CPUs)",
            n_frames / runs[2][0],
            "frames/s",
            "one process, default threads",
            n_frames / single,
        ),
        BenchRow(
            "ray, 2 workers (2 CPUs)",
            n_frames / runs[2][0],
            "frames/s",
            "ray, 1 worker (1 CPU)",
            n_frames / runs[1][0],
        ),
        BenchRow("ray overhead per chunk (1 worker)", overhead, "s", higher_is_better=False),
        BenchRow("  of which overlap frames (estimate)", warm, "s", higher_is_better=False),
        BenchRow(
            "local cluster start (2 CPUs)",
            runs[2][1],
            "s",
            "local cluster start (1 CPU)",
            runs[1][1],
            higher_is_better=False,
        ),
    ]


def _projection(detect_s: float, model_s: float, rest_s: float, overhead: float) -> list[str]:
    """Hours for a 13-camera hour on N workers, from the measured per-frame costs.

    A worker runs one chunk at a time on one CPU core: decode + detect and the rest are
    CPU work; the model runs on the CPU (measured) or on a GPU it shares (not measured
    here: the row takes it as free, a lower bound). Chunks of 1800 frames with 150 frames
    of overlap segment 8% more frames, plus the measured overhead per chunk.
    """
    chunk, overlap = 1800, 150
    factor = (chunk + overlap) / chunk
    per_chunk = overhead / chunk
    cpu = (detect_s + model_s + rest_s) * factor + per_chunk
    gpu = (detect_s + rest_s) * factor + per_chunk
    lines = [f"projection, 13 cameras x 1 h x 30 fps = {HOUR_FRAMES / 1e6:.2f} M frames:"]
    lines.append(f"{'workers':>8} {'CPU model (h)':>14} {'GPU model, free (h)':>20}")
    for n in (1, 8, 16, 32, 64, 128):
        lines.append(
            f"{n:>8} {HOUR_FRAMES * cpu / n / 3600:>14.1f} {HOUR_FRAMES * gpu / n / 3600:>20.1f}"
        )
    return lines


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
    print("\n".join(_notes))
