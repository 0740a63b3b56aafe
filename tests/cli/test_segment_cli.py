"""``aquapose segment`` on bad input: one clear line naming the culprit, non-zero exit."""

from __future__ import annotations

import pytest
import torch

from aquapose.cli import main
from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
from aquapose.synth import generate


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    manifest = generate(root / "clip", preset="tiny", seed=0, cameras=1, frames=10)
    torch.manual_seed(0)
    model = MaskRCNNSegmentor(LIGHT_ARCH, crop_size=64, device="cpu").save(root / "model.pt")
    return root, manifest.parent / "cam0.mp4", model


def _first_error_line(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[0]


def test_missing_video(inputs, capsys):
    root, _, model = inputs
    missing = root / "nope.mp4"
    code, _, err = run_cli(
        ["segment", str(missing), "--model", str(model), "--out", str(root / "o1")], capsys
    )
    assert code != 0 and "nope.mp4" in _first_error_line(err)


def test_corrupt_video(inputs, capsys):
    root, _, model = inputs
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 10)
    code, _, err = run_cli(
        ["segment", str(corrupt), "--model", str(model), "--out", str(root / "o2")], capsys
    )
    assert code != 0 and "corrupt.mp4" in _first_error_line(err)


def test_model_that_is_not_a_checkpoint(inputs, capsys):
    root, video, _ = inputs
    bad = root / "bad.pt"
    bad.write_text("hello")
    code, _, err = run_cli(
        ["segment", str(video), "--model", str(bad), "--out", str(root / "o3")], capsys
    )
    line = _first_error_line(err)
    assert code != 0 and "bad.pt" in line and "checkpoint" in line


def test_output_folder_that_is_a_file(inputs, capsys):
    root, video, model = inputs
    out = root / "taken"
    out.write_text("x")
    code, _, err = run_cli(
        ["segment", str(video), "--model", str(model), "--out", str(out)], capsys
    )
    line = _first_error_line(err)
    assert code != 0 and "taken" in line and "not a folder" in line
    assert out.read_text() == "x"
