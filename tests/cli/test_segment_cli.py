"""``aquapose segment`` on bad input: one clear line naming the culprit, non-zero exit."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from _cli import run_cli

from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
from aquapose.synth import generate


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    manifest = generate(root / "clip", preset="tiny", seed=0, cameras=1, frames=10)
    torch.manual_seed(0)
    model = MaskRCNNSegmentor(LIGHT_ARCH, crop_size=64, device="cpu").save(root / "model.pt")
    return root, manifest.parent / "cam0.mp4", model


def _bad_video(root):
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 10)
    return corrupt


def _bad_model(root):
    bad = root / "bad.pt"
    bad.write_text("hello")
    return bad


def _file_out(root):
    taken = root / "taken"
    taken.write_text("x")
    return taken


# (what is bad, its replacement for (video, model, out), words the error line must hold)
CASES = {
    "missing video": ("video", lambda root: root / "nope.mp4", ["nope.mp4"]),
    "corrupt video": ("video", _bad_video, ["corrupt.mp4"]),
    "model is not a checkpoint": ("model", _bad_model, ["bad.pt", "checkpoint"]),
    "output folder is a file": ("out", _file_out, ["taken", "not a folder"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_line(inputs, capsys, case):
    root, video, model = inputs
    paths = {"video": video, "model": model, "out": root / case.replace(" ", "-")}
    which, make_bad, words = CASES[case]
    paths[which] = make_bad(root)
    args = ["segment", str(paths["video"]), "--model", str(paths["model"])]
    code, _, err = run_cli([*args, "--out", str(paths["out"])], capsys)
    assert code != 0 and "Traceback" not in err
    line = err.strip().splitlines()[0]
    assert all(word in line for word in words), line
    if which == "out":
        assert paths["out"].read_text() == "x"  # nothing written over it


def test_engine_ray_without_ray_says_how_to_install(inputs, capsys, monkeypatch):
    root, video, model = inputs
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    args = ["segment", str(video), "--model", str(model), "--out", str(root / "no-ray")]
    code, _, err = run_cli([*args, "--engine", "ray"], capsys)
    assert code != 0 and "Traceback" not in err
    assert "pip install 'ray>=2.9'" in err.strip().splitlines()[0]


@pytest.mark.slow
def test_engine_ray_writes_what_the_local_engine_writes(inputs, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    root, video, model = inputs
    args = ["segment", str(video), "--model", str(model), "--refine-pad", "0"]
    code, _, err = run_cli([*args, "--out", str(root / "local")], capsys)
    assert code == 0, err
    ray_args = ["--engine", "ray", "--chunk-frames", "4", "--chunk-overlap", "2"]
    code, _, err = run_cli([*args, "--out", str(root / "ray"), *ray_args], capsys)
    assert code == 0, err
    local = json.loads((root / "local" / "results.json").read_text())
    ray = json.loads((root / "ray" / "results.json").read_text())
    assert len(list((root / "ray" / "chunks").glob("*.json"))) == 3
    assert ray["images"] == local["images"]
    assert ray["annotations"] == local["annotations"]
