"""``aquapose validate``: check a COCO file and summarise it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from aquapose.cli._app import app


@app.command()
def validate(
    coco_json: Path = typer.Argument(
        ..., help="COCO JSON file to check (ground truth, labels or results)."
    ),
) -> None:
    """Check a COCO file against AquaPose's format and print images/fish per camera.

    Exits non-zero with one line naming the file, the entry id and the field at
    the first problem (missing keys, bad RLE, boxes outside the image, ...).
    """
    from rich.console import Console

    from aquapose.segmentation.io.coco import read_coco

    frames = read_coco(coco_json)
    images = Counter(f.camera_id for f in frames)
    fish: Counter[str] = Counter()
    for frame in frames:
        fish[frame.camera_id] += len(frame.instances)
    table = Table(title=f"{coco_json}: valid COCO")
    for column in ("camera", "images", "fish", "images without fish"):
        table.add_column(column, justify="right" if column != "camera" else "left")
    for camera in sorted(images):
        empty = sum(1 for f in frames if f.camera_id == camera and not f.instances)
        table.add_row(camera, str(images[camera]), str(fish[camera]), str(empty))
    Console().print(table)
