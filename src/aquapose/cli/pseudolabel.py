"""``aquapose pseudolabel``: detections -> mask pseudo-labels -> COCO train/val sets.

The outputs are described in :mod:`aquapose.segmentation.pseudolabel`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aquapose.cli._app import app, console, progress_tasks
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.segmentation.labels import REJECT_REASONS, FilterConfig
from aquapose.segmentation.pseudolabel import PseudolabelConfig

_DEFAULT = PseudolabelConfig()
_FILTER = FilterConfig()


@app.command()
def pseudolabel(
    ctx: typer.Context,
    detections: Path = typer.Argument(..., help="detections.json written by `aquapose detect`."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    backend: str = typer.Option(_DEFAULT.backend, help="classical (no weights), sam or sam2."),
    checkpoint: str | None = typer.Option(
        None,
        help="SAM / SAM 2 checkpoint file, or a released name (vit_b, sam2.1_hiera_tiny) "
        "fetched into torch hub's cache.",
    ),
    model_type: str | None = typer.Option(
        None, help="SAM variant: vit_b, vit_l or vit_h (default: the named checkpoint's, vit_b)."
    ),
    model_cfg: str | None = typer.Option(
        None,
        help="SAM 2 config, e.g. configs/sam2.1/sam2.1_hiera_t.yaml (guessed from a "
        "released checkpoint's file name).",
    ),
    device: str = typer.Option(_DEFAULT.device, help="Torch device of the SAM backends."),
    mask_choice: str = typer.Option(
        _DEFAULT.mask_choice,
        help="SAM: keep the candidate with the best predicted IoU (score) or the largest (area).",
    ),
    background: bool = typer.Option(
        _DEFAULT.background,
        "--background/--no-background",
        help="classical: compare with each camera's median background (low-contrast filter).",
    ),
    min_score: float = typer.Option(_FILTER.min_score, help="Filter: minimum detection score."),
    min_area: int = typer.Option(
        _FILTER.min_area, help="Filter: minimum mask area (pixels); see --min-area-ratio."
    ),
    min_area_ratio: float = typer.Option(
        _FILTER.min_area_ratio,
        help="Filter: small fish lower the minimum area to this x the camera's median mask area (0 = off).",
    ),
    min_fill: float = typer.Option(_FILTER.min_fill, help="Filter: minimum mask area / box area."),
    max_fill: float = typer.Option(_FILTER.max_fill, help="Filter: maximum mask area / box area."),
    min_contrast: float = typer.Option(
        _FILTER.min_contrast,
        help="Filter (with --background): minimum mean change from the background.",
    ),
    negative_fraction: float = typer.Option(
        _DEFAULT.negative_fraction, help="Share of negative images in train/val."
    ),
    crop_size: int = typer.Option(
        _DEFAULT.crop_size, help="Side of the negative background crops (pixels)."
    ),
    val_fraction: float = typer.Option(
        _DEFAULT.val_fraction, help="Share of each camera's frames in val."
    ),
    split_block: int = typer.Option(
        _DEFAULT.split_block, help="Keep runs of this many frames on one side."
    ),
    seed: int = typer.Option(_DEFAULT.seed, help="Seeds negatives, split and contact sheet."),
    sheet_tiles: int = typer.Option(
        _DEFAULT.sheet_tiles, min=1, help="Tiles in contact_sheet.png."
    ),
    overwrite: bool = typer.Option(False, help="Start over instead of resuming."),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(PseudolabelConfig),
) -> None:
    """Label every detection with a mask, filter them and build COCO train/val sets.

    Writes OUT/pseudolabels.json (every mask, accepted or not, and why), train.json
    and val.json (accepted masks + negatives), contact_sheet.png and
    pseudolabel_config.yaml. Re-running resumes from OUT/pseudolabels.jsonl: frames
    already labelled are skipped, and the filter, negatives and split are re-applied
    to all of them (changing their settings is cheap).
    """
    from aquapose.segmentation.pseudolabel import pseudolabel_detections

    names = ["backend", "checkpoint", "model_type", "model_cfg", "device", "mask_choice"]
    names += ["background", "negative_fraction", "crop_size", "val_fraction", "split_block"]
    names += ["seed", "sheet_tiles"]
    flags = {name: name for name in names}
    for name in ("min_score", "min_area", "min_area_ratio", "min_fill", "max_fill", "min_contrast"):
        flags[name] = f"filter.{name}"
    cfg = resolve_config(PseudolabelConfig, ctx, config, flags)
    with progress_tasks() as progress:
        run = pseudolabel_detections(detections, out, cfg, overwrite=overwrite, progress=progress)
    if run.resumed_frames:
        console.print(
            f"resumed: {run.resumed_frames} of {len(run.labelled)} frames were already labelled"
        )
    if run.missing_scores:
        console.print(f"[yellow]{run.missing_scores} detections had no score: treated as 1.0[/]")
    reasons = run.reasons
    console.print(
        f"{sum(reasons.values())} masks in {len(run.labelled)} frames: {reasons['accepted']} accepted"
    )
    for reason in REJECT_REASONS:
        console.print(f"  rejected {reason:10} {reasons.get(reason, 0)}")
    for name, part in (("train", run.train), ("val", run.val)):
        negatives = sum(1 for f in part if f.extra.get("negative"))
        fish = sum(len(f.instances) for f in part)
        console.print(f"{name}: {len(part)} images ({negatives} negative), {fish} fish")
    typer.echo(str(run.pseudolabels_json))
