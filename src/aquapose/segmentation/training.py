"""Train a ``MaskRCNNSegmentor`` on COCO crops: ``train(TrainConfig(...)) -> best.pt``.

Recipe: SGD (momentum 0.9, weight decay 5e-4), a linear LR warm-up over the first
iterations, StepLR decaying the LR at 80% of the epochs, validation every
``val_every`` epochs (and after the last) with :func:`~aquapose.segmentation.evaluation.evaluate`,
the best checkpoint kept by validation mean mask IoU. CUDA with automatic mixed
precision when a GPU is present, CPU (float32) otherwise.

``out_dir`` receives ``config.json`` (the resolved config), ``last.pt`` (everything
needed to resume: model, optimizer, schedulers, AMP scaler, epoch, RNG states),
``best.pt`` (weights + architecture + config, for ``MaskRCNNSegmentor.load``),
``metrics.jsonl`` (one line per epoch) and ``curves.png``; all written atomically.
``resume=True`` continues an interrupted run exactly: the augmentation and the
shuffling are seeded per epoch and the RNG state is restored, so the weights equal
those of an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aquapose.segmentation.dataset import CropDataset, collate_fn
from aquapose.segmentation.io.files import atomic_write_bytes, atomic_write_json
from aquapose.segmentation.model import DEFAULT_ARCH, HeadSettings, MaskRCNNSegmentor

#: Config keys that may differ between a run and its resumption.
_RESUME_FREE_KEYS = {"resume", "progress", "num_workers", "device"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``out_dir/config.json``).

    Attributes:
        train_json, val_json: COCO files (masks for every fish; images without fish
            become negative crops).
        out_dir: run folder (checkpoints, metrics, curves).
        arch: architecture name (``aquapose.segmentation.model.ARCHITECTURES``).
        weights: None (from scratch), ``"DEFAULT"`` (pretrained, from the torch cache, downloaded when missing) or
            a checkpoint path to start from.
        crop_size: side of the square training crops (the model's input size).
        epochs, batch_size, lr, momentum, weight_decay: SGD schedule.
        warmup_iters: linear warm-up iterations (capped at one epoch).
        lr_step_fraction, lr_gamma: the LR is multiplied by ``lr_gamma`` once, after
            ``round(lr_step_fraction * epochs)`` epochs.
        val_every: validate every N epochs (and after the last epoch).
        grad_clip_norm: clip the gradient norm (None: no clipping).
        num_workers: DataLoader worker processes (spawned; 0 = load in this process).
        seed: seeds initialisation, shuffling and augmentation.
        device: ``"cpu"``, ``"cuda"``...; None = CUDA when available.
        amp: mixed precision on CUDA (ignored on CPU).
        train_image_root, val_image_root: image folders (default: each JSON's folder).
        head_settings: RPN/RoI overrides (``HeadSettings`` field -> value); None = the
            crop-sized defaults.
        copy_paste_prob, copy_paste_max, copy_paste_fade_prob: copy-paste augmentation of
            the training crops (``CropDataset``/``CopyPaste``): the share of crops that get
            up to ``copy_paste_max`` fish pasted from other frames, and the share of those
            pasted as faded copies. ``copy_paste_prob=0`` (default): off.
        rejected_as: ``"avoid"`` (default): training crops slide off the detections the
            labeler rejected, and are skipped when they cannot; ``"ignore"``: those
            detections become regions without loss and no crop is skipped.
        resume: continue the run in ``out_dir`` from ``last.pt``.
        progress: show a progress bar on stderr.
    """

    train_json: Path
    val_json: Path
    out_dir: Path
    arch: str = DEFAULT_ARCH
    weights: str | None = None
    crop_size: int = 256
    epochs: int = 20
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 100
    lr_step_fraction: float = 0.8
    lr_gamma: float = 0.1
    val_every: int = 5
    grad_clip_norm: float | None = 10.0
    num_workers: int = 0
    seed: int = 0
    device: str | None = None
    amp: bool = True
    train_image_root: Path | None = None
    val_image_root: Path | None = None
    head_settings: dict[str, int] | None = None
    copy_paste_prob: float = 0.0
    copy_paste_max: int = 2
    copy_paste_fade_prob: float = 0.0
    rejected_as: str = "avoid"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("train_json", "val_json", "out_dir", "train_image_root", "val_image_root"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        for name in ("epochs", "batch_size", "val_every", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {value!r}")
        if self.warmup_iters < 0 or self.num_workers < 0:
            raise ValueError("TrainConfig.warmup_iters and num_workers must be >= 0")
        if not (self.lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0):
            raise ValueError(
                f"need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got lr={self.lr}, "
                f"momentum={self.momentum}, weight_decay={self.weight_decay}"
            )
        if not (0 < self.lr_step_fraction <= 1 and 0 < self.lr_gamma <= 1):
            raise ValueError("lr_step_fraction and lr_gamma must be in (0, 1]")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")
        if self.head_settings is not None:
            HeadSettings.from_dict(self.head_settings)  # rejects unknown keys and bad values
        if not (0 <= self.copy_paste_prob <= 1 and 0 <= self.copy_paste_fade_prob <= 1):
            raise ValueError(
                "TrainConfig.copy_paste_prob and copy_paste_fade_prob must be in [0, 1], got "
                f"{self.copy_paste_prob} and {self.copy_paste_fade_prob}"
            )
        if self.rejected_as not in ("avoid", "ignore"):
            raise ValueError(
                f"TrainConfig.rejected_as must be 'avoid' or 'ignore', got {self.rejected_as!r}"
            )
        if (
            isinstance(self.copy_paste_max, bool)
            or not isinstance(self.copy_paste_max, int)
            or self.copy_paste_max < 1
        ):
            raise ValueError(
                f"TrainConfig.copy_paste_max must be an int >= 1, got {self.copy_paste_max!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. YAML/JSON); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; valid keys: {sorted(names)}")
        return cls(**data)


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled ``(epoch, index)`` keys, seeded by ``(seed, epoch)``.

    The epoch travels with each index, so DataLoader workers (persistent, spawned)
    augment with the right epoch without being told.
    """

    def __init__(self, num_samples: int, seed: int) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        return iter([(self.epoch, i) for i in order])


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[tuple[torch.Tensor, ...], tuple[dict[str, Any], ...]]],
    device: torch.device,
    *,
    epoch: int = 0,
    warmup: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip_norm: float | None = None,
    on_step: Any = None,
) -> dict[str, float]:
    """One pass over ``batches``; returns the mean of each loss (and ``loss``, their sum).

    ``warmup`` is stepped after every iteration until it is done. Raises
    FloatingPointError when a loss is not finite (naming the epoch, iteration and loss).
    """
    model.train()
    sums: dict[str, float] = {}
    count = 0
    for step, (batch_images, batch_targets) in enumerate(batches):
        images = [img.to(device, non_blocking=True) for img in batch_images]
        targets = [
            {
                k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
                for k, v in t.items()
            }
            for t in batch_targets
        ]
        with torch.autocast(device_type=device.type, enabled=scaler is not None):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        values = {k: float(v.detach()) for k, v in loss_dict.items()}
        values["loss"] = float(loss.detach())
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{k}={values[k]}" for k in sorted(values))
            raise FloatingPointError(
                f"training stopped: non-finite loss at epoch {epoch + 1}, iteration {step + 1} "
                f"({shown}); lower the learning rate (--lr) or check the labels"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
            optimizer.step()
        if warmup is not None and warmup.last_epoch < warmup.total_iters:  # type: ignore[attr-defined]
            warmup.step()
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        if on_step is not None:
            on_step(values)
    return {k: v / max(count, 1) for k, v in sums.items()}


def _rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: dict[str, Any], path: Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _write_metrics(records: list[dict[str, Any]], out_dir: Path) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write_bytes(out_dir / "metrics.jsonl", text.encode("utf-8"))
    plot_curves(records, out_dir / "curves.png")


def plot_curves(records: list[dict[str, Any]], path: Path) -> Path:
    """PNG of the training losses, the learning rate and the validation metrics per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6), dpi=100)
    ax_loss, ax_lr, ax_val = fig.subplots(1, 3)
    epochs = [r["epoch"] for r in records]
    for key in sorted({k for r in records for k in r if k.startswith("loss")}):
        ax_loss.plot(epochs, [r.get(key, math.nan) for r in records], label=key, marker=".")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss")
    ax_loss.legend(fontsize=7)
    ax_lr.plot(epochs, [r["lr"] for r in records], marker=".")
    ax_lr.set_title("learning rate (end of epoch)")
    val = [r for r in records if "val_mean_mask_iou" in r]
    for key in ("val_mean_mask_iou", "val_segm_ap", "val_bbox_ap"):
        ax_val.plot(
            [r["epoch"] for r in val],
            [math.nan if r.get(key) is None else r[key] for r in val],
            label=key,
            marker="o",
        )
    ax_val.set_ylim(0, 1)
    ax_val.set_title("validation")
    ax_val.legend(fontsize=7)
    for ax in (ax_loss, ax_lr, ax_val):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _check_resumable(config: TrainConfig, saved: dict[str, Any]) -> None:
    now = config.to_dict()
    # a key the interrupted run's config lacks (saved by an older version) had its default
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    diff = sorted(
        k for k in now if k not in _RESUME_FREE_KEYS and saved.get(k, defaults.get(k)) != now[k]
    )
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k, defaults.get(k))!r} -> {now[k]!r}" for k in diff)
        raise ValueError(
            f"cannot resume {config.out_dir}: the config differs from the interrupted run "
            f"({shown}); use the same settings, or start a new run in another --out"
        )


