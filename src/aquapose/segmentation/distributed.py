"""Training on several processes (GPUs) with PyTorch's own ``torchrun`` and DDP.

Two ways to start the same run on N processes of one machine:

- ``torchrun --nproc-per-node N -m aquapose train ...`` (torchrun's flags for several
  machines, ``--nnodes``/``--rdzv-endpoint``, work too);
- ``aquapose train --nproc N ...``, i.e. :func:`~aquapose.segmentation.training.launch_training`, which starts
  ``python -m torch.distributed.run --standalone --nproc-per-node N`` on a worker
  module that calls ``train``.

:func:`~aquapose.segmentation.training.train` reads the process's place from the
variables torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) and joins the process group: ``nccl`` on CUDA (process ``LOCAL_RANK``
uses ``cuda:LOCAL_RANK``; choose the GPUs with ``CUDA_VISIBLE_DEVICES``), ``gloo`` on
the CPU (``--device cpu``) and where NCCL is missing (Windows, which also needs
``USE_LIBUV=0``: set here and by :func:`~aquapose.segmentation.training.launch_training`). Without those variables (or
with ``WORLD_SIZE=1``) it trains in one process, as before. A process group the caller
already started is used as is.

What each process does is written in the module docstring of
:mod:`aquapose.segmentation.training` (data shards, learning rate, validation,
checkpoints, resume, SyncBatchNorm).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    pass

SYNC_BN_NEEDS_CUDA = (
    "sync_bn needs CUDA (torch's SyncBatchNorm runs on GPUs only); drop --sync-bn to train "
    "on the CPU"
)

#: How long a process waits at a collective (e.g. while rank 0 validates) before failing.
PROCESS_GROUP_TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training run.

    Attributes:
        rank: global rank (0 = the process that writes files and validates).
        local_rank: rank on this machine (its GPU index on CUDA).
        world_size: number of processes.
        device: this process's device.
        owns_group: True when this context started the process group (and so ends it).
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def pick_device(device: str | None, local_rank: int, world_size: int) -> torch.device:
    """The device of process ``local_rank``: ``cuda:LOCAL_RANK`` on CUDA, else the CPU.

    ``device`` is ``None`` (CUDA when available), ``"cpu"`` or ``"cuda"``; with several
    processes a device index (``"cuda:1"``) is refused (the index is the local rank).
    """
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if world_size <= 1 or chosen.type != "cuda":
        return chosen
    if chosen.index is not None:
        raise ValueError(
            f"device {device!r}: with {world_size} processes each one uses cuda:LOCAL_RANK; "
            "pass --device cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(
            f"process with LOCAL_RANK {local_rank} has no GPU (this machine shows {count}); "
            "start at most one process per GPU, or train on the CPU with --device cpu"
        )
    return torch.device("cuda", local_rank)


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes (or the caller's), or run in one process."""
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
        local_rank = env_int("LOCAL_RANK", rank)
        return DistContext(
            rank, local_rank, world_size, pick_device(device, local_rank, world_size)
        )
    world_size = env_int("WORLD_SIZE", 1)
    rank, local_rank = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    chosen = pick_device(device, local_rank, world_size)
    if world_size <= 1:
        return DistContext(0, 0, 1, chosen)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if sys.platform == "win32":  # torch's Windows wheels lack libuv for the TCP store
        os.environ.setdefault("USE_LIBUV", "0")
    # NCCL on CUDA (gloo where NCCL is missing, e.g. on Windows), gloo on the CPU
    nccl = chosen.type == "cuda" and dist.is_nccl_available()
    dist.init_process_group(
        "nccl" if nccl else "gloo",
        rank=rank,
        world_size=world_size,
        timeout=PROCESS_GROUP_TIMEOUT,
    )
    return DistContext(rank, local_rank, world_size, chosen, owns_group=True)


def is_main_process() -> bool:
    """True unless torchrun started this process with a ``RANK`` other than 0."""
    return env_int("RANK", 0) == 0


def close_distributed(ctx: DistContext) -> None:
    """End the process group if ``ctx`` started it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in one process)."""
    if not ctx.distributed:
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def mean_across_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """The mean of each value over the processes (every process passes the same keys)."""
    if not ctx.distributed:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``obj`` of every process, in rank order (``[obj]`` in one process)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
