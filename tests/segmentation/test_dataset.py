"""CropDataset: samples, neighbours as targets, negatives, seeded augmentation that keeps
image, masks and boxes aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _model_data import ellipse_mask, make_tiny_coco
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from aquapose.segmentation.crops import compute_crop_region, extract_crop
from aquapose.segmentation.dataset import CropDataset, RandomRot90, build_augmentation, collate_fn
from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.io.files import write_image
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance


def _check_sample(image: torch.Tensor, target: dict, crop_size: int) -> None:
    assert image.dtype == torch.float32 and image.shape == (3, crop_size, crop_size)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    n = len(target["labels"])
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (n, 4)
    assert target["labels"].dtype == torch.int64 and bool((target["labels"] == 1).all())
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (
        n,
        crop_size,
        crop_size,
    )
    for box, mask in zip(target["boxes"], target["masks"], strict=True):
        # the box is exactly the mask's tight box, whatever the augmentation did
        assert box.tolist() == mask_to_box_xyxy(mask.numpy().astype(bool)).tolist()


def test_one_sample_per_fish_plus_negatives(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=3, num_negatives=2, fish_per_frame=2)
    dataset = CropDataset(coco, crop_size=64)
    assert len(dataset) == 3 * 2 + 2 and dataset.num_negatives == 2
    for i in range(len(dataset)):
        image, target = dataset[i]
        _check_sample(image, target, 64)
        assert target["image_id"] == i
        if dataset.samples[i][1] < 0:
            assert len(target["labels"]) == 0  # negative kept, with an empty target
        else:
            assert len(target["labels"]) >= 1


def _two_fish_frame(tmp_path, second_centre=(70, 30)):
    """A 100x60 frame: fish A centred at (30, 30), fish B elsewhere; red fish on grey."""
    image = np.full((60, 100, 3), 40, np.uint8)
    a = ellipse_mask((60, 100), (30, 30), (12, 5), 0)
    b = ellipse_mask((60, 100), second_centre, (12, 5), 90)
    image[a | b] = (0, 0, 255)
    write_image(tmp_path / "f.png", image)
    frame = AnnotatedFrame(
        1,
        "f.png",
        100,
        60,
        "cam0",
        0,
        instances=(
            Instance(mask_to_box_xyxy(a), encode_rle(a)),
            Instance(mask_to_box_xyxy(b), encode_rle(b)),
        ),
    )
    write_coco([frame], tmp_path / "c.json")
    return tmp_path / "c.json", image, a, b


def test_other_fish_in_the_crop_are_clipped_targets(tmp_path):
    coco, image, a, b = _two_fish_frame(tmp_path, second_centre=(53, 30))
    dataset = CropDataset(coco, crop_size=48)
    sample = dataset.crop(0)  # centred on fish A; B is cut by the crop's right edge
    region = compute_crop_region(mask_to_box_xyxy(a), (100, 60), 48)
    assert sample.region == region
    np.testing.assert_array_equal(sample.image_bgr, extract_crop(image, region))
    assert len(sample.crop_masks) == 2
    np.testing.assert_array_equal(sample.crop_masks[0], extract_crop(a, region))
    clipped_b = extract_crop(b, region)
    assert 0 < clipped_b.sum() < b.sum()
    np.testing.assert_array_equal(sample.crop_masks[1], clipped_b)
    _, target = dataset[0]
    np.testing.assert_array_equal(target["masks"][1].numpy().astype(bool), clipped_b)


def test_fish_with_a_tiny_visible_part_is_not_a_target(tmp_path):
    coco, _, a, b = _two_fish_frame(tmp_path, second_centre=(53, 30))
    region = compute_crop_region(mask_to_box_xyxy(a), (100, 60), 48)
    visible_b = int(extract_crop(b, region).sum())
    assert len(CropDataset(coco, crop_size=48, min_visible_area=visible_b).crop(0).crop_masks) == 2
    assert (
        len(CropDataset(coco, crop_size=48, min_visible_area=visible_b + 1).crop(0).crop_masks) == 1
    )


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = x[..., ::-1] if flip else x
    return np.rot90(y, k, axes=(-2, -1))


def test_augmentation_keeps_image_masks_and_boxes_aligned(tmp_path):
    coco, *_ = _two_fish_frame(tmp_path, second_centre=(53, 30))
    plain = CropDataset(coco, crop_size=48)
    aug = CropDataset(coco, crop_size=48, augment=True, max_shift=0.0, brightness=0, contrast=0)
    image0, target0 = plain[0]
    base_img, base_masks = image0.numpy(), target0["masks"].numpy()
    seen = set()
    for epoch in range(12):
        image, target = aug[(epoch, 0)]
        _check_sample(image, target, 48)
        img, masks = image.numpy(), target["masks"].numpy()
        # the result is one of the 8 flips/rotations, the same one for image and masks
        found = [
            (k, f)
            for k in range(4)
            for f in (False, True)
            if np.array_equal(img, _dihedral(base_img, k, f))
            and np.array_equal(masks, _dihedral(base_masks, k, f))
        ]
        assert found, f"epoch {epoch}: image and masks do not match one dihedral transform"
        seen.add(found[0])
        # fish pixels are red (RGB) exactly where the masks say
        fish = masks.any(axis=0)
        assert np.all(img[0][fish] == 1.0) and np.all(img[2][fish] == 0.0)
    assert len(seen) >= 4  # the transforms really vary with the epoch


def test_each_geometric_transform_moves_boxes_with_masks():
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, 1:3, 6:9] = 1  # rows 1-2, columns 6-8
    image = tv_tensors.Image(torch.from_numpy(np.repeat(mask, 3, 0)).float())
    masks = tv_tensors.Mask(torch.from_numpy(mask))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[6.0, 1.0, 9.0, 3.0]]), format="XYXY", canvas_size=(10, 10)
    )
    steps = [
        lambda x: F.horizontal_flip(x),
        lambda x: F.vertical_flip(x),
        lambda x: RandomRot90().transform(x, {"angle": 90.0}),
        lambda x: RandomRot90().transform(x, {"angle": 270.0}),
    ]
    for step in steps:
        image, masks, boxes = step(image), step(masks), step(boxes)
        m = masks[0].numpy().astype(bool)
        assert np.array_equal(image[0].numpy() > 0, m)
        assert np.allclose(boxes[0].tolist(), mask_to_box_xyxy(m).tolist(), atol=1e-4)


def test_degenerate_boxes_are_dropped_by_the_pipeline():
    image = tv_tensors.Image(torch.zeros(3, 16, 16))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[2.0, 2.0, 8.0, 8.0], [5.0, 5.0, 5.0, 9.0]]),
        format="XYXY",
        canvas_size=(16, 16),
    )
    masks = tv_tensors.Mask(torch.zeros(2, 16, 16, dtype=torch.uint8))
    _, target = build_augmentation()(
        image, {"boxes": boxes, "masks": masks, "labels": torch.tensor([1, 1])}
    )
    assert len(target["boxes"]) == len(target["masks"]) == len(target["labels"]) == 1


def test_augmentation_is_seeded_and_leaves_the_global_rng_alone(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=2)
    a = CropDataset(coco, crop_size=64, augment=True, seed=3)
    b = CropDataset(coco, crop_size=64, augment=True, seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = a[(2, 1)]
    assert torch.equal(torch.get_rng_state(), before)
    second = b[(2, 1)]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1]["masks"], second[1]["masks"])
    b.set_epoch(2)
    assert torch.equal(b[1][0], first[0])
    different = [not torch.equal(a[(e, 1)][0], first[0]) for e in range(3, 8)]
    assert any(different)


def test_negative_window_is_deterministic_and_inside_the_frame(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1, num_negatives=1, size_wh=(120, 90))
    dataset = CropDataset(coco, crop_size=64, augment=True)
    index = dataset.samples.index((1, -1))
    region = dataset.crop(index).region
    assert region.edge == "inside" and region.size == 64
    assert torch.equal(dataset[(0, index)][0], dataset[(0, index)][0])


def test_collate_fn_transposes_the_batch(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1)
    dataset = CropDataset(coco, crop_size=64)
    images, targets = collate_fn([dataset[0], dataset[1]])
    assert isinstance(images, tuple) and len(images) == 2 and len(targets) == 2
    assert targets[1]["image_id"] == 1


def test_bad_inputs_raise(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1)
    with pytest.raises(ValueError, match="crop_size must be an int >= 32"):
        CropDataset(coco, crop_size=16)
    with pytest.raises(ValueError, match="max_shift must be in"):
        CropDataset(coco, max_shift=0.7)
    with pytest.raises(IndexError, match="out of range"):
        CropDataset(coco, crop_size=64)[99]
    bad = AnnotatedFrame(1, "x.png", 50, 50, "cam0", 0, extra={"ignore_regions_xyxy": [1, 2]})
    write_coco([bad], tmp_path / "bad.json")
    with pytest.raises(ValueError, match="'ignore_regions_xyxy' must be a list of \\[x0, y0"):
        CropDataset(tmp_path / "bad.json")


def test_image_size_mismatch_is_reported(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1, size_wh=(96, 80))
    write_image(tmp_path / "frames" / "000.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="image is 10x10"):
        CropDataset(coco, crop_size=64)[0]


@pytest.mark.slow
def test_spawned_workers_give_the_same_batches(tmp_path):
    from aquapose.segmentation.training import EpochSampler

    coco = make_tiny_coco(tmp_path, num_frames=2)
    dataset = CropDataset(coco, crop_size=64, augment=True)
    sampler = EpochSampler(len(dataset), seed=0)
    sampler.set_epoch(1)

    def batches(workers: int):
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=2,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=workers,
            multiprocessing_context="spawn" if workers else None,
        )
        return list(loader)

    inline, spawned = batches(0), batches(1)
    assert len(inline) == len(spawned) == 3
    for (img_a, tgt_a), (img_b, tgt_b) in zip(inline, spawned, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(img_a, img_b, strict=True))
        assert all(torch.equal(x["masks"], y["masks"]) for x, y in zip(tgt_a, tgt_b, strict=True))


def test_crops_touching_rejected_detections_are_skipped(tmp_path):
    coco, image, a, b = _two_fish_frame(tmp_path, second_centre=(85, 30))
    import json

    data = json.loads(coco.read_text())
    # fish B was rejected by the pseudo-labeler: it may be an unlabelled fish
    data["images"][0]["rejected_boxes_xyxy"] = [mask_to_box_xyxy(b).tolist(), [0.0, 0.0, 1.0, 1.0]]
    coco.write_text(json.dumps(data))
    dataset = CropDataset(coco, crop_size=48)
    centres = [dataset.crop(i).region for i in range(len(dataset))]
    assert len(dataset) == 1 and dataset.num_skipped == 1  # B's crop is skipped, A's kept
    assert centres[0] == compute_crop_region(mask_to_box_xyxy(a), (100, 60), 48)
    # the tiny 1x1 rejected box is noise and does not count; the key can be turned off
    assert len(CropDataset(coco, crop_size=48, ignore_boxes_key=None)) == 2
    # box supervision: B's rejected box becomes a box-only fish with a crop of its own
    boxed = CropDataset(coco, crop_size=48, rejected_as="box")
    assert len(boxed) == 3 and boxed.num_skipped == 0 and boxed.partial
    _, target = boxed[2]
    untrusted = target["boxes"][~target["masks_trusted"]]
    box_b = boxed.crop(2).region.frame_to_crop_xyxy(mask_to_box_xyxy(b))
    assert len(untrusted) == 1
    np.testing.assert_allclose(untrusted[0].numpy(), box_b, atol=1.0)


def test_crops_slide_off_rejected_detections(tmp_path):
    coco, image, a, b = _two_fish_frame(tmp_path, second_centre=(56, 30))
    import json

    box_a, box_b = mask_to_box_xyxy(a), mask_to_box_xyxy(b)
    data = json.loads(coco.read_text())
    data["images"][0]["rejected_boxes_xyxy"] = [box_b.tolist()]
    coco.write_text(json.dumps(data))
    centred = compute_crop_region(box_a, (100, 60), 48)
    assert centred.box_xyxy[2] > box_b[0]  # the centred window shows part of B
    dataset = CropDataset(coco, crop_size=48, augment=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1  # A's crop kept, B's skipped
    window = dataset.crop(0).region.box_xyxy
    assert window[2] <= box_b[0] and window[0] <= box_a[0] and box_a[2] <= window[2]
    # augmented windows stay off B too: only A is ever a target
    for epoch in range(12):
        _, target = dataset[(epoch, 0)]
        assert len(target["masks"]) == 1
    assert len(CropDataset(coco, crop_size=48, augment=True, ignore_boxes_key=None)) == 2
    # rejected_as="ignore": no crop moves or is skipped, B's box is a region without loss
    ignoring = CropDataset(coco, crop_size=48, augment=True, rejected_as="ignore")
    assert len(ignoring) == 2 and ignoring.num_skipped == 0 and ignoring.partial
    assert ignoring.crop(0).region == centred
    _, target = ignoring[(0, 0)]
    assert len(target["ignore_boxes"]) == 1 and target["masks_trusted"].all()
    with pytest.raises(ValueError, match="rejected_as must be 'avoid', 'ignore' or 'box'"):
        CropDataset(coco, crop_size=48, rejected_as="skip")


def test_frame_cache_is_bounded_and_changes_nothing(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=3)
    cached = CropDataset(coco, crop_size=64, augment=True)
    frame_bytes = cached._image(0).nbytes
    small = CropDataset(coco, crop_size=64, augment=True, cache_mb=1.5 * frame_bytes / 2**20)
    for index in range(len(cached)):
        image_a, target_a = cached[(2, index)]
        image_b, target_b = small[(2, index)]
        assert torch.equal(image_a, image_b) and torch.equal(target_a["masks"], target_b["masks"])
        assert small._cached_bytes <= 1.5 * frame_bytes
    assert len(cached._cache) == len(cached.frames) > 1 and len(small._cache) == 1


def _partial_frame(tmp_path):
    """A 100x60 frame: fish A (trusted mask), fish B (box only, no mask), fish C (a mask
    marked untrusted) and an ignore region (a blob of several fish)."""
    image = np.full((60, 100, 3), 40, np.uint8)
    a = ellipse_mask((60, 100), (30, 30), (12, 5), 0)
    c = ellipse_mask((60, 100), (75, 15), (10, 4), 0)
    image[a | c] = (0, 0, 255)
    write_image(tmp_path / "f.png", image)
    frame = AnnotatedFrame(
        1,
        "f.png",
        100,
        60,
        "cam0",
        0,
        instances=(
            Instance(mask_to_box_xyxy(a), encode_rle(a)),
            Instance(np.array([40.5, 38.2, 58.7, 47.9])),  # box-only
            Instance(mask_to_box_xyxy(c), encode_rle(c), extra={"mask_trusted": False}),
        ),
        extra={"ignore_regions_xyxy": [[5.0, 40.0, 25.0, 58.0]]},
    )
    write_coco([frame], tmp_path / "p.json")
    return tmp_path / "p.json", a


def test_box_only_fish_and_ignore_regions_reach_the_targets(tmp_path):
    coco, a = _partial_frame(tmp_path)
    dataset = CropDataset(coco, crop_size=64, margin=2.0)
    assert dataset.partial and len(dataset) == 3  # box-only fish are crop centres too
    sample = dataset.crop(0)
    assert len(sample.crop_masks) == 1  # only trusted masks are ground truth (evaluation)
    region = sample.region  # a 125 px window holding all of them, scaled to 64
    _, target = dataset[0]
    assert target["masks_trusted"].tolist() == [True, False, False]

    def rounded_out(frame_box: list[float]) -> np.ndarray:
        box = region.frame_to_crop_xyxy(frame_box)
        return np.concatenate([np.floor(box[:2]), np.ceil(box[2:])]).clip(0, 64)

    assert target["boxes"][1].tolist() == rounded_out([40.5, 38.2, 58.7, 47.9]).tolist()
    ignore = rounded_out([5.0, 40.0, 25.0, 58.0])
    assert target["ignore_boxes"].tolist() == [ignore.tolist()]
    np.testing.assert_array_equal(target["masks"][0].numpy().astype(bool), sample.crop_masks[0])
    # augmentation moves boxes, masks and ignore regions together
    aug = CropDataset(coco, crop_size=64, margin=2.0, augment=True, max_shift=0.0)
    areas = set()
    for epoch in range(8):
        image, target = aug[(epoch, 0)]
        _check_sample(image, target, 64)  # every box is its mask's tight box
        assert target["masks_trusted"].tolist() == [True, False, False]
        (x0, y0, x1, y1) = target["ignore_boxes"][0].tolist()
        areas.add((x1 - x0) * (y1 - y0))
        assert target["masks"][0].sum() == int(sample.crop_masks[0].sum())
    assert areas == {float((ignore[2] - ignore[0]) * (ignore[3] - ignore[1]))}
    # copy-paste never cuts a box-only fish or lands in an ignore region
    pasted = CropDataset(
        coco, crop_size=64, margin=2.0, augment=True, copy_paste_prob=1.0, copy_paste_max=3
    )
    for epoch in range(6):
        image, target = pasted[(epoch, 0)]
        _check_sample(image, target, 64)
        trusted = target["masks_trusted"]
        assert len(trusted) == len(target["masks"]) and (~trusted).sum() == 2
        for box, mask in zip(target["boxes"][~trusted], target["masks"][~trusted], strict=True):
            assert mask.sum() == (box[2] - box[0]) * (box[3] - box[1])  # still whole boxes
        (x0, y0, x1, y1) = (int(v) for v in target["ignore_boxes"][0].tolist())
        assert not target["masks"][trusted][:, y0:y1, x0:x1].any()
    # the model trains on it
    torch.manual_seed(0)
    from aquapose.segmentation.model import LIGHT_ARCH, HeadSettings, build_model

    model = build_model(LIGHT_ARCH, crop_size=64, settings=HeadSettings(box_detections_per_img=2))
    images, targets = collate_fn([aug[(0, 0)], aug[(0, 1)]])
    losses = model.train()(list(images), list(targets))
    assert all(torch.isfinite(v) for v in losses.values())


def test_backgrounds_add_the_difference_channels_augmented_alike(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=3, num_negatives=1)
    background = np.random.default_rng(1).integers(0, 60, (80, 96, 3), dtype=np.uint8)
    write_image(tmp_path / "bg" / "cam0.png", background)
    plain = CropDataset(coco, crop_size=48, augment=True, seed=3)
    with_bg = CropDataset(coco, crop_size=48, augment=True, seed=3, backgrounds=tmp_path / "bg")
    still = CropDataset(coco, crop_size=48, augment=False, backgrounds=tmp_path / "bg")
    for i in range(len(plain)):
        image, target = with_bg[i]
        rgb, rgb_target = plain[i]
        assert image.shape == (6, 48, 48)
        torch.testing.assert_close(image[:3], rgb)  # the same augmentation
        torch.testing.assert_close(target["masks"], rgb_target["masks"])
        sample = still.crop(i)
        expected = extract_crop(background, sample.region)
        np.testing.assert_array_equal(sample.background_bgr, expected)
        diff = still[i][0][3:]
        frame_rgb = torch.from_numpy(sample.image_bgr[:, :, ::-1].copy()).permute(2, 0, 1) / 255
        bg_rgb = torch.from_numpy(expected[:, :, ::-1].copy()).permute(2, 0, 1) / 255
        torch.testing.assert_close(diff, frame_rgb.float() - bg_rgb.float())


def test_a_missing_or_mis_sized_background_is_named(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1, num_negatives=0)
    (tmp_path / "bg").mkdir()
    with pytest.raises(FileNotFoundError, match=r"cam0\.png: no background for camera 'cam0'"):
        CropDataset(coco, crop_size=48, backgrounds=tmp_path / "bg")[0]
    write_image(tmp_path / "bg" / "cam0.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"background is 10x10, but .* is 96x80"):
        CropDataset(coco, crop_size=48, backgrounds=tmp_path / "bg")[0]
