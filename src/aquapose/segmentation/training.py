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

Several processes (GPUs), started by ``torchrun`` or ``aquapose train --nproc N``
(see :mod:`aquapose.segmentation.distributed`): the model is wrapped in
``DistributedDataParallel`` (gradients averaged over the processes at every step).

- **Data:** every epoch's shuffled order (the one-process order) is dealt into
  ``WORLD_SIZE`` shards of equal length (:class:`DistributedEpochSampler`; the first
  few crops of the order repeat when the crops do not divide evenly), one per process,
  so an epoch takes ``ceil(ceil(crops / WORLD_SIZE) / batch_size)`` steps.
- **Learning rate:** ``batch_size`` is per process, so a step sees
  ``batch_size x WORLD_SIZE`` crops, and ``lr`` is the learning rate of that total
  batch, used as given (not rescaled). Linear scaling rule (Goyal et al. 2017, as in
  torchvision's detection references): keep ``batch_size`` per process and multiply
  ``lr`` by the number of processes, e.g. ``--lr 0.01`` on 1 GPU with 4 crops becomes
  ``--lr 0.04`` on 4 GPUs with 4 crops each; the warm-up (``warmup_iters``) keeps the
  larger rate stable at the start.
- **Rank 0 alone** writes ``config.json``, the checkpoints, ``metrics.jsonl`` and
  ``curves.png``, prints, and validates on the whole validation set; the other
  processes wait at a barrier meanwhile (``PROCESS_GROUP_TIMEOUT``, 1 hour). The losses
  logged are the means over the processes. Checkpoints hold the plain model's
  ``state_dict`` (no ``module.`` prefix): ``MaskRCNNSegmentor.load`` reads them. Their
  batch-norm running statistics are rank 0's (DDP sends rank 0's to all processes at
  every forward pass).
- **Resume:** every process loads ``last.pt`` (on the CPU, then into its own device),
  so ``out_dir`` must be on a file system all processes see. ``last.pt`` holds every
  process's RNG state: resumed with the same number of processes, a run ends with the
  weights of an uninterrupted one; with another number it continues, re-sharded, but
  not bit for bit.
- **SyncBatchNorm** (``sync_bn=True``, CUDA only): batch-norm statistics over the
  total batch instead of each process's few crops.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aquapose.segmentation.dataset import CropDataset, collate_fn
from aquapose.segmentation.distributed import (
    SYNC_BN_NEEDS_CUDA,
    DistContext,
    barrier,
    close_distributed,
    env_int,
    gather_objects,
    init_distributed,
    mean_across_ranks,
    pick_device,
)
from aquapose.segmentation.io.config import write_config
from aquapose.segmentation.io.files import atomic_write_bytes, atomic_write_json
from aquapose.segmentation.model import DEFAULT_ARCH, HeadSettings, MaskRCNNSegmentor

