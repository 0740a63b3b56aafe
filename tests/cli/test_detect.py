"""``aquapose detect`` and ``aquapose eval-detections`` end to end on a tiny video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from _cli import run_cli

from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance

H, W = 96, 128
HANDHELD = Path(__file__).resolve().parents[2].parent / "shared/data/aquarium-boxes/handheld.mp4"


def _fish(t: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (12 + 5 * t, 40 + t), (14, 5), 15, 0, 360, 1, -1)
    return mask.astype(bool)


def _write_clip(path: Path, n: int = 20) -> list[np.ndarray]:
    """A moving dark fish on a textured floor, written losslessly enough (MJPG)."""
    rng = np.random.default_rng(3)
    floor = cv2.resize(
        rng.integers(120, 170, (H // 8, W // 8, 3)).astype(np.uint8), (W, H), cv2.INTER_CUBIC
    )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    masks = []
    for t in range(n):
        frame = floor.astype(np.float32)
        frame[_fish(t)] *= 0.4
        frame += rng.normal(0, 2.0, frame.shape)
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
        masks.append(_fish(t))
    writer.release()
    return masks


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    video = folder / "camA.avi"
    masks = _write_clip(video)
    return video, masks


def test_detect_writes_coco_frames_and_overlays(clip, tmp_path, capsys):
    video, masks = clip
    out = tmp_path / "det"
    code, _, err = run_cli(
        ["detect", str(video), "--out", str(out), "--every", "5", "--overlay"], capsys
    )
    assert code == 0, err
    assert "camA: 4 frames kept, 4 detections" in err
    frames = read_coco(out / "detections.json")
    assert [f.frame_index for f in frames] == [0, 5, 10, 15]
    for frame in frames:
        assert frame.camera_id == "camA" and (frame.width, frame.height) == (W, H)
        assert Path(frame.video) == video.resolve()
        assert frame.image_path == f"frames/camA/{frame.frame_index:06d}.png"
        image = cv2.imread(str(out / frame.image_path))
        assert image is not None and image.shape == (H, W, 3)
        assert (out / f"overlay/camA/{frame.frame_index:06d}.png").is_file()
        (inst,) = frame.instances
        assert 0 < inst.score <= 1 and inst.rle is not None
        gt = masks[frame.frame_index]
        iou = np.logical_and(inst.mask(), gt).sum() / np.logical_or(inst.mask(), gt).sum()
        assert iou > 0.6
    raw = json.loads((out / "detections.json").read_text())
    assert raw["annotations"][0]["category_id"] == 1 and "segmentation" in raw["annotations"][0]
    assert raw["images"][0]["video"] == str(video.resolve())
    config = yaml.safe_load((out / "detect_config.yaml").read_text())
    assert config["every"] == 5 and config["overlay"] is True
    # the floor the frames were compared with: the fish is not in it
    background = cv2.imread(str(out / "backgrounds" / "camA.png"))
    assert background is not None and background.shape == (H, W, 3)
    first = cv2.imread(str(out / frames[0].image_path)).astype(int)
    fish = masks[0]
    assert np.abs(first - background)[fish].mean() > 40 > np.abs(first - background)[~fish].mean()
    assert config["detector"]["scale"] == 1.0 and config["detector"]["median_frames"] == 25

    # The same run scored against its own ground truth.
    gt_frames = [
        AnnotatedFrame(
            i + 1,
            f"gt/{i}.png",
            W,
            H,
            "camA",
            i,
            "camA.avi",
            (Instance(mask_to_box_xyxy(m), encode_rle(m), fish_id=0, extra={"stationary": False}),),
        )
        for i, m in enumerate(masks)
    ]
    gt_path = write_coco(gt_frames, tmp_path / "gt.json")
    report = tmp_path / "report.json"
    code, table, err = run_cli(
        [
            "eval-detections",
            str(out / "detections.json"),
            str(gt_path),
            "--json",
            str(report),
            "--skip-warmup",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "camA" in table and "recall" in table and "1.000" in table
    numbers = json.loads(report.read_text())
    assert numbers["total"]["recall"] == 1.0 and numbers["total"]["frames"] == 3
    assert numbers["cameras"][0]["flags"]["stationary"]["gt"] == 0


def test_detect_scale_option(clip, tmp_path, capsys):
    video, _ = clip
    out = tmp_path / "half"
    code, _, err = run_cli(
        ["detect", str(video), "-o", str(out), "--every", "10", "--scale", "0.5"], capsys
    )
    assert code == 0, err
    frames = read_coco(out / "detections.json")
    assert len(frames) == 2 and all(len(f.instances) == 1 for f in frames)
    code, _, err = run_cli(["detect", str(video), "-o", str(out), "--scale", "2"], capsys)
    assert code == 1 and "scale must be in (0, 1]" in err


def test_interrupted_detect_resumes_and_refuses_other_settings(clip, tmp_path, capsys):
    video, _ = clip
    twin = tmp_path / "camB.avi"
    twin.write_bytes(video.read_bytes())
    args = ["detect", str(video), str(twin), "--every", "2"]
    assert run_cli([*args, "--out", str(tmp_path / "full")], capsys)[0] == 0
    out = tmp_path / "out"
    assert run_cli([*args, "--out", str(out)], capsys)[0] == 0

    # Kill after camA's 4th kept frame, mid-way through writing the 5th.
    lines = (out / "detections.jsonl").read_text().splitlines(keepends=True)
    assert json.loads(lines[0])["run"]["every"] == 2
    (out / "detections.jsonl").write_text("".join(lines[:5]) + lines[5][:30])
    (out / "detections.json").unlink()
    for index in (0, 2, 4, 6):
        (out / f"frames/camA/{index:06d}.png").unlink()
    code, _, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 0, err
    resumed = json.loads((out / "detections.json").read_text())
    full = json.loads((tmp_path / "full" / "detections.json").read_text())
    for key in ("images", "annotations", "categories"):  # "info" holds the write time
        assert resumed[key] == full[key]
    assert not (out / "frames/camA/000006.png").exists()  # done before: not redone
    assert (out / "frames/camA/000008.png").exists()

    code, _, err = run_cli(
        ["detect", str(video), str(twin), "--every", "3", "--out", str(out)], capsys
    )
    assert code == 1 and "made with other every" in err and len(err.strip().splitlines()) <= 2
    code, _, err = run_cli(
        ["detect", str(video), "--every", "3", "--out", str(out), "--overwrite"], capsys
    )
    assert code == 0 and "camA: 7 frames kept" in err


def test_detect_errors_are_one_clear_line(clip, tmp_path, capsys):
    video, _ = clip
    code, _, err = run_cli(
        ["detect", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and "nope.mp4: video file not found" in err and "Traceback" not in err
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    code, _, err = run_cli(["detect", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "broken.mp4" in err.splitlines()[0]
    other = tmp_path / "x"
    other.mkdir()
    twin = other / "camA.avi"
    twin.write_bytes(video.read_bytes())
    code, _, err = run_cli(["detect", str(video), str(twin), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "would both be camera 'camA'" in err
    code, _, err = run_cli(
        ["eval-detections", str(tmp_path / "none.json"), str(tmp_path / "gt.json")], capsys
    )
    assert code == 1 and "none.json" in err


@pytest.mark.slow
def test_detect_on_moving_camera_reports_rejected_frames(tmp_path, capsys):
    assert HANDHELD.is_file(), f"{HANDHELD} missing (shared data is expected in CI)"
    out = tmp_path / "hand"
    code, _, err = run_cli(
        ["detect", str(HANDHELD), "--out", str(out), "--every", "10", "--max-frames", "200"], capsys
    )
    assert code == 0, err
    assert "handheld: 20 frames kept" in err
    assert "frames rejected" in err and "moving camera" in err
    frames = read_coco(out / "detections.json")
    assert sum(len(f.instances) for f in frames) <= len(frames)


def test_detect_config_file_sets_detector_fields_and_flags_win(clip, tmp_path, capsys):
    video, _ = clip
    config = tmp_path / "detect.yaml"
    config.write_text("every: 10\ndetector:\n  max_blob_area: 90\n")
    out = tmp_path / "big"
    code, _, err = run_cli(["detect", str(video), "-o", str(out), "--config", str(config)], capsys)
    assert code == 0, err
    frames = read_coco(out / "detections.json")
    assert len(frames) == 2 and not any(f.instances for f in frames)  # fish > 90 px
    written = yaml.safe_load((out / "detect_config.yaml").read_text())
    assert written["every"] == 10 and written["detector"]["max_blob_area"] == 90
    # The written config repeats the run; a flag given on the command line wins over it.
    again = tmp_path / "again"
    args = ["detect", str(video), "-o", str(again), "--config", str(out / "detect_config.yaml")]
    assert run_cli([*args, "--every", "5"], capsys)[0] == 0
    assert len(read_coco(again / "detections.json")) == 4
    config.write_text("detector:\n  min_blob_aera: 5\n")
    code, _, err = run_cli(["detect", str(video), "-o", str(out), "--config", str(config)], capsys)
    assert code == 1 and "unknown key 'detector.min_blob_aera'" in err and "min_blob_area" in err
