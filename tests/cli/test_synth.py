import json

import cv2
import pytest

from aquapose.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_synth_tiny_with_overrides_and_preview(tmp_path, capsys):
    out = tmp_path / "rig"
    args = ["synth", str(out), "--preset", "tiny", "--seed", "2", "--frames", "12"]
    code, stdout, _ = run_cli([*args, "--cameras", "3", "--preview"], capsys)
    assert code == 0
    manifest_path = out / "manifest.json"
    assert stdout.strip() == str(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["preset"] == "tiny" and manifest["seed"] == 2
    assert [c["camera_id"] for c in manifest["cameras"]] == ["cam0", "cam1", "cam2"]
    assert all(c["num_frames"] == 12 for c in manifest["cameras"])
    sheet = cv2.imread(str(out / "preview.png"))
    assert sheet is not None and sheet.shape[0] > sheet.shape[1] * 0.4  # 3 rows of tiles


def test_synth_unknown_preset_is_one_line_error(tmp_path, capsys):
    code, stdout, err = run_cli(["synth", str(tmp_path / "x"), "--preset", "huge"], capsys)
    assert code == 1 and stdout == ""
    assert "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert "unknown preset 'huge'" in first and "tiny, demo, rig" in first
    assert not (tmp_path / "x").exists()


def test_synth_bad_size_is_refused(tmp_path, capsys):
    code, _, err = run_cli(["synth", str(tmp_path / "x"), "--width", "101"], capsys)
    assert code == 1 and "must be even" in err
