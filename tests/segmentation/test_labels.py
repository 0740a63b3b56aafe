"""filter_mask, to_coco_dataset (negatives), stratified_split, contact_sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import read_image, write_image
from aquapose.segmentation.labels import (
    FilterConfig,
    SheetItem,
    background_contrast,
    contact_sheet,
    filter_mask,
    fish_areas,
    relative_path,
    stratified_split,
    to_coco_dataset,
    with_reviewed,
)
from aquapose.segmentation.masks import encode_rle
from aquapose.segmentation.types import AnnotatedFrame, Detection, Instance


def _det(box=(10, 10, 30, 20), score=0.9) -> Detection:
    return Detection(box, score, "cam0", 0)


def _mask(area: int, shape=(40, 40)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m.reshape(-1)[:area] = True
    return m


def test_filter_mask_reasons_in_order() -> None:
    cfg = FilterConfig(min_score=0.5, min_area=10, min_fill=0.2, max_fill=0.8)
    box_area = 20 * 10
    assert filter_mask(_mask(100), _det(), cfg) is None
    assert filter_mask(_mask(100), _det(score=0.4), cfg) == "low_score"
    assert filter_mask(_mask(0), _det(score=0.4), cfg) == "low_score"  # first check wins
    assert filter_mask(_mask(0), _det(), cfg) == "small_area"
    assert filter_mask(_mask(9), _det(), cfg) == "small_area"
    assert filter_mask(_mask(int(0.19 * box_area)), _det(), cfg) == "low_fill"
    assert filter_mask(_mask(int(0.81 * box_area)), _det(), cfg) == "high_fill"
    assert filter_mask(_mask(100), _det()) is None  # defaults


def test_filter_mask_low_contrast_and_background_contrast() -> None:
    cfg = FilterConfig(min_score=0.5, min_area=10, min_fill=0.2, max_fill=0.8, min_contrast=0.1)
    assert filter_mask(_mask(100), _det(), cfg, contrast=0.05) == "low_contrast"
    assert filter_mask(_mask(100), _det(), cfg, contrast=0.2) is None
    assert filter_mask(_mask(100), _det(), cfg) is None  # no background: check skipped
    background = np.full((8, 8, 3), 100, np.uint8)
    frame = background.copy()
    frame[:, 4:] = (100, 100, 150)  # colour change on the right half
    contrast = background_contrast(frame, background)
    assert contrast.shape == (8, 8) and contrast.dtype == np.float32
    assert contrast[:, :2].max() < 1e-6 and contrast[:, 6:].min() > 0.45
    with pytest.raises(ValueError, match="one shape"):
        background_contrast(frame, background[:4])


def test_min_area_follows_the_fish_of_the_video() -> None:
    cfg = FilterConfig(min_area=100, min_area_ratio=0.25, min_fill=0.0, max_fill=1.0)
    small_fish = _mask(60)  # an 18 px zebrafish
    assert filter_mask(small_fish, _det(), cfg) == "small_area"  # no video size known
    assert filter_mask(small_fish, _det(), cfg, fish_area=80.0) is None  # 60 >= 0.25 x 80
    assert filter_mask(_mask(19), _det(), cfg, fish_area=80.0) == "small_area"  # a speck
    # large fish never raise the threshold above min_area
    assert filter_mask(_mask(100), _det(), cfg, fish_area=4000.0) is None
    no_ratio = FilterConfig(min_area=100, min_area_ratio=0.0, min_fill=0.0, max_fill=1.0)
    assert filter_mask(small_fish, _det(), no_ratio, fish_area=80.0) == "small_area"


def test_fish_areas_are_per_camera_medians() -> None:
    def frame(camera: str, areas: list[int]) -> AnnotatedFrame:
        insts = tuple(
            Instance(np.array([0.0, 0, 40, 40]), encode_rle(_mask(a)), 1.0) for a in areas
        )
        return AnnotatedFrame(1, "a.png", 40, 40, camera, 0, instances=insts)

    sizes = fish_areas([frame("a", [10, 50, 0]), frame("a", [60]), frame("b", [200])])
    assert sizes == {"a": 50.0, "b": 200.0}  # empty masks do not count


def test_filter_config_validation() -> None:
    with pytest.raises(ValueError, match="min_fill < max_fill"):
        FilterConfig(min_fill=0.6, max_fill=0.5)
    with pytest.raises(ValueError, match="min_score"):
        FilterConfig(min_score=1.5)
    with pytest.raises(ValueError, match="0/1 or 0/255"):
        filter_mask(np.full((4, 4), 7, np.uint8), _det())


def _frames(
    tmp_path: Path, cameras=("cam0", "cam1"), n=10, size=(320, 300)
) -> list[AnnotatedFrame]:
    """Frames on disk (under tmp_path/det/frames) with one fish each, some rejected, some empty."""
    rng = np.random.default_rng(0)
    w, h = size
    frames = []
    image_id = 1
    for cam in cameras:
        for i in range(n):
            rel = f"frames/{cam}/{i:06d}.png"
            write_image(tmp_path / "det" / rel, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            instances = []
            if i % 5 != 4:  # every 5th frame has no detection
                m = np.zeros((h, w), bool)
                m[140:160, 150:190] = True
                accepted = i % 5 != 3
                instances.append(
                    Instance(
                        [150, 140, 190, 160],
                        encode_rle(m),
                        score=0.9,
                        extra={
                            "accepted": accepted,
                            "reject_reason": None if accepted else "low_fill",
                        },
                    )
                )
            frames.append(
                AnnotatedFrame(image_id, rel, w, h, cam, i, f"{cam}.mp4", tuple(instances))
            )
            image_id += 1
    return frames


def test_to_coco_dataset_positives_negatives_and_paths(tmp_path: Path) -> None:
    frames = _frames(tmp_path)
    out = tmp_path / "out"
    data = to_coco_dataset(
        frames, out, tmp_path / "det", negative_fraction=0.3, crop_size=64, seed=1
    )
    positives = [f for f in data if not f.extra.get("negative")]
    negatives = [f for f in data if f.extra.get("negative")]
    assert len(positives) == 12  # 20 frames - 4 empty - 4 with only a rejected mask
    assert all(inst.extra["accepted"] for f in positives for inst in f.instances)
    assert len(negatives) == round(0.3 * 12 / 0.7) == 5
    empty = [f for f in negatives if "crop_box_xyxy" not in f.extra]
    crops = [f for f in negatives if "crop_box_xyxy" in f.extra]
    assert len(empty) == 4 and len(crops) == 1  # empty frames first, then background crops
    for f in data:  # every file_name resolves from out/
        assert f.image_path.startswith("../det/") or f.image_path.startswith("negatives/")
        assert (out / f.image_path).is_file()
    for f in crops:
        x0, y0, x1, y1 = f.extra["crop_box_xyxy"]
        assert (f.width, f.height) == (64, 64) and read_image(out / f.image_path).shape == (
            64,
            64,
            3,
        )
        # away from the fish box [150, 140, 190, 160] by the clearance (16 px)
        assert x1 <= 150 - 16 or x0 >= 190 + 16 or y1 <= 140 - 16 or y0 >= 160 + 16
        src = read_image(out / f.extra["source_file_name"])
        assert np.array_equal(src[y0:y1, x0:x1], read_image(out / f.image_path))
        assert f.video and f.camera_id in ("cam0", "cam1")
    assert len({f.image_id for f in data}) == len(data)
    write_coco(data, out / "all.json")
    assert len(COCO(str(out / "all.json")).getImgIds()) == len(data)  # pycocotools loads it
    again = to_coco_dataset(
        frames, out, tmp_path / "det", negative_fraction=0.3, crop_size=64, seed=1
    )
    assert [f.image_path for f in again] == [f.image_path for f in data]  # seeded


def test_to_coco_dataset_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative_fraction"):
        to_coco_dataset([], tmp_path, tmp_path, negative_fraction=1.0)


def test_stratified_split_per_camera_no_frame_in_both(tmp_path: Path) -> None:
    frames = _frames(tmp_path, cameras=("a", "b", "c"), n=10)
    data = to_coco_dataset(
        frames, tmp_path / "o", tmp_path / "det", negative_fraction=0.3, crop_size=64
    )
    train, val = stratified_split(data, 0.2, seed=3)
    assert len(train) + len(val) == len(data)
    for cam in ("a", "b", "c"):
        keys = {f.frame_index for f in data if f.camera_id == cam}
        val_keys = {f.frame_index for f in val if f.camera_id == cam}
        assert len(val_keys) == round(0.2 * len(keys))  # 80/20 per camera
    key = lambda f: (f.camera_id, f.video, f.frame_index)  # noqa: E731
    assert not {key(f) for f in train} & {key(f) for f in val}  # crops go with their frame
    again = stratified_split(data, 0.2, seed=3)
    assert [f.image_id for f in again[1]] == [f.image_id for f in val]
    other = stratified_split(data, 0.2, seed=4)
    assert [f.image_id for f in other[1]] != [f.image_id for f in val]


def test_stratified_split_blocks_and_small_cameras(tmp_path: Path) -> None:
    frames = _frames(tmp_path, cameras=("a",), n=10)
    train, val = stratified_split(frames, 0.2, seed=0, block_frames=5)
    assert len(val) == 5 and len({f.frame_index // 5 for f in val}) == 1
    one = [frames[0]]
    assert stratified_split(one, 0.2) == (one, [])
    two = frames[:2]
    assert len(stratified_split(two, 0.2)[1]) == 1  # at least one val frame per camera
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(frames, 1.0)
    with pytest.raises(ValueError, match="block_frames"):
        stratified_split(frames, 0.2, block_frames=0)


def test_relative_path(tmp_path: Path) -> None:
    assert relative_path(tmp_path / "det" / "f.png", tmp_path / "out") == "../det/f.png"


def test_contact_sheet_draws_outlines() -> None:
    frame = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    items = [
        SheetItem(frame, mask, np.array([25.0, 15, 55, 45]), "ok", True),
        SheetItem(frame, mask, np.array([25.0, 15, 55, 45]), "low_fill", False),
    ]
    sheet = contact_sheet(items, tile=64, columns=3)
    assert sheet.shape == (64, 192, 3)
    green = (sheet[:, :64, 1] == 255) & (sheet[:, :64, 2] == 0)
    red = (sheet[:, 64:128, 2] == 255) & (sheet[:, 64:128, 1] == 0)
    assert green.any() and red.any()
    assert (sheet[:, 128:] == 32).all()  # empty tile stays background
    with pytest.raises(ValueError, match="tile"):
        contact_sheet(items, tile=8)


def test_written_dataset_round_trips(tmp_path: Path) -> None:
    frames = _frames(tmp_path, n=5)
    out = tmp_path / "out"
    data = to_coco_dataset(frames, out, tmp_path / "det", crop_size=64)
    write_coco(data, out / "train.json")
    back = read_coco(out / "train.json")
    assert [f.image_path for f in back] == [f.image_path for f in data]
    assert [f.extra.get("negative", False) for f in back] == [
        f.extra.get("negative", False) for f in data
    ]


def test_rejected_boxes_carry_their_reasons(tmp_path: Path) -> None:
    write_image(tmp_path / "f.png", np.zeros((40, 40, 3), np.uint8))
    kept = Instance([0, 0, 10, 10], encode_rle(_mask(50)), score=0.9, extra={"accepted": True})
    dropped = Instance(
        [20, 20, 30, 30],
        encode_rle(_mask(5)),
        extra={"accepted": False, "reject_reason": "small_area"},
    )
    frame = AnnotatedFrame(1, "f.png", 40, 40, "cam0", 0, instances=(kept, dropped))
    (out,) = to_coco_dataset([frame], tmp_path, tmp_path, negative_fraction=0.0)
    assert out.extra["rejected_boxes_xyxy"] == [[20.0, 20.0, 30.0, 30.0]]
    assert out.extra["rejected_reasons"] == ["small_area"]


def test_with_reviewed_replaces_frames_by_image_file_and_adds_the_others(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_image(tmp_path / "frames" / f"{name}.png", np.zeros((40, 40, 3), np.uint8))
    fish = Instance([0, 0, 10, 10], encode_rle(_mask(50)), score=0.9)
    base = [
        AnnotatedFrame(1, "../frames/a.png", 40, 40, "cam0", 0, instances=(fish,)),
        AnnotatedFrame(2, "../frames/b.png", 40, 40, "cam0", 1, instances=(fish,)),
    ]
    human = Instance([0, 0, 20, 20], encode_rle(_mask(400)))
    reviewed = [  # absolute paths, as imported without an output file; ids of another file
        AnnotatedFrame(
            9, str(tmp_path / "frames/b.png"), 40, 40, "cam0", 1, instances=(human, human)
        ),
        AnnotatedFrame(2, str(tmp_path / "frames/c.png"), 40, 40, "cam0", 2, instances=()),
    ]
    merged = with_reviewed(base, tmp_path / "labels", reviewed, tmp_path, tmp_path / "review")
    assert (merged.replaced, merged.added) == (1, 1)
    assert [f.image_id for f in merged.frames] == [1, 2, 3]  # kept base id; a free id
    assert [f.image_path for f in merged.frames] == [
        "../frames/a.png",
        "../frames/b.png",
        "../frames/c.png",
    ]
    assert [len(f.instances) for f in merged.frames] == [1, 2, 0]
    with pytest.raises(ValueError, match="are both"):
        with_reviewed(base, tmp_path / "labels", reviewed * 2, tmp_path, tmp_path)
