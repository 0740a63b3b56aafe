"""Training: outputs, negatives, non-finite loss, exact resume, config checks."""

from __future__ import annotations

import json

import pytest
import torch
from _model_data import make_tiny_coco

import aquapose.segmentation.training as training
from aquapose.segmentation.dataset import CropDataset, collate_fn
from aquapose.segmentation.model import LIGHT_ARCH, HeadSettings, MaskRCNNSegmentor, build_model
from aquapose.segmentation.training import EpochSampler, TrainConfig, train, train_one_epoch


@pytest.fixture
def data(tmp_path):
    train_json = make_tiny_coco(
        tmp_path / "train", num_frames=3, num_negatives=1, name="train.json"
    )
    val_json = make_tiny_coco(
        tmp_path / "val", num_frames=1, num_negatives=1, seed=1, name="val.json"
    )
    return train_json, val_json


def config(data, out, **kw) -> TrainConfig:
    defaults = dict(
        arch=LIGHT_ARCH,
        crop_size=64,
        epochs=2,
        batch_size=4,
        lr=0.005,
        warmup_iters=2,
        val_every=1,
        progress=False,
    )
    return TrainConfig(data[0], data[1], out, **{**defaults, **kw})


def test_negatives_flow_through_a_training_step(data):
    dataset = CropDataset(data[0], crop_size=64, augment=True)
    negative = dataset.samples.index((3, -1))
    positive = 0
    torch.manual_seed(0)
    model = build_model(
        LIGHT_ARCH, crop_size=64, settings=HeadSettings(box_batch_size_per_image=32)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    only_negatives = [collate_fn([dataset[negative], dataset[negative]])]
    losses = train_one_epoch(model, optimizer, only_negatives, torch.device("cpu"))
    assert len(dataset[negative][1]["boxes"]) == 0
    assert losses["loss_mask"] == 0.0 and losses["loss"] > 0
    mixed = [collate_fn([dataset[positive], dataset[negative]])]
    losses = train_one_epoch(model, optimizer, mixed, torch.device("cpu"))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()) and losses["loss_mask"] > 0


class NanModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, images, targets):
        return {"loss_mask": self.w * float("nan"), "loss_classifier": self.w * 0.5}


def test_non_finite_loss_stops_with_a_clear_message():
    model = NanModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [((torch.zeros(3, 4, 4),), ({},))]
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss at epoch 3, iteration 1 .*loss_mask=nan"
    ):
        train_one_epoch(model, optimizer, batches, torch.device("cpu"), epoch=2)
    assert model.w.item() == 1.0  # no step was taken with the bad loss


def test_epoch_sampler_is_seeded_per_epoch():
    sampler = EpochSampler(10, seed=1)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert {e for e, _ in second} == {1} and [i for _, i in second] != [i for _, i in first]


@pytest.mark.slow
def test_train_writes_a_run_and_resume_matches_an_uninterrupted_run(data, tmp_path, monkeypatch):
    full = train(config(data, tmp_path / "full"))
    run = tmp_path / "full"
    assert full == run / "best.pt"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all("val_mean_mask_iou" in r and "loss_mask" in r for r in records)
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "config.json").read_text())["arch"] == LIGHT_ARCH
    best = MaskRCNNSegmentor.load(full, device="cpu")
    assert best.crop_size == 64 and best.extra["config"]["epochs"] == 2
    last = torch.load(run / "last.pt", weights_only=True)
    assert {"model", "optimizer", "warmup", "step_lr", "epoch", "config", "rng"} <= set(last)
    assert last["epoch"] == 2

    # the same run, interrupted after its first epoch...
    real = training.train_one_epoch

    def interrupt_second_epoch(*args, epoch, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(*args, epoch=epoch, **kw)

    monkeypatch.setattr(training, "train_one_epoch", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(config(data, tmp_path / "cut"))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(training, "train_one_epoch", real)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(config(data, tmp_path / "cut"))
    with pytest.raises(ValueError, match=r"config differs .*lr: 0.005 -> 0.1"):
        train(config(data, tmp_path / "cut", lr=0.1, resume=True))
    # ...and resumed: the weights equal the uninterrupted run's, bit for bit
    train(config(data, tmp_path / "cut", resume=True))
    resumed = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    for key, value in last["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_resume_without_a_run_is_an_error(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config(data, tmp_path / "none", resume=True))


def test_train_config_checks_its_values(data, tmp_path):
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        config(data, tmp_path, epochs=0)
    with pytest.raises(ValueError, match="lr > 0"):
        config(data, tmp_path, lr=-1.0)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"train_json": "a", "val_json": "b", "out_dir": "c", "lr_typo": 1})
    cfg = TrainConfig.from_dict(config(data, tmp_path).to_dict())
    assert cfg == config(data, tmp_path)
    with pytest.raises(FileNotFoundError, match="train_json"):
        train(TrainConfig(tmp_path / "missing.json", data[1], tmp_path / "o", progress=False))


def test_copy_paste_settings_reach_the_training_crops(data, tmp_path, monkeypatch):
    seen = {}

    class Spy(CropDataset):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.update(kwargs)
            raise RuntimeError("stop")

    monkeypatch.setattr(training, "CropDataset", Spy)
    cfg = config(data, tmp_path / "cp", copy_paste_prob=0.5, copy_paste_fade_prob=0.25)
    with pytest.raises(RuntimeError, match="stop"):
        train(cfg)
    assert seen["copy_paste_prob"] == 0.5 and seen["copy_paste_max"] == 2
    assert seen["copy_paste_fade_prob"] == 0.25 and seen["augment"] is True
    assert seen["rejected_as"] == "avoid"
    with pytest.raises(ValueError, match="rejected_as must be 'avoid', 'ignore' or 'box'"):
        config(data, tmp_path / "x", rejected_as="skip")
    with pytest.raises(ValueError, match="copy_paste_prob and copy_paste_fade_prob"):
        config(data, tmp_path / "x", copy_paste_prob=1.5)
    with pytest.raises(ValueError, match="copy_paste_max must be an int >= 1"):
        config(data, tmp_path / "x", copy_paste_max=0)
    # a run saved before these settings existed resumes with them at their defaults (off)
    saved = config(data, tmp_path / "cp").to_dict()
    for key in ("copy_paste_prob", "copy_paste_max", "copy_paste_fade_prob", "rejected_as"):
        del saved[key]
    training._check_resumable(config(data, tmp_path / "cp"), saved)
    with pytest.raises(ValueError, match="copy_paste_prob: 0.0 -> 0.5"):
        training._check_resumable(cfg, saved)
