"""``aquapose detect`` (videos -> COCO detections + frames) and ``aquapose eval-detections``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from aquapose.cli._app import app, console, progress_bar

if TYPE_CHECKING:
    from aquapose.segmentation.types import AnnotatedFrame


@app.command()
def detect(
    videos: list[Path] = typer.Argument(
        ..., help="Video files, one per camera; the camera id is the file name's stem."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    every: int = typer.Option(
        1, "--every", min=1, help="Keep every N-th frame (all are modelled)."
    ),
    overlay: bool = typer.Option(
        False, "--overlay", help="Also write overlay/<camera_id>/<frame>.png with boxes drawn."
    ),
    scale: float = typer.Option(
        1.0, "--scale", help="Run background subtraction at this resolution factor (0 < s <= 1)."
    ),
    median_frames: int = typer.Option(
        25,
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
) -> None:
    """Find fish in videos by background subtraction (MOG2).

    Writes OUT/detections.json (COCO: one image per kept frame, one annotation per
    blob with box, score and RLE blob mask), the kept frames as
    OUT/frames/<camera_id>/<frame_index>.png, and OUT/detector_config.json.
    Progress streams to OUT/detections.jsonl: run the same command again after an
    interruption and it continues after the last finished frame.
    """
    import warnings

    import cv2

    from aquapose.segmentation.detector import (
        DetectorConfig,
        GlobalChangeWarning,
        MOG2Detector,
        detect_video,
        detection_rle,
        open_video,
        resumable,
    )
    from aquapose.segmentation.io.coco import write_coco
    from aquapose.segmentation.io.files import atomic_write_json, read_jsonl, write_image

    config = DetectorConfig(scale=scale, median_frames=median_frames)
    cameras: dict[str, Path] = {}
    totals: dict[str, int] = {}
    for video in videos:
        if video.stem in cameras:
            raise ValueError(
                f"{video} and {cameras[video.stem]} would both be camera {video.stem!r}: "
                "give each camera's video a different file name"
            )
        cap, count = open_video(video)  # fails early, with one clear line, on a bad file
        cap.release()
        cameras[video.stem] = video
        totals[video.stem] = count if max_frames is None or count < 0 else min(count, max_frames)

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "detections.jsonl"
    settings = {
        "videos": [str(v.resolve()) for v in cameras.values()],
        "every": every,
        "max_frames": max_frames,
        "detector": config.to_dict(),
    }
    if overwrite:
        log_path.unlink(missing_ok=True)
    records = _resume_log(log_path, settings, resumable(config))
    atomic_write_json(out / "detector_config.json", config.to_dict(), indent=2)
    with progress_bar() as progress, warnings.catch_warnings(), log_path.open("a") as log:
        if not records:
            log.write(json.dumps({"run": settings}) + "\n")
        warnings.simplefilter("ignore", GlobalChangeWarning)  # summarised below instead
        for camera_id, video in cameras.items():
            total = totals[camera_id]
            task = progress.add_task(camera_id, total=total if total > 0 else None)
            mine = [r for r in records if r.get("camera_id") == camera_id]
            if mine and mine[-1].get("end"):
                progress.update(task, completed=total if total > 0 else len(mine))
                continue
            start = mine[-1]["frame_index"] + 1 if mine else 0
            detector = MOG2Detector(config)
            video_path = str(video.resolve())
            rejections = 0
            for index, frame, detections in detect_video(
                video, camera_id=camera_id, every=every, detector=detector, start=start
            ):
                if max_frames is not None and index >= max_frames:
                    break
                relative = f"frames/{camera_id}/{index:06d}.png"
                write_image(out / relative, frame)
                if overlay:
                    drawn = frame.copy()
                    for det in detections:
                        x0, y0, x1, y1 = (int(round(v)) for v in det.box_xyxy)
                        cv2.rectangle(drawn, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 2)
                    write_image(out / f"overlay/{camera_id}/{index:06d}.png", drawn)
                rejected = detector.reject_reason if detector.rejected_frames > rejections else ""
                rejections = detector.rejected_frames
                record = {
                    "camera_id": camera_id,
                    "frame_index": index,
                    "file_name": relative,
                    "width": frame.shape[1],
                    "height": frame.shape[0],
                    "video": video_path,
                    "rejected": rejected,
                    "detections": [
                        {"box_xyxy": d.box_xyxy.tolist(), "score": d.score, "rle": detection_rle(d)}
                        for d in detections
                    ],
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                progress.update(task, completed=index + 1)
            log.write(json.dumps({"camera_id": camera_id, "end": True}) + "\n")
            log.flush()
            progress.update(task, completed=total if total > 0 else None)

    records = [r for r in read_jsonl(log_path) if "frame_index" in r]
    write_coco(
        _frames_of(records),
        out / "detections.json",
        info={"description": "AquaPose MOG2 detections"},
    )
    for camera_id in cameras:
        mine = [r for r in records if r["camera_id"] == camera_id]
        found = sum(len(r["detections"]) for r in mine)
        console.print(f"{camera_id}: {len(mine)} frames kept, {found} detections")
        reasons = [r["rejected"] for r in mine if r["rejected"]]
        if reasons:
            console.print(
                f"[yellow]warning:[/] {camera_id}: {len(reasons)} frames rejected "
                f"({reasons[-1]}): moving camera or sudden global change; they have no "
                "detections",
                highlight=False,
            )
    console.print(f"wrote {out / 'detections.json'}")


def _resume_log(log_path: Path, settings: dict[str, Any], resumable: bool) -> list[dict[str, Any]]:
    """The records of an interrupted run to continue (empty for a fresh one).

    The log's first record holds the run's settings: a log made with other videos or
    settings is refused (the results would mix). Cameras cut short by a detector that
    cannot resume mid-clip start over.
    """
    from aquapose.segmentation.io.files import atomic_write_bytes, read_jsonl

    records = read_jsonl(log_path)
    if not records:
        return []
    before = records[0].get("run")
    if not isinstance(before, dict):
        raise ValueError(f"{log_path}: first line is not a run header written by `detect`")
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        raise ValueError(
            f"{log_path.parent}: holds detections made with other {', '.join(changed)}; "
            "use the same arguments to resume, --overwrite to start over, or a new --out folder"
        )
    ended = {r["camera_id"] for r in records if r.get("end")}
    if not resumable:
        records = [r for r in records if "run" in r or r["camera_id"] in ended]
        atomic_write_bytes(log_path, "".join(json.dumps(r) + "\n" for r in records).encode())
    return records


def _frames_of(records: list[dict[str, Any]]) -> list[AnnotatedFrame]:
    """Progress-log records -> frames with their detections (``score`` set)."""
    import numpy as np

    from aquapose.segmentation.types import AnnotatedFrame, Instance

    return [
        AnnotatedFrame(
            image_id=i,
            image_path=r["file_name"],
            width=r["width"],
            height=r["height"],
            camera_id=r["camera_id"],
            frame_index=r["frame_index"],
            video=r["video"],
            instances=tuple(
                Instance(box_xyxy=np.asarray(d["box_xyxy"]), rle=d["rle"], score=d["score"])
                for d in r["detections"]
            ),
        )
        for i, r in enumerate(records, start=1)
    ]


def _fmt(value: float, n: int | None = None) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if n is None else f"{value:.3f} ({n})"


@app.command("eval-detections")
def eval_detections(
    detections: Path = typer.Argument(..., help="detections.json written by `aquapose detect`."),
    ground_truth: list[Path] = typer.Argument(..., help="Ground-truth COCO file(s)."),
    skip_warmup: int = typer.Option(
        0, "--skip-warmup", min=0, help="Do not score frames with frame_index below N."
    ),
    iou: float = typer.Option(0.3, "--iou", help="Minimum blob-mask IoU of a match."),
    coverage: float | None = typer.Option(
        None,
        "--coverage",
        help="Match by the fraction of the fish inside the detection's "
        "mask (>= this) instead of IoU: was the fish found, shadow in the blob or not.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON."),
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

    report = evaluate_detections(
        detections,
        list(ground_truth),
        iou_threshold=iou,
        skip_warmup=skip_warmup,
        min_coverage=coverage,
    )
    rule = f"mask IoU >= {iou:g}" if coverage is None else f"fish inside detection >= {coverage:g}"
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
