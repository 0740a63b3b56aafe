"""``aquapose segment``: masks for every fish in every frame of videos, with a trained model."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from aquapose.cli._app import app, console, progress_tasks
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.segmentation.segment import SegmentConfig

_DEFAULT = SegmentConfig()


@app.command()
def segment(
    ctx: typer.Context,
    videos: list[Path] = typer.Argument(
        ..., help="Video files, or a folder of camera videos (a rig); camera id = file stem."
    ),
    model: Path = typer.Option(
        ..., "--model", help="Checkpoint written by `aquapose train` (best.pt)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder (results.json, segments.jsonl)."),
    every: int = typer.Option(
        _DEFAULT.every, help="Process every N-th frame (the detector still sees all)."
    ),
    score_threshold: float = typer.Option(
        _DEFAULT.score_threshold, help="Keep fish predicted at or above this score."
    ),
    batch_size: int = typer.Option(_DEFAULT.batch_size, help="Crops per model forward pass."),
    recheck_frames: int = typer.Option(
        _DEFAULT.recheck_frames,
        help="Re-check where a lost (e.g. stationary) fish was last seen for N frames; 0 = off.",
    ),
    recheck_misses: int = typer.Option(
        _DEFAULT.recheck_misses,
        min=1,
        help="... until N re-checks in a row find no fish there (it swam away).",
    ),
    tile_every: int = typer.Option(
        _DEFAULT.tile_every,
        help="Also run the model over the whole frame, tiled, every N processed frames; 0 = off.",
    ),
    refine_pad: int = typer.Option(
        _DEFAULT.refine_pad,
        min=0,
        help="Snap each mask to the fish's edges with GrabCut seeded by the model's mask, "
        "in its box grown by N pixels (~13 ms per fish); 0 = the model's masks as they are.",
    ),
    blob_contrast: float = typer.Option(
        _DEFAULT.blob_contrast,
        min=0.0,
        help="Keep a detection no model mask touches when it differs from the floor around "
        "it by >= this many grey levels (a clearly visible fish the model missed), with "
        "score 0.3; 0 = off.",
    ),
    overlay_video: bool = typer.Option(
        False, "--overlay-video", help="Also write OUT/<camera>_overlay.mp4 with the masks drawn."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start over instead of resuming an interrupted run in OUT."
    ),
    engine: str = typer.Option(
        "local",
        help="local: this process; ray: one Ray task per chunk of a video (pip install "
        "'aquapose[ray]'), on a local cluster or the one at --address.",
    ),
    address: str | None = typer.Option(
        None, help="--engine ray: join this cluster (e.g. auto) instead of starting one."
    ),
    chunk_frames: int = typer.Option(
        1800, min=0, help="--engine ray: frames per task (0 = one task per video)."
    ),
    chunk_overlap: int = typer.Option(
        150, min=0, help="--engine ray: frames a chunk starts early to rebuild fish tracks."
    ),
    gpus_per_task: float = typer.Option(
        0.0, min=0.0, help="--engine ray: GPUs per task (0.5: two tasks share a GPU)."
    ),
    seek: bool = typer.Option(
        True,
        "--seek/--no-seek",
        help="--engine ray: a chunk seeks to its start (checked on the overlap frames) "
        "instead of decoding its video from frame 0.",
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(SegmentConfig),
) -> None:
    """Detect -> crop -> predict -> paste for every frame of every video.

    Writes OUT/results.json: COCO with one image per processed frame (camera_id,
    frame_index, video; file_name is VIDEO#frame=N, no image is written) and
    frame-space RLE masks with scores, and OUT/segment_config.yaml. Progress streams
    to OUT/segments.jsonl, so an interrupted run, started again with the same
    arguments, continues after the last finished frame.

    With --engine ray the videos are cut into chunks of --chunk-frames frames, one Ray
    task each (finished chunks are kept in OUT/chunks/ and not redone by a re-run);
    results.json is the same as this process alone would write. Every node must see
    the videos and the model at the same paths.
    """
    from aquapose.segmentation.io.video import find_videos
    from aquapose.segmentation.model import MaskRCNNSegmentor
    from aquapose.segmentation.segment import segment_videos, write_overlay_video

    names = ["every", "score_threshold", "batch_size", "recheck_frames", "recheck_misses"]
    names += ["tile_every", "refine_pad", "blob_contrast"]
    cfg = resolve_config(SegmentConfig, ctx, config, {name: name for name in names})
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    video_paths = find_videos(videos)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a folder")
    processed = 0
    start = time.perf_counter()
    with progress_tasks(lambda camera_id: f"segment {camera_id}") as progress:
        if engine == "ray":
            from aquapose.segmentation.cluster import RayConfig, segment_videos_ray
            from aquapose.segmentation.io.video import video_info
            from aquapose.segmentation.segment import Chunk

            MaskRCNNSegmentor.load(model, device="cpu")  # a bad checkpoint fails here, once
            totals = {v.stem: video_info(v)[0] for v in video_paths}
            done = dict.fromkeys(totals, 0)

            def on_chunk(chunk: Chunk, status: str) -> None:
                nonlocal processed
                if status != "redo":
                    total = totals[chunk.camera_id]
                    frames = (total if chunk.stop is None else chunk.stop) - chunk.start
                    done[chunk.camera_id] += frames
                    if status == "done":  # not "cached": finished by an earlier run
                        processed += (frames + cfg.every - 1) // cfg.every
                    progress(chunk.camera_id, done[chunk.camera_id], total)

            cluster = RayConfig(
                address=address,
                chunk_frames=chunk_frames,
                overlap_frames=chunk_overlap,
                gpus_per_task=gpus_per_task,
                seek=seek,
            )
            results = segment_videos_ray(
                video_paths,
                model.resolve(),
                out,
                cfg,
                cluster,
                overwrite=overwrite,
                on_chunk=on_chunk,
            )
        else:
            segmentor = MaskRCNNSegmentor.load(model)

            def on_frame(camera_id: str, frame_index: int, total: int) -> None:
                nonlocal processed
                processed += 1
                progress(camera_id, frame_index + 1, total)

            results = segment_videos(
                video_paths, segmentor, out, cfg, overwrite=overwrite, on_frame=on_frame
            )
    if overlay_video:
        for video in video_paths:
            path = out / f"{video.stem}_overlay.mp4"
            write_overlay_video(video, out / "segments.jsonl", video.stem, path)
            console.print(f"overlay: {path}")
    seconds = time.perf_counter() - start
    console.print(f"{processed} frames segmented in {seconds:.0f} s; results: {results}")
