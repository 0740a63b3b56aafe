"""``aquapose detect`` (videos -> COCO detections + frames) and ``aquapose eval-detections``."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from aquapose.cli._app import app, console, progress_tasks
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.segmentation.detect import DetectConfig
from aquapose.segmentation.detection_eval import DetectionEvalConfig
from aquapose.segmentation.detector import DetectorConfig


@app.command()
def detect(
    ctx: typer.Context,
    videos: list[Path] = typer.Argument(
        ..., help="Video files, one per camera; the camera id is the file name's stem."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    every: int = typer.Option(
        DetectConfig.every, "--every", min=1, help="Keep every N-th frame (all are modelled)."
    ),
    overlay: bool = typer.Option(
        False, "--overlay", help="Also write overlay/<camera_id>/<frame>.png with boxes drawn."
    ),
    scale: float = typer.Option(
        DetectorConfig.scale,
        "--scale",
        help="Run background subtraction at this resolution factor (0 < s <= 1).",
    ),
    median_frames: int = typer.Option(
        DetectorConfig.median_frames,
        "--median-frames",
        min=0,
        help="Frames spread over the clip for the median background "
        "that primes the model (0: learn during warm-up instead).",
    ),
    max_frames: int | None = typer.Option(
        None, "--max-frames", min=1, help="Stop after this many frames per video."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start over instead of resuming an interrupted run in OUT."
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(DetectConfig),
) -> None:
    """Find fish in videos by background subtraction (MOG2).

    Writes OUT/detections.json (COCO: one image per kept frame, one annotation per
    blob with box, score and RLE blob mask), the kept frames as
    OUT/frames/<camera_id>/<frame_index>.png, and OUT/detect_config.yaml (every
    setting; --config accepts it). Progress streams to OUT/detections.jsonl: run the
    same command again after an interruption and it continues after the last
    finished frame.
    """
    from aquapose.segmentation.detect import detect_videos

    flags = {
        "every": "every",
        "overlay": "overlay",
        "max_frames": "max_frames",
        "scale": "detector.scale",
        "median_frames": "detector.median_frames",
    }
    settings = resolve_config(DetectConfig, ctx, config, flags)
    with progress_tasks() as progress:
        run = detect_videos(videos, out, settings, overwrite=overwrite, progress=progress)
    for cam in run.cameras:
        console.print(f"{cam.camera_id}: {cam.frames} frames kept, {cam.detections} detections")
        if cam.rejected:
            console.print(
                f"[yellow]warning:[/] {cam.camera_id}: {cam.rejected} frames rejected "
                f"({cam.reject_reason}): moving camera or sudden global change; they have no "
                "detections",
                highlight=False,
            )
    console.print(f"wrote {run.detections_json}")


def _fmt(value: float, n: int | None = None) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if n is None else f"{value:.3f} ({n})"


@app.command("eval-detections")
def eval_detections(
    ctx: typer.Context,
    detections: Path = typer.Argument(..., help="detections.json written by `aquapose detect`."),
    ground_truth: list[Path] = typer.Argument(..., help="Ground-truth COCO file(s)."),
    skip_warmup: int = typer.Option(
        0, "--skip-warmup", min=0, help="Do not score frames with frame_index below N."
    ),
    iou: float = typer.Option(
        DetectionEvalConfig.iou_threshold, "--iou", help="Minimum blob-mask IoU of a match."
    ),
    coverage: float | None = typer.Option(
        None,
        "--coverage",
        help="Match by the fraction of the fish inside the detection's "
        "mask (>= this) instead of IoU: was the fish found, shadow in the blob or not.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON."),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(DetectionEvalConfig),
) -> None:
    """Per-camera recall and precision of detections against ground truth.

    Frames are joined by (camera_id, frame_index); detections and fish are paired
    one-to-one by blob-mask IoU (Hungarian). Recall on fish flagged stationary,
    low_contrast and touching in the ground truth is shown separately.
    """
    from rich.console import Console
    from rich.table import Table

    from aquapose.segmentation.detection_eval import evaluate_detections
    from aquapose.segmentation.io.files import atomic_write_json

    flags = {"skip_warmup": "skip_warmup", "iou": "iou_threshold", "coverage": "min_coverage"}
    cfg = resolve_config(DetectionEvalConfig, ctx, config, flags)
    report = evaluate_detections(
        detections,
        list(ground_truth),
        iou_threshold=cfg.iou_threshold,
        skip_warmup=cfg.skip_warmup,
        flags=cfg.flags,
        min_coverage=cfg.min_coverage,
    )
    rule = (
        f"mask IoU >= {cfg.iou_threshold:g}"
        if cfg.min_coverage is None
        else f"fish inside detection >= {cfg.min_coverage:g}"
    )
    table = Table(title=f"{detections} vs ground truth ({rule})")
    headers = ["camera", "frames", "GT", "det", "TP", "FP", "FN", "recall", "precision"]
    headers += [f"{flag.replace('_', '-')} recall (n)" for flag in report.flags] + ["mean IoU"]
    for header in headers:
        table.add_column(header, justify="left" if header == "camera" else "right")
    for i, stats in enumerate((*report.cameras, report.total)):
        row = [stats.camera_id, str(stats.frames), str(stats.gt), str(stats.detections)]
        row += [str(stats.true_positives), str(stats.false_positives), str(stats.false_negatives)]
        row += [_fmt(stats.recall), _fmt(stats.precision)]
        row += [_fmt(stats.flag_recall(f), stats.flag_gt.get(f, 0)) for f in report.flags]
        row.append(_fmt(stats.mean_iou))
        table.add_row(*row, end_section=i == len(report.cameras) - 1)
    stdout = Console()
    if not stdout.is_terminal:  # piped / captured: do not squeeze the table to 80 columns
        stdout = Console(width=160)
    stdout.print(table)
    if report.frames_without_ground_truth:
        console.print(
            f"[yellow]note:[/] {report.frames_without_ground_truth} detection frames have no "
            "ground truth and were not scored"
        )
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict(), indent=2)
        console.print(f"wrote {json_out}")
