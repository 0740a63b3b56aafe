"""``aquapose pseudolabel``: outputs, relative paths, resume, interrupted runs, errors."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from _cli import run_cli
from pycocotools.coco import COCO

from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import read_image, write_image
from aquapose.segmentation.labels import FilterConfig
from aquapose.segmentation.masks import encode_rle, mask_iou
from aquapose.segmentation.types import AnnotatedFrame, Instance


def _detections(tmp_path: Path, n_frames: int = 6) -> tuple[Path, dict]:
    """A detect-like folder: det/detections.json + det/frames/<cam>/<idx>.png; one dark
    fish per frame (plus a tiny low-score blob on cam0), every 3rd cam1 frame empty."""
    rng = np.random.default_rng(0)
    det = tmp_path / "det"
    frames, gt = [], {}
    image_id = 1
    for cam in ("cam0", "cam1"):
        for i in range(n_frames):
            image = rng.normal(150, 4, (160, 300, 3)).clip(0, 255).astype(np.uint8)
            fish = np.zeros((160, 300), np.uint8)
            cv2.ellipse(fish, (50 + 38 * i, 80), (25, 8), 15, 0, 360, 1, -1)
            fish = fish.astype(bool)
            instances = []
            if not (cam == "cam1" and i % 3 == 2):
                image[fish] = (50, 70, 60)
                gt[(cam, i)] = fish
                blob = cv2.dilate(fish.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                ys, xs = np.nonzero(blob)
                box = [xs.min() - 4, ys.min() - 4, xs.max() + 5, ys.max() + 5]
                instances.append(Instance(box, encode_rle(blob), score=0.95))
            if cam == "cam0":
                noise = np.zeros((160, 300), bool)
                noise[10:14, 280:284] = True
                instances.append(Instance([278, 8, 286, 16], encode_rle(noise), score=0.3))
            rel = f"frames/{cam}/{i:06d}.png"
            write_image(det / rel, image)
            frames.append(
                AnnotatedFrame(image_id, rel, 300, 160, cam, i, f"/v/{cam}.mp4", tuple(instances))
            )
            image_id += 1
    path = write_coco(frames, det / "detections.json")
    return path, gt


def test_pseudolabel_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    detections, gt = _detections(tmp_path)
    out = tmp_path / "labels"
    code, stdout, err = run_cli(
        [
            "pseudolabel",
            str(detections),
            "--out",
            str(out),
            "--negative-fraction",
            "0.2",
            "--crop-size",
            "64",
        ],
        capsys,
    )
    assert code == 0, err
    assert stdout.strip() == str(out / "pseudolabels.json")
    assert "rejected low_score  6" in err and "rejected small_area 0" in err
    for name in (
        "pseudolabels.json",
        "train.json",
        "val.json",
        "contact_sheet.png",
        "pseudolabel_config.yaml",
    ):
        assert (out / name).is_file(), name
    labels = read_coco(out / "pseudolabels.json")
    assert len(labels) == 12
    masks = [(f, i) for f in labels for i in f.instances]
    assert len(masks) == 10 + 6  # every detection has a mask, accepted or not
    for frame, inst in masks:
        assert (out / frame.image_path).is_file()  # ../det/frames/... resolves from out/
        assert frame.image_path.startswith("../det/frames/")
        assert isinstance(inst.extra["accepted"], bool)
        if inst.score == 0.3:
            assert inst.extra["reject_reason"] == "low_score" and not inst.extra["accepted"]
        else:  # a real fish: accepted with a good mask
            assert inst.extra["accepted"], inst.extra
            assert mask_iou(inst.mask(), gt[(frame.camera_id, frame.frame_index)]) > 0.85
    train, val = read_coco(out / "train.json"), read_coco(out / "val.json")
    for part, name in ((train, "train.json"), (val, "val.json")):
        assert len(COCO(str(out / name)).getImgIds()) == len(part)
        for f in part:
            assert (out / f.image_path).is_file()
            assert all(i.extra["accepted"] for i in f.instances)
    key = lambda f: (f.camera_id, f.frame_index)  # noqa: E731
    assert not {key(f) for f in train} & {key(f) for f in val}
    assert {f.camera_id for f in val} == {"cam0", "cam1"}
    negatives = [f for f in train + val if f.extra.get("negative")]
    assert negatives and all(
        f.image_path.startswith("negatives/") or f.image_path.startswith("../det/")
        for f in negatives
    )
    sheet = read_image(out / "contact_sheet.png")
    assert sheet.shape[0] >= 128 and sheet.shape[1] == 8 * 128
    config = yaml.safe_load((out / "pseudolabel_config.yaml").read_text())
    assert config["backend"] == "classical" and config["filter"] == asdict(
        FilterConfig()
    )  # CLI defaults = library defaults


def test_pseudolabel_resumes_and_survives_interruption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aquapose.segmentation.pseudo_labeler import SAMPseudoLabeler

    detections, _ = _detections(tmp_path, n_frames=4)
    out = tmp_path / "labels"
    real = SAMPseudoLabeler.label_frame
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SAMPseudoLabeler, "label_frame", flaky)
    code, _, _ = run_cli(["pseudolabel", str(detections), "--out", str(out)], capsys)
    assert code == 130  # Ctrl-C
    journal = (out / "pseudolabels.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 5  # the settings, then the 5 frames labelled before Ctrl-C
    assert not (out / "pseudolabels.json").exists() and not (out / "train.json").exists()

    calls["n"] = -100  # no more interruptions
    code, _, err = run_cli(["pseudolabel", str(detections), "--out", str(out)], capsys)
    assert code == 0, err
    assert "resumed: 5 of 8 frames were already labelled" in err
    assert calls["n"] == -100 + 3  # only the 3 missing frames were labelled
    assert len(read_coco(out / "pseudolabels.json")) == 8
    # A re-run with other filter thresholds labels nothing and re-filters everything.
    code, _, err = run_cli(
        ["pseudolabel", str(detections), "--out", str(out), "--min-score", "0.2"], capsys
    )
    assert code == 0 and "resumed: 8 of 8" in err and "rejected low_score  0" in err
    assert calls["n"] == -100 + 3


def test_pseudolabel_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detections, _ = _detections(tmp_path, n_frames=2)
    code, _, err = run_cli(
        ["pseudolabel", str(detections), "--out", str(tmp_path / "o"), "--backend", "sam"], capsys
    )
    assert code == 1 and "needs a checkpoint" in err and "--checkpoint" in err
    code, _, err = run_cli(
        ["pseudolabel", str(detections), "--out", str(tmp_path / "o"), "--backend", "nope"], capsys
    )
    assert code == 1 and "valid backends" in err
    code, _, err = run_cli(
        ["pseudolabel", str(tmp_path / "missing.json"), "--out", str(tmp_path)], capsys
    )
    assert code == 1 and "no such file" in err
    out = tmp_path / "o2"
    assert run_cli(["pseudolabel", str(detections), "--out", str(out)], capsys)[0] == 0
    code, _, err = run_cli(
        ["pseudolabel", str(detections), "--out", str(out), "--no-background"], capsys
    )
    assert code == 1 and "other background" in err and "--overwrite" in err
