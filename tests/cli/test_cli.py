import json
import subprocess
import sys

import numpy as np
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
