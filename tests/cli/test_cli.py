import json
import subprocess
import sys

import numpy as np
import pytest
from _cli import run_cli

from aquapose import __version__
from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.masks import encode_rle
from aquapose.segmentation.types import AnnotatedFrame, Instance


def test_version_and_help(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"aquapose {__version__}"
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "validate" in out


def test_validate_ok_and_error_is_one_line(tmp_path, capsys):
    mask = np.zeros((6, 8), bool)
    mask[1:3, 1:4] = True
    frame = AnnotatedFrame(
        1, "a.png", 8, 6, "cam0", 0, "v.mp4", [Instance([1, 1, 4, 3], encode_rle(mask))]
    )
    good = write_coco([frame], tmp_path / "good.json")
    code, out, _ = run_cli(["validate", str(good)], capsys)
    assert code == 0 and "cam0" in out
    data = json.loads(good.read_text())
    data["annotations"][0]["bbox"] = [0, 0, 100, 1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, _, err = run_cli(["validate", str(bad)], capsys)
    assert code == 1
    assert "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert "bad.json" in first and "annotation id=1" in first and "bbox" in first


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aquapose", "--debug", "validate", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


COMMANDS = [
    (["detect"], "aquapose.segmentation.detect:DetectConfig"),
    (["eval-detections"], "aquapose.segmentation.detection_eval:DetectionEvalConfig"),
    (["pseudolabel"], "aquapose.segmentation.pseudolabel:PseudolabelConfig"),
    (["ls", "export"], "aquapose.segmentation.io.labelstudio:ExportConfig"),
    (["ls", "import"], "aquapose.segmentation.io.labelstudio:ImportConfig"),
    (["ls", "push"], "aquapose.segmentation.io.labelstudio:ExportConfig"),
    (["ls", "pull"], "aquapose.segmentation.io.labelstudio:ImportConfig"),
    (["train"], "aquapose.segmentation.training:TrainConfig"),
    (["evaluate"], "aquapose.segmentation.evaluation:EvaluateConfig"),
    (["segment"], "aquapose.segmentation.segment:SegmentConfig"),
    (["synth"], "aquapose.synth.config:SynthConfig"),
    (["demo"], "aquapose.demo:DemoConfig"),
]


@pytest.mark.parametrize(
    ("command", "config"), COMMANDS, ids=lambda c: " ".join(c) if isinstance(c, list) else None
)
def test_every_command_prints_its_config_as_yaml_that_reads_back(command, config, capsys):
    import importlib

    import yaml

    from aquapose.segmentation.io.config import config_defaults

    module, _, name = config.partition(":")
    cls = getattr(importlib.import_module(module), name)
    code, out, err = run_cli([*command, "--print-config"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out) == yaml.safe_load(yaml.safe_dump(config_defaults(cls)))
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0 and "--config" in out and "--print-config" in out


def test_train_flags_default_to_the_train_config_defaults():
    """`aquapose train`'s options repeat TrainConfig's defaults (to keep --help torch-free)."""
    import typer.main

    from aquapose.cli import app
    from aquapose.cli.train import _TRAIN_FLAGS
    from aquapose.segmentation.io.config import config_defaults
    from aquapose.segmentation.training import TrainConfig

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    defaults = config_defaults(TrainConfig)
    for param in command.params:
        fields = _TRAIN_FLAGS.get(param.name)
        for field in (fields,) if isinstance(fields, str) else fields or ():
            assert param.default == defaults[field] or (param.default, defaults[field]) == (
                None,
                None,
            ), field


def test_aquapose_help_and_the_detector_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, aquapose.segmentation.detector, aquapose.synth, aquapose.cli; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
