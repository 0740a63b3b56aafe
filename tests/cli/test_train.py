"""``aquapose train`` and ``aquapose evaluate`` end to end on a tiny data set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from aquapose.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segmentation"))
from _model_data import make_tiny_coco  # noqa: E402


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.slow
def test_train_then_evaluate(tmp_path, capsys):
    train_json = make_tiny_coco(tmp_path / "t", num_frames=2, name="train.json")
    val_json = make_tiny_coco(tmp_path / "v", num_frames=1, seed=1, name="val.json")
    run = tmp_path / "run"
    args = ["train", "--train", str(train_json), "--val", str(val_json), "--out", str(run)]
    args += ["--arch", "maskrcnn_resnet18_fpn", "--epochs", "1", "--crop-size", "64"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert out.strip() == str(run / "best.pt")
    report = tmp_path / "report.json"
    code, out, err = run_cli(
        [
            "evaluate",
            "--model",
            str(run / "best.pt"),
            "--data",
            str(val_json),
            "--json",
            str(report),
        ],
        capsys,
    )
    assert code == 0, err
    assert "mean_mask_iou" in out
    data = json.loads(report.read_text())
    assert 0.0 <= data["mean_mask_iou"] <= 1.0 and len(data["per_image_iou"]) == data["num_images"]
    # a second run into the same folder is refused unless resumed
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "--resume" in err


def test_unknown_arch_is_one_line_listing_the_names(tmp_path, capsys):
    train_json = make_tiny_coco(tmp_path, num_frames=1, name="train.json")
    code, _, err = run_cli(
        [
            "train",
            "--train",
            str(train_json),
            "--val",
            str(train_json),
            "--out",
            str(tmp_path / "r"),
            "--arch",
            "unet",
        ],
        capsys,
    )
    assert code == 1
    assert "unknown architecture 'unet'" in err and "maskrcnn_resnet18_fpn" in err


def test_evaluate_missing_model(tmp_path, capsys):
    code, _, err = run_cli(
        ["evaluate", "--model", str(tmp_path / "none.pt"), "--data", str(tmp_path / "v.json")],
        capsys,
    )
    assert code == 1 and "checkpoint file not found" in err
