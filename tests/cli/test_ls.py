"""``aquapose ls export/import/push/pull`` from the command line (no server needed here)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

from aquapose.segmentation.io.brush_rle import mask_to_brush_rle
from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import write_image
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance


def _coco(tmp_path: Path) -> tuple[Path, np.ndarray]:
    mask = np.zeros((24, 32), bool)
    mask[4:12, 6:20] = True
    mask[8, 6] = False
    write_image(tmp_path / "frames" / "f0.png", np.zeros((24, 32, 3), np.uint8))
    inst = Instance(mask_to_box_xyxy(mask), encode_rle(mask), score=0.8, fish_id=3)
    frame = AnnotatedFrame(7, "frames/f0.png", 32, 24, "cam1", 12, "cam1.mp4", (inst,))
    return write_coco([frame], tmp_path / "pseudo.json"), mask


def test_export_then_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coco, mask = _coco(tmp_path)
    code, _, err = run_cli(["ls", "export", str(coco), "--out", str(tmp_path / "ls")], capsys)
    assert code == 0, err
    assert "How to load this in Label Studio" in err
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={tmp_path}" in err
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert (tmp_path / "ls" / "labeling_config.xml").is_file()
    # what Label Studio exports after the reviewer accepted the prediction
    result = tasks[0]["predictions"][0]["result"]
    export = [{"id": 1, "data": tasks[0]["data"], "annotations": [{"id": 1, "result": result}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    out = tmp_path / "reviewed.json"
    args = ["ls", "import", str(tmp_path / "export.json"), "--out", str(out)]
    code, _, err = run_cli([*args, "--image-root", str(tmp_path)], capsys)
    assert code == 0, err
    assert "1 of 1 tasks imported (1 fish" in " ".join(err.split())
    frame = read_coco(out)[0]
    assert (frame.image_id, frame.camera_id, frame.frame_index) == (7, "cam1", 12)
    assert np.array_equal(frame.instances[0].mask(), mask) and frame.instances[0].fish_id == 3


def test_import_of_a_bad_export_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "export.json").write_text('[{"id": 1, "data": {"image"')
    out = tmp_path / "reviewed.json"
    args = ["ls", "import", str(tmp_path / "export.json"), "--out", str(out)]
    code, _, err = run_cli([*args, "--image-root", str(tmp_path)], capsys)
    assert code == 1 and "not valid JSON" in err and "Traceback" not in err
    assert not out.exists()


def test_push_without_token_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    coco, _ = _coco(tmp_path)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    args = ["ls", "push", str(coco), "--url", "http://127.0.0.1:9", "--project", "p"]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "no Label Studio API token: set LABEL_STUDIO_API_KEY" in err


@pytest.mark.slow  # imports label-studio-sdk (~3-5 s)
def test_pull_from_nowhere_says_why_without_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("label_studio_sdk")
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "0123456789abcdef-secret-token"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", secret)
    args = ["ls", "pull", "--url", f"http://127.0.0.1:{port}", "--project", "p"]
    code, out, err = run_cli(
        [*args, "--out", str(tmp_path / "o.json"), "--image-root", "."], capsys
    )
    assert code == 1 and "cannot reach Label Studio" in err
    assert secret not in out + err
    assert not (tmp_path / "o.json").exists()


def test_export_order_uncertain_and_import_onto_a_training_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mask = np.zeros((24, 32), bool)
    mask[4:12, 6:20] = True
    frames = []
    for n, extra in enumerate([{}, {"rejected_boxes_xyxy": [[1, 1, 4, 4]]}]):
        write_image(tmp_path / "frames" / f"f{n}.png", np.zeros((24, 32, 3), np.uint8))
        inst = Instance(mask_to_box_xyxy(mask), encode_rle(mask), score=0.9)
        frames.append(
            AnnotatedFrame(n + 1, f"frames/f{n}.png", 32, 24, "cam1", n, "v.mp4", (inst,), extra)
        )
    train = write_coco(frames, tmp_path / "train.json")
    args = ["ls", "export", str(train), "--out", str(tmp_path / "ls"), "--order", "uncertain"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [t["data"]["frame_index"] for t in tasks] == [1, 0]
    assert tasks[0]["data"]["review_reasons"] == "rejected: unknown"
    code, _, err = run_cli([*args[:-1], "sideways"], capsys)
    assert code == 1 and "order must be one of file, uncertain" in err
    # the reviewer repaints the first task of the queue: one fish, now bigger
    fixed = np.zeros((24, 32), bool)
    fixed[2:20, 2:30] = True
    result = [dict(tasks[0]["predictions"][0]["result"][0])]
    result[0]["value"] = {**result[0]["value"], "rle": mask_to_brush_rle(fixed)}
    export = [
        {"id": 1, "data": tasks[0]["data"], "annotations": [{"id": 1, "result": result}]},
        {"id": 2, "data": tasks[1]["data"], "annotations": []},
    ]
    (tmp_path / "export.json").write_text(json.dumps(export))
    out = tmp_path / "work" / "reviewed_train.json"
    args = ["ls", "import", str(tmp_path / "export.json"), "--out", str(out)]
    args += ["--image-root", str(tmp_path), "--onto", str(train)]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "1 frames replaced, 0 added, 2 in all" in " ".join(err.split())
    got = read_coco(out)
    assert [f.image_id for f in got] == [1, 2]
    assert np.array_equal(got[0].instances[0].mask(), mask)  # not reviewed: pseudo-label
    assert np.array_equal(got[1].instances[0].mask(), fixed)  # reviewed
    assert "rejected_boxes_xyxy" not in got[1].extra
    assert (out.parent / got[1].image_path).resolve() == (tmp_path / "frames" / "f1.png").resolve()
