"""Pipeline logic of `segment_videos`, with a thresholding stand-in for the model.

The stand-in segments dark pixels in each crop (the fish are the only dark things
in these clips), so these tests check the pipeline - cropping, pasting, NMS,
re-checking lost fish, streaming, resume - not a model's accuracy. The real model
runs through the same code in tests/cli/test_segment.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from _stand_ins import DarkPixelModel
from pycocotools.coco import COCO

from aquapose.segmentation.io.video import find_videos
from aquapose.segmentation.masks import decode_rle, encode_rle, mask_to_box_xyxy
from aquapose.segmentation.segment import (
    SegmentConfig,
    VideoSegmenter,
    segment_videos,
    write_overlay_video,
)
from aquapose.segmentation.types import SegmentationResult

W, H = 160, 120


def _fish_mask(cx: float, cy: float) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (int(cx), int(cy)), (12, 5), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _write_clip(path: Path, n_frames: int, stop_at: int) -> list[list[np.ndarray]]:
    """A fish that swims until `stop_at`, then stays still; a second always swims.

    Returns the ground-truth masks per frame.
    """
    rng = np.random.default_rng(0)
    floor = (150 + rng.integers(-8, 8, (H, W, 1))).astype(np.uint8).repeat(3, axis=2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (W, H))
    truth = []
    for t in range(n_frames):
        still_t = min(t, stop_at)
        a = _fish_mask(20 + 1.5 * still_t, 30)
        b = _fish_mask(20 + (2 * t) % 120, 90)
        frame = floor.copy()
        frame[a | b] = 30
        writer.write(frame)
        truth.append([a, b])
    writer.release()
    return truth


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    truth = _write_clip(folder / "cam0.avi", n_frames=90, stop_at=15)
    return folder / "cam0.avi", truth


def _recall_of_still_fish(results_json: Path, truth, first: int) -> float:
    coco = COCO(str(results_json))
    found = total = 0
    for img in coco.dataset["images"]:
        t = img["frame_index"]
        if t < first:
            continue
        still = truth[t][0]
        masks = [coco.annToMask(a).astype(bool) for a in coco.imgToAnns[img["id"]]]
        total += 1
        found += any((m & still).sum() / (m | still).sum() > 0.5 for m in masks)
    return found / total


def test_recheck_finds_fish_that_stopped(clip, tmp_path):
    video, truth = clip
    on = segment_videos([video], DarkPixelModel(), tmp_path / "on", SegmentConfig())
    off = segment_videos(
        [video], DarkPixelModel(), tmp_path / "off", SegmentConfig(recheck_frames=0)
    )
    assert _recall_of_still_fish(on, truth, first=40) == 1.0
    assert _recall_of_still_fish(off, truth, first=40) < 0.5  # MOG2 alone loses it


def test_recheck_stops_where_the_fish_is_gone(tmp_path):
    """A fish that left its last place is re-checked `recheck_misses` times, then forgotten
    (otherwise every fish that swims off leaves a crop to predict on every frame)."""

    class CountingModel(DarkPixelModel):
        def __init__(self) -> None:
            super().__init__()
            self.crops: list[int] = []

        def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
            self.crops.append(len(crops))
            return super().predict(crops, regions, score_threshold, batch_size)

    floor = np.full((H, W, 3), 150, np.uint8)
    fish = floor.copy()
    fish[_fish_mask(60, 60)] = 30
    model = CountingModel()
    segmenter = VideoSegmenter(model, SegmentConfig(recheck_misses=3))
    box = mask_to_box_xyxy(_fish_mask(60, 60))
    assert len(segmenter.segment_frame(fish, 0, [box])) == 1
    for t in range(1, 8):  # the fish has gone: nothing detected, nothing at its place
        assert segmenter.segment_frame(floor, t, []) == []
    assert model.crops == [1, 1, 1, 1]  # its detection, then 3 re-checks, then nothing


def test_results_are_valid_coco_without_duplicates(clip, tmp_path):
    video, truth = clip
    results = segment_videos([video], DarkPixelModel(), tmp_path / "out", SegmentConfig(every=3))
    coco = COCO(str(results))
    frames = [img["frame_index"] for img in coco.dataset["images"]]
    assert frames == sorted(frames) and all(f % 3 == 0 for f in frames)
    for img in coco.dataset["images"]:
        assert img["camera_id"] == "cam0" and img["video"].endswith("cam0.avi")
        anns = coco.imgToAnns[img["id"]]
        assert len(anns) <= 2  # never the same fish twice
        for ann in anns:
            mask = decode_rle(ann["segmentation"])
            assert mask.shape == (H, W) and 0.5 <= ann["score"] <= 1.0
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose([x, y, x + w, y + h], mask_to_box_xyxy(mask))
            best = max((m & mask).sum() / (m | mask).sum() for m in truth[img["frame_index"]])
            assert best > 0.8


class SloppyModel(DarkPixelModel):
    """Finds the fish but outlines them loosely: each mask grown by 4 pixels."""

    def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
        out = []
        for results in super().predict(crops, regions, score_threshold, batch_size):
            loose = []
            for r in results:
                mask = cv2.dilate(decode_rle(r.crop_rle).astype(np.uint8), grow) > 0
                loose.append(
                    SegmentationResult(mask_to_box_xyxy(mask), encode_rle(mask), 0.9, r.region)
                )
            out.append(loose)
        return out


def _mean_matched_iou(results_json: Path, truth) -> float:
    coco = COCO(str(results_json))
    ious = []
    for img in coco.dataset["images"]:
        for ann in coco.imgToAnns[img["id"]]:
            mask = coco.annToMask(ann).astype(bool)
            ious.append(max((m & mask).sum() / (m | mask).sum() for m in truth[img["frame_index"]]))
    return float(np.mean(ious))


def test_refine_snaps_loose_masks_to_the_fish(clip, tmp_path):
    video, truth = clip
    config = SegmentConfig(every=5, recheck_frames=0)
    loose = segment_videos(
        [video], SloppyModel(), tmp_path / "loose", replace(config, refine_pad=0)
    )
    snapped = segment_videos([video], SloppyModel(), tmp_path / "snapped", config)
    assert _mean_matched_iou(loose, truth) < 0.6
    assert _mean_matched_iou(snapped, truth) > 0.85


class BlindModel(DarkPixelModel):
    """Finds nothing: every fish is one the model missed."""

    def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
        self.calls += 1
        return [[] for _ in crops]


def test_clear_detections_the_model_missed_are_kept_with_a_low_score(clip, tmp_path):
    video, truth = clip
    config = SegmentConfig(every=5, recheck_frames=0)
    kept = COCO(str(segment_videos([video], BlindModel(), tmp_path / "on", config)))
    frames = kept.dataset["images"]
    assert len(frames) == 18
    for img in frames:
        swimmer = truth[img["frame_index"]][1]
        masks = [(kept.annToMask(a) > 0, a["score"]) for a in kept.imgToAnns[img["id"]]]
        assert any((m & swimmer).sum() / (m | swimmer).sum() > 0.8 for m, _ in masks)
        assert all(score == config.blob_score for _, score in masks)
    for off in (replace(config, blob_contrast=0), replace(config, blob_contrast=200)):
        out = tmp_path / f"off{off.blob_contrast:.0f}"
        assert (
            COCO(str(segment_videos([video], BlindModel(), out, off))).dataset["annotations"] == []
        )


def test_interrupted_run_resumes_without_redoing_frames(clip, tmp_path):
    video, _ = clip
    out = tmp_path / "out"
    full = segment_videos([video], DarkPixelModel(), tmp_path / "full", SegmentConfig())
    segment_videos([video], DarkPixelModel(), out, SegmentConfig())
    lines = (out / "segments.jsonl").read_bytes().splitlines(keepends=True)
    # Simulate a kill after 40 frames (+ the header line), mid-way through writing line 42.
    (out / "segments.jsonl").write_bytes(b"".join(lines[:41]) + lines[41][:25])
    (out / "results.json").unlink()
    first_run = DarkPixelModel()
    segment_videos([video], first_run, tmp_path / "again", SegmentConfig())
    model = DarkPixelModel()
    resumed = segment_videos([video], model, out, SegmentConfig())
    records = [json.loads(line) for line in (out / "segments.jsonl").read_text().splitlines()]
    assert "run" in records[0]
    assert [r["image"]["frame_index"] for r in records[1:]] == list(range(len(lines) - 1))
    # Only the frames after the cut were predicted again.
    assert first_run.calls > len(lines) - 41 >= model.calls > 0
    a = json.loads(full.read_text())
    b = json.loads(resumed.read_text())
    assert len(a["annotations"]) == len(b["annotations"])
    assert a["images"] == b["images"]
    name = b["images"][0]["file_name"]  # a video frame reference, relative to results.json
    assert name.endswith("cam0.avi#frame=0") and (out / name[: -len("#frame=0")]).samefile(video)


def test_resuming_with_other_settings_is_refused(clip, tmp_path):
    video, _ = clip
    out = tmp_path / "out"
    segment_videos([video], DarkPixelModel(), out, SegmentConfig(every=3))
    before = (out / "segments.jsonl").read_bytes()
    with pytest.raises(ValueError, match="other every, score_threshold"):
        segment_videos([video], DarkPixelModel(), out, SegmentConfig(every=2, score_threshold=0.6))
    assert (out / "segments.jsonl").read_bytes() == before  # nothing mixed in
    model = DarkPixelModel()
    segment_videos([video], model, out, SegmentConfig(every=3))  # same settings: nothing to redo
    assert model.calls == 0


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video"):
        find_videos([tmp_path / "missing.mp4"])
    with pytest.raises(FileNotFoundError, match="holds no video files"):
        find_videos([tmp_path])
    (tmp_path / "a.mp4").write_bytes(b"")
    assert find_videos([tmp_path]) == [tmp_path / "a.mp4"]
    with pytest.raises(ValueError, match="every"):
        SegmentConfig(every=0)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        segment_videos([tmp_path / "a.mp4"], DarkPixelModel(), not_a_dir)


def test_overlay_video_has_every_frame_and_outlines(clip, tmp_path):
    video, _ = clip
    out = tmp_path / "out"
    segment_videos([video], DarkPixelModel(), out, SegmentConfig(every=2))
    path = write_overlay_video(video, out / "segments.jsonl", "cam0", out / "cam0_overlay.mp4")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 90
    magenta = lambda f: ((f[..., 0] > 150) & (f[..., 1] < 100) & (f[..., 2] > 150)).sum()  # noqa: E731
    assert magenta(frames[20]) > 20  # processed frame: outlines drawn
    assert magenta(frames[21]) < 5  # skipped frame: untouched


def test_masks_of_static_structures_are_dropped_and_counted(tmp_path):
    """A dark stone is part of the floor: the stand-in finds it in the tiles, and it is
    dropped as a static structure (counted per frame) while the swimming fish is kept."""
    rng = np.random.default_rng(0)
    floor = (150 + rng.integers(-8, 8, (H, W, 1))).astype(np.uint8).repeat(3, axis=2)
    cv2.circle(floor, (130, 30), 6, (30, 30, 30), -1)  # the stone
    writer = cv2.VideoWriter(
        str(tmp_path / "cam0.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 15, (W, H)
    )
    for t in range(40):
        frame = floor.copy()
        frame[_fish_mask(20 + 2 * t, 90)] = 30
        writer.write(frame)
    writer.release()
    config = SegmentConfig(every=5, tile_every=1, refine_pad=0)
    kept = segment_videos([tmp_path / "cam0.avi"], DarkPixelModel(), tmp_path / "on", config)
    off = replace(config, static_fraction=0.0)
    raw = segment_videos([tmp_path / "cam0.avi"], DarkPixelModel(), tmp_path / "off", off)

    def stones(results: Path) -> tuple[int, int, int]:
        data = json.loads(results.read_text())
        anns = data["annotations"]
        stone = sum(1 for a in anns if a["bbox"][0] > 110 and a["bbox"][1] < 50)
        frames_with_fish = len({a["image_id"] for a in anns if a["bbox"][1] > 70})
        return stone, frames_with_fish, sum(i.get("static_dropped", 0) for i in data["images"])

    assert stones(raw) == (8, 8, 0)
    assert stones(kept) == (0, 8, 8)


def test_a_background_model_gets_the_detectors_background_of_each_crop(clip, tmp_path):
    video, truth = clip

    class BackgroundModel(DarkPixelModel):
        background_input = True
        seen: list[float] = []

        def predict(self, crops, regions, score_threshold=0.1, batch_size=8, backgrounds=None):
            assert backgrounds is not None and len(backgrounds) == len(crops)
            for crop, background, region in zip(crops, backgrounds, regions, strict=True):
                assert background.shape == crop.shape and background.dtype == np.uint8
                if region.box_xyxy[1] + region.box_xyxy[3] > 120:  # the always-swimming fish
                    self.seen.append(float(np.percentile(background, 5)))
            return super().predict(crops, regions, score_threshold, batch_size)

    model = BackgroundModel()
    segment_videos([video], model, tmp_path / "bg", SegmentConfig(every=10, recheck_frames=0))
    # its crops' background is the floor (~150 grey) without the fish (30 grey) in it
    assert len(model.seen) >= 8 and min(model.seen) > 100
