"""``aquapose segment``: masks for every fish in every frame of videos, with a trained model."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from aquapose.cli._app import app, console, progress_bar


@app.command()
def segment(
    videos: list[Path] = typer.Argument(
        ..., help="Video files, or a folder of camera videos (a rig); camera id = file stem."
    ),
    model: Path = typer.Option(
        ..., "--model", help="Checkpoint written by `aquapose train` (best.pt)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder (results.json, segments.jsonl)."),
    every: int = typer.Option(1, help="Process every N-th frame (the detector still sees all)."),
    score_threshold: float = typer.Option(0.5, help="Keep fish predicted at or above this score."),
    batch_size: int = typer.Option(8, help="Crops per model forward pass."),
    recheck_frames: int = typer.Option(
        9000,
        help="Re-check where a lost (e.g. stationary) fish was last seen for N frames; 0 = off.",
    ),
    recheck_misses: int = typer.Option(
        3, min=1, help="... until N re-checks in a row find no fish there (it swam away)."
    ),
    tile_every: int = typer.Option(
        0, help="Also run the model over the whole frame, tiled, every N processed frames; 0 = off."
    ),
    refine_pad: int = typer.Option(
        12,
        min=0,
        help="Snap each mask to the fish's edges with GrabCut seeded by the model's mask, "
        "in its box grown by N pixels (~13 ms per fish); 0 = the model's masks as they are.",
    ),
    blob_contrast: float = typer.Option(
        25.0,
        min=0.0,
        help="Keep a detection no model mask touches when it differs from the floor around "
        "it by >= this many grey levels (a clearly visible fish the model missed), with "
        "score 0.3; 0 = off.",
    ),
    overlay_video: bool = typer.Option(
        False, "--overlay-video", help="Also write OUT/<camera>_overlay.mp4 with the masks drawn."
    ),
) -> None:
    """Detect -> crop -> predict -> paste for every frame of every video.

    Writes OUT/results.json: COCO with one image per processed frame (camera_id,
    frame_index, video) and frame-space RLE masks with scores. Progress streams
    to OUT/segments.jsonl, so an interrupted run, started again with the same
    arguments, continues after the last finished frame.
    """
    from rich.progress import TaskID

    from aquapose.segmentation.model import MaskRCNNSegmentor
    from aquapose.segmentation.segment import (
        SegmentConfig,
        find_videos,
        segment_videos,
        write_overlay_video,
    )

    config = SegmentConfig(
        every=every,
        score_threshold=score_threshold,
        batch_size=batch_size,
        recheck_frames=recheck_frames,
        recheck_misses=recheck_misses,
        tile_every=tile_every,
        refine_pad=refine_pad,
        blob_contrast=blob_contrast,
    )
    video_paths = find_videos(videos)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a folder")
    segmentor = MaskRCNNSegmentor.load(model)
    processed = 0
    start = time.perf_counter()
    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def on_frame(camera_id: str, frame_index: int, total: int) -> None:
            nonlocal processed
            processed += 1
            if camera_id not in tasks:
                tasks[camera_id] = progress.add_task(f"segment {camera_id}", total=total or None)
            progress.update(tasks[camera_id], completed=frame_index + 1)

        results = segment_videos(video_paths, segmentor, out, config, on_frame=on_frame)
        for task in tasks.values():
            progress.update(task, completed=progress.tasks[task].total or 0)
    if overlay_video:
        for video in video_paths:
            path = out / f"{video.stem}_overlay.mp4"
            write_overlay_video(video, out / "segments.jsonl", video.stem, path)
            console.print(f"overlay: {path}")
    seconds = time.perf_counter() - start
    console.print(f"{processed} frames segmented in {seconds:.0f} s; results: {results}")