#: Config keys that may differ between a run and its resumption (a run folder may move,
#: e.g. to a cluster node's scratch disk).
_RESUME_FREE_KEYS = {"resume", "progress", "num_workers", "device", "out_dir"}


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
        epochs, batch_size, lr, momentum, weight_decay: SGD schedule; ``batch_size``
            is per process and ``lr`` is for the total batch (``batch_size`` x number of
            processes, see the module docstring).
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
        sync_bn: with several CUDA processes, batch norm over the total batch
            (``torch.nn.SyncBatchNorm``); ignored in one process.
        copy_paste_prob, copy_paste_max, copy_paste_fade_prob: copy-paste augmentation of
            the training crops (``CropDataset``/``CopyPaste``): the share of crops that get
            up to ``copy_paste_max`` fish pasted from other frames, and the share of those
            pasted as faded copies. ``copy_paste_prob=0`` (default): off.
        rejected_as: ``"avoid"`` (default): training crops slide off the detections the
            labeler rejected, and are skipped when they cannot; ``"ignore"``: those
            detections become regions without loss and no crop is skipped; ``"box"``: they
            become box-only fish (box supervision, no mask loss) with crops of their own.
        backgrounds: folder of each camera's background (``<camera_id>.png``, written by
            ``aquapose detect`` into ``backgrounds/``): the model then takes the background
            as input too (6 channels: RGB and RGB minus the background) and needs it
            wherever it runs (``segment`` passes the detector's). None: RGB only.
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
    sync_bn: bool = False
    copy_paste_prob: float = 0.0
    copy_paste_max: int = 2
    copy_paste_fade_prob: float = 0.0
    rejected_as: str = "avoid"
    backgrounds: Path | None = None
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in (
            "train_json",
            "val_json",
            "out_dir",
            "train_image_root",
            "val_image_root",
            "backgrounds",
        ):
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
        if self.rejected_as not in ("avoid", "ignore", "box"):
            raise ValueError(
                f"TrainConfig.rejected_as must be 'avoid', 'ignore' or 'box', got {self.rejected_as!r}"
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
        return iter([(self.epoch, i) for i in self._order()])

    def _order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()


class DistributedEpochSampler(EpochSampler):
    """The ``(epoch, index)`` keys of :class:`EpochSampler`, one shard per process.

    The epoch's order (the same in every process, seeded by ``(seed, epoch)``) is padded
    by repeating its start to a multiple of ``num_replicas`` and dealt round-robin:
    process ``rank`` gets positions ``rank, rank + num_replicas, ...``. Every process gets
    ``ceil(num_samples / num_replicas)`` keys (DDP needs the same number of steps
    everywhere); together they cover the epoch. Call ``set_epoch`` before each epoch.
    """

    def __init__(self, num_samples: int, seed: int, *, rank: int, num_replicas: int) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, {num_replicas=}")
        super().__init__(num_samples, seed)
        self.rank = rank
        self.num_replicas = num_replicas

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        total = len(self) * self.num_replicas
        padded = (order * math.ceil(total / len(order)))[:total]
        return iter([(self.epoch, i) for i in padded[self.rank : total : self.num_replicas]])


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
    # a key added since the run started holds its default value there
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    old = {k: saved.get(k, defaults.get(k)) for k in now}
    diff = sorted(k for k in now if k not in _RESUME_FREE_KEYS and old[k] != now[k])
    if diff:
        shown = ", ".join(f"{k}: {old[k]!r} -> {now[k]!r}" for k in diff)
        raise ValueError(
            f"cannot resume {config.out_dir}: the config differs from the interrupted run "
            f"({shown}); use the same settings, or start a new run in another --out"
        )


def _rank_seed(*values: int) -> int:
    return int(np.random.SeedSequence([*values]).generate_state(1)[0])


def check_can_start(config: TrainConfig, *, check_resume_config: bool = False) -> None:
    """Raise the error ``train(config)`` would raise before training: a missing file, a
    run already in ``out_dir`` without ``resume`` (or none with it), and, if asked, a
    config that differs from the one of the run to resume."""
    last_path = config.out_dir / "last.pt"
    for name in ("train_json", "val_json"):
        if not getattr(config, name).is_file():
            raise FileNotFoundError(f"{name}: {getattr(config, name)} not found")
    if config.resume and not last_path.is_file():
        raise FileNotFoundError(f"nothing to resume: {last_path} not found")
    if not config.resume and last_path.exists():
        raise FileExistsError(
            f"{config.out_dir} already holds a training run ({last_path.name}); resume it "
            "(resume=True, --resume) or choose another output folder"
        )
    if config.resume and check_resume_config:
        saved = torch.load(last_path, map_location="cpu", weights_only=True, mmap=True)
        _check_resumable(config, saved["config"])


def train(config: TrainConfig) -> Path:
    """Train, validate and checkpoint as ``config`` says; returns the path of ``best.pt``.

    Under ``torchrun`` (or in a process group the caller started) every process calls
    it; see the module docstring for who does what.
    """
    check_can_start(config)
    ctx = init_distributed(config.device)
    try:
        if config.sync_bn and ctx.distributed and ctx.device.type != "cuda":
            raise ValueError(SYNC_BN_NEEDS_CUDA)
        return _train(config, ctx)
    finally:
        close_distributed(ctx)


@dataclass
class _Run:
    """The objects one training run steps through (built by :func:`_build_run`)."""

    seg: MaskRCNNSegmentor
    dataset: CropDataset
    sampler: EpochSampler
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.SGD
    warmup: torch.optim.lr_scheduler.LinearLR
    step_lr: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler | None


def _build_run(config: TrainConfig, ctx: DistContext) -> _Run:
    """Model (seeded alike in every process), data loader, optimizer, schedulers, scaler."""
    torch.manual_seed(config.seed)  # the same initial weights in every process
    seg = MaskRCNNSegmentor(
        config.arch,
        weights=config.weights,
        crop_size=config.crop_size,
        device=ctx.device,
        settings=HeadSettings.from_dict(config.head_settings or {}),
        background_input=config.backgrounds is not None,
    )
    if ctx.distributed:
        # the RPN/RoI samplers draw from the global RNG: a stream per process
        torch.manual_seed(_rank_seed(config.seed, ctx.rank))
        if config.sync_bn:
            seg.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(seg.model)
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
        backgrounds=config.backgrounds,
    )
    sampler: EpochSampler = (
        DistributedEpochSampler(
            len(dataset), config.seed, rank=ctx.rank, num_replicas=ctx.world_size
        )
        if ctx.distributed
        else EpochSampler(len(dataset), config.seed)
    )
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
    return _Run(seg, dataset, sampler, loader, optimizer, warmup, step_lr, scaler)


def _resume(
    config: TrainConfig, ctx: DistContext, run: _Run
) -> tuple[int, float, int, list[dict[str, Any]], str]:
    """Load ``last.pt`` into ``run``; returns start epoch, best IoU/epoch, records, note."""
    # every process reads last.pt; CPU first (RNG states must be CPU tensors), then
    # load_state_dict copies the weights and optimizer state onto this process's device
    state = torch.load(config.out_dir / "last.pt", map_location="cpu", weights_only=True)
    _check_resumable(config, state["config"])
    run.seg.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.warmup.load_state_dict(state["warmup"])
    run.step_lr.load_state_dict(state["step_lr"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    start_epoch, best_iou, best_epoch = state["epoch"], state["best_iou"], state["best_epoch"]
    records = [r for r in state["records"] if r["epoch"] <= start_epoch]
    rng_states = state.get("rng_all", [state["rng"]])
    note = ""
    if len(rng_states) == ctx.world_size:
        _set_rng_state(rng_states[ctx.rank])
    else:
        torch.manual_seed(_rank_seed(config.seed, ctx.rank, start_epoch))
        note = (
            f"; resuming a {len(rng_states)}-process run on {ctx.world_size}: it continues "
            "but will not equal an uninterrupted run bit for bit"
        )
    return start_epoch, best_iou, best_epoch, records, note


def _start_console(config: TrainConfig, ctx: DistContext, run: _Run, note: str) -> tuple[Any, Any]:
    """Rank 0's console and progress bar (quiet elsewhere); prints the opening line."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    show = config.progress and ctx.is_main
    console = Console(stderr=True, quiet=not show)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not show,
        transient=True,
    )
    dataset, device = run.dataset, run.seg.device
    skipped = (
        f", {dataset.num_skipped} skipped near rejected detections" if dataset.num_skipped else ""
    )
    where = f"{run.seg.arch} on {device}"
    if ctx.distributed:
        where = (
            f"{run.seg.arch} on {ctx.world_size} processes ({device.type}, "
            f"{config.batch_size * ctx.world_size} crops per step){note}"
        )
    console.print(
        f"training on {len(dataset)} crops ({dataset.num_negatives} negative{skipped}), "
        f"{len(run.loader)} steps per epoch, {where}",
        highlight=False,
    )
    return console, progress


def _save_last(
    config: TrainConfig,
    ctx: DistContext,
    run: _Run,
    *,
    epoch: int,
    best: tuple[float, int],
    records: list[dict[str, Any]],
) -> None:
    """Gather every process's RNG state; rank 0 writes ``last.pt`` (all to resume)."""
    best_iou, best_epoch = best
    # every process's RNG state (after validation), for an exact resume
    rng_all = gather_objects(_rng_state(), ctx)
    if ctx.is_main:
        _save(
            {
                **run.seg.checkpoint(),
                "config": config.to_dict(),
                "epoch": epoch + 1,
                "optimizer": run.optimizer.state_dict(),
                "warmup": run.warmup.state_dict(),
                "step_lr": run.step_lr.state_dict(),
                "scaler": run.scaler.state_dict() if run.scaler is not None else {},
                "best_iou": best_iou,
                "best_epoch": best_epoch,
                "records": records,
                "rng": rng_all[0],
                "rng_all": rng_all,
                "world_size": ctx.world_size,
            },
            config.out_dir / "last.pt",
        )


def _train(config: TrainConfig, ctx: DistContext) -> Path:
    """Every process's training run (``train`` without the process-group handling)."""
    from aquapose.segmentation.evaluation import evaluate

    out = config.out_dir
    best_path = out / "best.pt"
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    run = _build_run(config, ctx)
    model, device = run.seg.model, run.seg.device
    start_epoch, best_iou, best_epoch = 0, -1.0, 0
    records: list[dict[str, Any]] = []
    note = ""
    if config.resume:
        start_epoch, best_iou, best_epoch, records, note = _resume(config, ctx, run)
    if ctx.is_main:
        atomic_write_json(out / "config.json", config.to_dict(), indent=2)
        write_config(config, out / "train_config.yaml")
    train_model: torch.nn.Module = model
    if ctx.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    console, progress = _start_console(config, ctx, run, note)
    with progress:
        for epoch in range(start_epoch, config.epochs):
            task = progress.add_task(
                f"epoch {epoch + 1}/{config.epochs}", total=len(run.loader), info=""
            )

            def on_step(values: dict[str, float], task: Any = task) -> None:
                progress.update(task, advance=1, info=f"loss {values['loss']:.3f}")

            run.sampler.set_epoch(epoch)
            started = time.perf_counter()
            losses = train_one_epoch(
                train_model,
                run.optimizer,
                run.loader,
                device,
                epoch=epoch,
                warmup=run.warmup if epoch == 0 else None,
                scaler=run.scaler,
                grad_clip_norm=config.grad_clip_norm,
                on_step=on_step,
            )
            losses = mean_across_ranks(losses, ctx)
            lr = run.optimizer.param_groups[0]["lr"]
            run.step_lr.step()
            progress.remove_task(task)
            if ctx.is_main:
                best_iou, best_epoch = _validate_and_log(
                    config,
                    run.seg,
                    evaluate,
                    console,
                    epoch=epoch,
                    lr=lr,
                    losses=losses,
                    train_time_s=time.perf_counter() - started,
                    best=(best_iou, best_epoch),
                    records=records,
                    world_size=ctx.world_size,
                )
            _save_last(config, ctx, run, epoch=epoch, best=(best_iou, best_epoch), records=records)
            barrier(ctx)  # the others wait while rank 0 validates and writes
    if ctx.is_main and not best_path.is_file():  # resumed a run that had already finished
        raise FileNotFoundError(f"{best_path} missing although the run in {out} is complete")
    return best_path


def _validate_and_log(
    config: TrainConfig,
    seg: MaskRCNNSegmentor,
    evaluate: Any,
    console: Any,
    *,
    epoch: int,
    lr: float,
    losses: dict[str, float],
    train_time_s: float,
    best: tuple[float, int],
    records: list[dict[str, Any]],
    world_size: int,
) -> tuple[float, int]:
    """Rank 0's end of an epoch: validate, keep ``best.pt``, append to and write the metrics."""
    best_iou, best_epoch = best
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": lr,
        **losses,
        "train_time_s": round(train_time_s, 3),
    }
    message = f"epoch {epoch + 1}/{config.epochs}  loss {losses.get('loss', math.nan):.4f}"
    if (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs:
        started = time.perf_counter()
        report = evaluate(
            seg,
            config.val_json,
            config.val_image_root,
            seed=config.seed,
            backgrounds=config.backgrounds,
        )
        record.update({f"val_{k}": v for k, v in report.to_dict().items()})
        record["val_time_s"] = round(time.perf_counter() - started, 3)
        message += f"  val mean mask IoU {report.mean_mask_iou:.4f}"
        if report.mean_mask_iou > best_iou:
            best_iou, best_epoch = report.mean_mask_iou, epoch + 1
            seg.save(
                config.out_dir / "best.pt",
                config=config.to_dict(),
                metrics=record,
                epoch=epoch + 1,
                world_size=world_size,
            )
            message += " (best)"
    records.append(record)
    _write_metrics(records, config.out_dir)
    console.print(message, highlight=False)
    return best_iou, best_epoch


def launch_training(config: TrainConfig, nproc: int) -> Path:
    """Train ``config`` on ``nproc`` processes of this machine; returns ``best.pt``'s path.

    Runs ``python -m torch.distributed.run --standalone --nproc-per-node NPROC -m
    aquapose.segmentation._train_worker CONFIG.json`` (no shell) and waits for it;
    ``nproc == 1`` trains in this process. Ctrl-C (or any error while waiting) stops
    torchrun, which stops its workers.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1, got {nproc!r}")
    if nproc == 1:
        return train(config)
    if "TORCHELASTIC_RUN_ID" in os.environ or env_int("WORLD_SIZE", 1) > 1:
        raise RuntimeError(
            "already running under torchrun: drop --nproc (torchrun's --nproc-per-node "
            "sets the number of processes)"
        )
    # the errors every process would raise, raised once here
    check_can_start(config, check_resume_config=True)
    device = pick_device(config.device, nproc - 1, nproc)  # one GPU per process
    if config.sync_bn and device.type != "cuda":
        raise ValueError(SYNC_BN_NEEDS_CUDA)
    with tempfile.TemporaryDirectory(prefix="aquapose-train-") as tmp:
        config_path = atomic_write_json(Path(tmp) / "train_config.json", config.to_dict())
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "aquapose.segmentation._train_worker",
            str(config_path),
        ]
        env = dict(os.environ)
        if sys.platform == "win32":  # torch's Windows wheels lack libuv for the TCP store
            env.setdefault("USE_LIBUV", "0")
        process = subprocess.Popen(command, env=env)  # noqa: S603 (fixed argv, no shell)
        try:
            while True:  # poll, so Ctrl-C reaches us on every platform
                try:
                    returncode = process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if returncode != 0:
        raise RuntimeError(
            f"training on {nproc} processes failed (torchrun exit status {returncode}); "
            "the failing process's traceback is printed above"
        )
    return config.out_dir / "best.pt"
