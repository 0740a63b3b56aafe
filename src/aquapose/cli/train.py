"""``aquapose train`` and ``aquapose evaluate``: fit a Mask R-CNN on crops and score it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from aquapose.cli._app import app, console
from aquapose.cli._config import config_option, print_config_option, resolve_config
from aquapose.segmentation.evaluation import EvaluateConfig

# TrainConfig lives in a torch module: its defaults are repeated in the options below so
# that `aquapose --help` does not import torch (a test checks they agree).
_TRAIN_FLAGS: dict[str, str | tuple[str, ...]] = {
    "train_json": "train_json",
    "val_json": "val_json",
    "out": "out_dir",
    "arch": "arch",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "crop_size": "crop_size",
    "weights": "weights",
    "val_every": "val_every",
    "workers": "num_workers",
    "seed": "seed",
    "device": "device",
    "resume": "resume",
    "image_root": ("train_image_root", "val_image_root"),
    "sync_bn": "sync_bn",
    "backgrounds": "backgrounds",
}

_BACKGROUNDS_HELP = (
    "Folder of each camera's background, <camera_id>.png (aquapose detect writes "
    "DETECT_DIR/backgrounds): the model also sees the background of every crop."
)


@app.command()
def train(
    ctx: typer.Context,
    train_json: Path | None = typer.Option(
        None, "--train", help="Training labels (COCO JSON). Required (here or in --config)."
    ),
    val_json: Path | None = typer.Option(
        None, "--val", help="Validation labels (COCO JSON). Required (here or in --config)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder: best.pt, last.pt, metrics, curves. Required."
    ),
    arch: str = typer.Option(
        "maskrcnn_resnet50_fpn_v2",
        "--arch",
        help="Architecture: maskrcnn_resnet50_fpn_v2 (default), maskrcnn_mobilenet_v3_fpn "
        "(light: CPU, demo) or maskrcnn_resnet18_fpn.",
    ),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Crops per step."),
    lr: float = typer.Option(0.01, "--lr", help="Peak SGD learning rate."),
    crop_size: int = typer.Option(256, "--crop-size", min=32, help="Crop side in pixels."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Start from: DEFAULT (torchvision's pretrained weights, downloaded into the torch "
        "cache when missing) or a checkpoint.",
    ),
    val_every: int = typer.Option(5, "--val-every", min=1, help="Validate every N epochs."),
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, shuffling, augmentation."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1... (default: CUDA if any)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    image_root: Path | None = typer.Option(
        None,
        "--image-root",
        help="Folder image paths are relative to (default: each JSON's folder).",
    ),
    nproc: int = typer.Option(
        1,
        "--nproc",
        min=1,
        help="Processes (one per GPU; gloo on CPU) started through torchrun. --batch-size "
        "is per process and --lr is for the total batch: scale it by N.",
    ),
    sync_bn: bool = typer.Option(
        False, "--sync-bn", help="With several GPUs: batch norm over the total batch."
    ),
    backgrounds: Path | None = typer.Option(
        None,
        "--backgrounds",
        help=_BACKGROUNDS_HELP + " Such a model needs it wherever it runs (segment passes "
        "the detector's).",
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option("aquapose.segmentation.training:TrainConfig"),
) -> None:
    """Train a Mask R-CNN fish segmenter on crops around the labelled fish.

    Writes RUN_DIR/best.pt (best validation mean mask IoU), last.pt (resumable),
    config.json, train_config.yaml, metrics.jsonl and curves.png. Prints the path
    of best.pt.

    CPU recipe (the demo's: ~700 steps, ~7 minutes from scratch on 2 cores for ~340
    crops; keep epochs ~ 5600 / crops): --arch maskrcnn_mobilenet_v3_fpn --crop-size 128
    --batch-size 8 --lr 0.04 --epochs 14.

    Several GPUs: --nproc N, or `torchrun --nproc-per-node N -m aquapose train ...`.
    """
    from aquapose.segmentation.distributed import is_main_process
    from aquapose.segmentation.training import TrainConfig, launch_training

    cfg = resolve_config(TrainConfig, ctx, config, _TRAIN_FLAGS)
    best = launch_training(cfg, nproc)
    if is_main_process():  # under torchrun, rank 0 alone reports
        console.print(f"best checkpoint: {best}", highlight=False)
        typer.echo(str(best))


@app.command()
def evaluate(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", help="Checkpoint (RUN_DIR/best.pt)."),
    data: Path = typer.Option(..., "--data", help="Ground truth (COCO JSON) to evaluate on."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Image folder (default: JSON's folder)."
    ),
    score_threshold: float = typer.Option(
        EvaluateConfig.score_threshold,
        "--score-threshold",
        help="Predictions at or above it count for the mean mask IoU.",
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the report as JSON here."
    ),
    backgrounds: Path | None = typer.Option(
        None, "--backgrounds", help=_BACKGROUNDS_HELP + " Needed by such a model."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda... (default: CUDA if any)."
    ),
    config: Path | None = config_option(),
    print_config: bool = print_config_option(EvaluateConfig),
) -> None:
    """Score a checkpoint: per-image mean mask IoU (Hungarian matching) and COCO segm/bbox AP.

    The images are crops centred on each labelled fish plus a window of every image
    without fish; a prediction on an empty crop scores that crop 0.
    """
    from rich.console import Console
    from rich.table import Table

    from aquapose.segmentation.evaluation import evaluate as run_evaluation
    from aquapose.segmentation.io.files import atomic_write_json
    from aquapose.segmentation.model import MaskRCNNSegmentor

    cfg = resolve_config(EvaluateConfig, ctx, config, {"score_threshold": "score_threshold"})
    segmentor = MaskRCNNSegmentor.load(model, device=device)
    report = run_evaluation(segmentor, data, image_root, backgrounds=backgrounds, **asdict(cfg))
    table = Table(title=f"{model} on {data}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.to_dict().items():
        shown = (
            "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
        )
        table.add_row(key, shown)
    Console().print(table)
    if json_out is not None:
        atomic_write_json(
            json_out, {"model": str(model), "data": str(data), **report.to_dict(True)}, indent=2
        )
