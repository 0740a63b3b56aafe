"""Training on several processes: sharded sampler, device choice, DDP on 2 gloo processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _model_data import make_tiny_coco
from _timeouts import deadline

import aquapose.segmentation.training as training
from aquapose.segmentation.distributed import pick_device
from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
from aquapose.segmentation.training import (
    DistributedEpochSampler,
    EpochSampler,
    TrainConfig,
    launch_training,
    train,
)

TIMEOUT_S = 150


def test_distributed_sampler_shards_each_epoch_evenly():
    one = EpochSampler(7, seed=3)
    shards = [DistributedEpochSampler(7, 3, rank=r, num_replicas=2) for r in range(2)]
    for epoch in (0, 1):
        one.set_epoch(epoch)
        for shard in shards:
            shard.set_epoch(epoch)
        keys = [list(s) for s in shards]
        assert [len(k) for k in keys] == [len(s) for s in shards] == [4, 4]
        assert {e for k in keys for e, _ in k} == {epoch}
        # dealt round-robin from the one-process order, its first key repeated as padding
        order = [i for _, i in one]
        assert [i for _, i in keys[0]] == order[0::2]
        assert [i for _, i in keys[1]] == [*order[1::2], order[0]]
    # fewer samples than processes: every process still gets one
    tiny = [list(DistributedEpochSampler(1, 0, rank=r, num_replicas=3)) for r in range(3)]
    assert tiny == [[(0, 0)]] * 3
    # one process: the one-process order
    assert list(DistributedEpochSampler(5, 2, rank=0, num_replicas=1)) == list(EpochSampler(5, 2))
    with pytest.raises(ValueError, match="0 <= rank < num_replicas"):
        DistributedEpochSampler(5, 0, rank=2, num_replicas=2)


def test_pick_device_gives_each_process_its_gpu():
    assert pick_device("cpu", 1, 2) == torch.device("cpu")
    assert pick_device("cuda:1", 0, 1) == torch.device("cuda:1")  # one process: as asked
    with pytest.raises(ValueError, match="each one uses cuda:LOCAL_RANK"):
        pick_device("cuda:1", 0, 2)
    if torch.cuda.device_count() < 8:
        with pytest.raises(ValueError, match="LOCAL_RANK 7 has no GPU"):
            pick_device("cuda", 7, 8)


def test_launch_training_checks_nproc(tmp_path, monkeypatch):
    cfg = TrainConfig(tmp_path / "a.json", tmp_path / "b.json", tmp_path / "out")
    with pytest.raises(ValueError, match="nproc must be an int >= 1"):
        launch_training(cfg, 0)
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text("{}")
    # the errors every process would raise are raised once, before starting any
    with pytest.raises(ValueError, match="sync_bn needs CUDA"):
        launch_training(replace(cfg, device="cpu", sync_bn=True), 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "last.pt").write_bytes(b"")
    with pytest.raises(FileExistsError, match="already holds a training run"):
        launch_training(cfg, 2)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    with pytest.raises(RuntimeError, match="already running under torchrun"):
        launch_training(cfg, 2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data(folder: Path) -> tuple[Path, Path]:
    train_json = make_tiny_coco(folder / "train", num_frames=3, num_negatives=1, name="train.json")
    val_json = make_tiny_coco(folder / "val", num_frames=1, num_negatives=1, seed=1, name="v.json")
    return train_json, val_json


def _config(data: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    # 7 crops, 2 processes x 2 crops per step: 2 steps per epoch in each process
    defaults = dict(
        arch=LIGHT_ARCH,
        crop_size=64,
        epochs=2,
        batch_size=2,
        lr=0.005,
        warmup_iters=2,
        val_every=2,
        device="cpu",
        progress=False,
    )
    return TrainConfig(data[0], data[1], out, **{**defaults, **kw})


class _Interrupted(Exception):
    pass


def _flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _ddp_worker(rank: int, world_size: int, port: int, folder: str) -> None:
    """One of 2 processes: a full run, an interrupted run, and its resumption."""
    torch.set_num_threads(1)
    if sys.platform == "win32":  # torch's Windows wheels lack libuv for the TCP store
        os.environ.setdefault("USE_LIBUV", "0")
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=_timeout())
    tmp = Path(folder)
    data = (tmp / "train" / "train.json", tmp / "val" / "v.json")
    real = training.train_one_epoch
    seen: list[tuple[torch.nn.Module, int, dict[str, float]]] = []

    def spy(model, *args, epoch, **kw):
        losses = real(model, *args, epoch=epoch, **kw)
        seen.append((model, epoch, losses))
        return losses

    training.train_one_epoch = spy
    try:
        with pytest.raises(ValueError, match="sync_bn needs CUDA"):
            train(_config(data, tmp / "syncbn", sync_bn=True))

        # an uninterrupted 2-epoch run
        best = train(_config(data, tmp / "full"))
        model, _, losses = seen[-1]
        assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
        params = _flat_params(model.module)
        everyone = [torch.empty_like(params) for _ in range(world_size)]
        dist.all_gather(everyone, params)
        assert torch.equal(everyone[0], everyone[1])  # DDP kept the processes in step...
        all_losses: list = [None] * world_size
        dist.all_gather_object(all_losses, losses["loss"])
        assert all_losses[0] != all_losses[1]  # ...although each trained on its own shard
        last = torch.load(tmp / "full" / "last.pt", weights_only=True)
        assert last["epoch"] == 2 and last["world_size"] == 2 and len(last["rng_all"]) == 2
        assert not any(k.startswith("module.") for k in last["model"])
        # rank 0's weights were saved; the others' batch-norm statistics are their own
        # until DDP sends them rank 0's at the next forward pass
        state = model.module.state_dict()
        names = {name for name, _ in model.module.named_parameters()}
        checked = state if rank == 0 else {k: v for k, v in state.items() if k in names}
        for key, value in checked.items():
            assert torch.equal(value, last["model"][key]), key
        loaded = MaskRCNNSegmentor.load(best, device="cpu")  # a plain model's checkpoint
        assert torch.equal(_flat_params(loaded.model), params)
        lines = (tmp / "full" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # rank 0 alone wrote

        # the same run, interrupted in its second epoch in both processes...
        def interrupt_second_epoch(*args, epoch, **kw):
            if epoch == 1:
                raise _Interrupted
            return spy(*args, epoch=epoch, **kw)

        training.train_one_epoch = interrupt_second_epoch
        with pytest.raises(_Interrupted):
            train(_config(data, tmp / "cut"))
        dist.barrier()
        assert torch.load(tmp / "cut" / "last.pt", weights_only=True)["epoch"] == 1
        if rank == 0:  # kept for a resumption in one process
            shutil.copytree(tmp / "cut", tmp / "cut_copy")
        # ...and resumed in both: epoch 2 only, ending with the uninterrupted run's weights
        training.train_one_epoch = spy
        del seen[:]
        train(_config(data, tmp / "cut", resume=True))
        assert [epoch for _, epoch, _ in seen] == [1]
        resumed = torch.load(tmp / "cut" / "last.pt", weights_only=True)
        assert resumed["epoch"] == 2
        for key, value in last["model"].items():
            assert torch.equal(value, resumed["model"][key]), key
        assert torch.equal(_flat_params(seen[-1][0].module), params)
        lines = (tmp / "cut" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    finally:
        training.train_one_epoch = real
        dist.destroy_process_group()


def _timeout():
    from datetime import timedelta

    return timedelta(seconds=TIMEOUT_S)


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_trains_in_step_and_resumes_exactly(tmp_path):
    _data(tmp_path)
    context = mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(tmp_path)),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    stop_at = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1):
            if time.monotonic() > stop_at:
                pytest.fail(f"the 2 DDP processes did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    # the 2-process run cut after its first epoch also resumes in one process (not bit
    # for bit: the data is sharded differently)
    data = (tmp_path / "train" / "train.json", tmp_path / "val" / "v.json")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker: 2 threads on 2 busy cores crawl
    try:
        train(_config(data, tmp_path / "cut_copy", resume=True))
    finally:
        torch.set_num_threads(threads)
    last = torch.load(tmp_path / "cut_copy" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["world_size"] == 1
    lines = (tmp_path / "cut_copy" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


@pytest.mark.slow
def test_launch_training_runs_torchrun_with_two_processes(tmp_path):
    data = _data(tmp_path)
    cfg = _config(data, tmp_path / "run", epochs=1, val_every=1)
    with deadline(TIMEOUT_S):
        best = launch_training(cfg, 2)
    assert best == tmp_path / "run" / "best.pt"
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["world_size"] == 2 and last["epoch"] == 1
    assert MaskRCNNSegmentor.load(best, device="cpu").crop_size == 64
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (NCCL, one per process)")
def test_launch_training_on_two_gpus_with_nccl_and_sync_bn(tmp_path):
    data = _data(tmp_path)
    cfg = _config(data, tmp_path / "run", epochs=1, val_every=1, device=None, sync_bn=True)
    with deadline(TIMEOUT_S):
        best = launch_training(cfg, 2)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["world_size"] == 2 and last["epoch"] == 1
    assert not any(k.startswith("module.") for k in last["model"])
    assert MaskRCNNSegmentor.load(best, device="cuda").device.type == "cuda"