def train(config: TrainConfig) -> Path:
    """Train, validate and checkpoint as ``config`` says; returns the path of ``best.pt``."""
    from aquapose.segmentation.evaluation import evaluate

    out = config.out_dir
    last_path, best_path = out / "last.pt", out / "best.pt"
    for name in ("train_json", "val_json"):
        if not getattr(config, name).is_file():
            raise FileNotFoundError(f"{name}: {getattr(config, name)} not found")
    if config.resume and not last_path.is_file():
        raise FileNotFoundError(f"nothing to resume: {last_path} not found")
    if not config.resume and last_path.exists():
        raise FileExistsError(
            f"{out} already holds a training run ({last_path.name}); resume it (resume=True, "
            "--resume) or choose another output folder"
        )
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    seg = MaskRCNNSegmentor(
        config.arch,
        weights=config.weights,
        crop_size=config.crop_size,
        device=config.device,
        settings=HeadSettings.from_dict(config.head_settings or {}),
    )
    model, device = seg.model, seg.device
    dataset = CropDataset(
        config.train_json,
        config.train_image_root,
        config.crop_size,
        augment=True,
        seed=config.seed,
        copy_paste_prob=config.copy_paste_prob,
        copy_paste_max=config.copy_paste_max,
        copy_paste_fade_prob=config.copy_paste_fade_prob,
        rejected_as=config.rejected_as,
    )
    sampler = EpochSampler(len(dataset), config.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        multiprocessing_context="spawn" if config.num_workers > 0 else None,
        pin_memory=device.type == "cuda",
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1e-3, total_iters=max(1, min(config.warmup_iters, len(loader)))
    )
    step_lr = torch.optim.lr_scheduler.StepLR(
        optimizer,
        step_size=max(1, round(config.lr_step_fraction * config.epochs)),
        gamma=config.lr_gamma,
    )
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    start_epoch, best_iou, best_epoch = 0, -1.0, 0
    records: list[dict[str, Any]] = []
    if config.resume:
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        _check_resumable(config, state["config"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        warmup.load_state_dict(state["warmup"])
        step_lr.load_state_dict(state["step_lr"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_iou, best_epoch = state["epoch"], state["best_iou"], state["best_epoch"]
        records = [r for r in state["records"] if r["epoch"] <= start_epoch]
        _set_rng_state(state["rng"])
    atomic_write_json(out / "config.json", config.to_dict(), indent=2)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, quiet=not config.progress)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not config.progress,
        transient=True,
    )
    skipped = (
        f", {dataset.num_skipped} skipped near rejected detections" if dataset.num_skipped else ""
    )
    console.print(
        f"training on {len(dataset)} crops ({dataset.num_negatives} negative{skipped}), "
        f"{len(loader)} steps per epoch, {seg.arch} on {device}",
        highlight=False,
    )
    with progress:
        for epoch in range(start_epoch, config.epochs):
            task = progress.add_task(
                f"epoch {epoch + 1}/{config.epochs}", total=len(loader), info=""
            )

            def on_step(values: dict[str, float], task: Any = task) -> None:
                progress.update(task, advance=1, info=f"loss {values['loss']:.3f}")

            sampler.set_epoch(epoch)
            started = time.perf_counter()
            losses = train_one_epoch(
                model,
                optimizer,
                loader,
                device,
                epoch=epoch,
                warmup=warmup if epoch == 0 else None,
                scaler=scaler,
                grad_clip_norm=config.grad_clip_norm,
                on_step=on_step,
            )
            lr = optimizer.param_groups[0]["lr"]
            step_lr.step()
            progress.remove_task(task)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "lr": lr,
                **losses,
                "train_time_s": round(time.perf_counter() - started, 3),
            }
            message = f"epoch {epoch + 1}/{config.epochs}  loss {losses.get('loss', math.nan):.4f}"
            if (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs:
                started = time.perf_counter()
                report = evaluate(seg, config.val_json, config.val_image_root, seed=config.seed)
                record.update({f"val_{k}": v for k, v in report.to_dict().items()})
                record["val_time_s"] = round(time.perf_counter() - started, 3)
                message += f"  val mean mask IoU {report.mean_mask_iou:.4f}"
                if report.mean_mask_iou > best_iou:
                    best_iou, best_epoch = report.mean_mask_iou, epoch + 1
                    seg.save(best_path, config=config.to_dict(), metrics=record, epoch=epoch + 1)
                    message += " (best)"
            records.append(record)
            _write_metrics(records, out)
            _save(
                {
                    **seg.checkpoint(),
                    "config": config.to_dict(),
                    "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(),
                    "warmup": warmup.state_dict(),
                    "step_lr": step_lr.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "best_iou": best_iou,
                    "best_epoch": best_epoch,
                    "records": records,
                    "rng": _rng_state(),
                },
                last_path,
            )
            console.print(message, highlight=False)
    if not best_path.is_file():  # resumed a run that had already finished
        raise FileNotFoundError(f"{best_path} missing although the run in {out} is complete")
    return best_path
