"""CopyPaste: pasted fish keep masks and boxes consistent, occlude what lies under them,
faded copies blend over the floor, and prob 0 changes nothing."""

from __future__ import annotations

import pickle

import pytest
import torch
from _model_data import make_tiny_coco
from torchvision import tv_tensors

from aquapose.segmentation.dataset import CopyPaste, CropDataset
from aquapose.segmentation.masks import mask_to_box_xyxy

S = 48
FISH_RGB = torch.tensor([0.9, 0.1, 0.2])


def _sample(masks: list[torch.Tensor], trusted: list[bool] | None = None):  # type: ignore[no-untyped-def]
    image = tv_tensors.Image(torch.full((3, S, S), 0.3))
    stacked = (
        torch.stack(masks).to(torch.uint8) if masks else torch.zeros(0, S, S, dtype=torch.uint8)
    )
    boxes = [torch.from_numpy(mask_to_box_xyxy(m.numpy())).float() for m in masks]
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.stack(boxes) if boxes else torch.zeros(0, 4), format="XYXY", canvas_size=(S, S)
        ),
        "masks": tv_tensors.Mask(stacked),
        "labels": torch.ones(len(masks), dtype=torch.int64),
    }
    if trusted is not None:
        target["masks_trusted"] = torch.tensor(trusted)
    return image, target


def _rect(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(S, S, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _source(h: int, w: int):  # type: ignore[no-untyped-def]
    """A fish of one colour: an (h, w) ellipse-ish blob (corners cut)."""
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[0, 0] = mask[0, -1] = mask[-1, 0] = mask[-1, -1] = False
    rgb = FISH_RGB[:, None, None].expand(3, h, w).clone()
    return lambda: (rgb, mask)


def _check_consistent(image, target) -> None:  # type: ignore[no-untyped-def]
    masks = target["masks"]
    assert isinstance(image, tv_tensors.Image) and isinstance(masks, tv_tensors.Mask)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert len(target["boxes"]) == len(masks) == len(target["labels"])
    for box, mask in zip(target["boxes"], masks, strict=True):
        assert mask.any()
        assert box.tolist() == mask_to_box_xyxy(mask.numpy().astype(bool)).tolist()


def test_pasted_fish_occlude_the_fish_under_them() -> None:
    small = _rect(20, 24, 20, 26)  # hidden entirely by a 40 x 40 paste
    big = _rect(2, 46, 2, 12)  # partly hidden
    paste = CopyPaste(_source(40, 40), prob=1.0, max_fish=1, touch_prob=1.0, min_area=5)
    torch.manual_seed(0)
    image, target = paste(*_sample([small, big]))
    _check_consistent(image, target)
    pasted = target["masks"][-1].bool()
    assert pasted.sum() == 40 * 40 - 4  # the whole fish, on top
    assert len(target["masks"]) == 2  # the small fish was hidden: dropped
    assert torch.equal(target["masks"][0].bool(), big & ~pasted)  # the big one is cut
    assert (big & pasted).any() and (target["masks"][0].bool() & pasted).sum() == 0
    assert torch.allclose(image[:, pasted], FISH_RGB[:, None].expand(3, int(pasted.sum())))
    assert torch.allclose(image[:, ~pasted & ~big], torch.tensor(0.3))  # the rest untouched


def test_pasted_fish_touch_others_and_stay_consistent_over_many_draws() -> None:
    fish = _rect(18, 26, 10, 34)
    paste = CopyPaste(_source(6, 20), prob=1.0, max_fish=3, touch_prob=1.0, min_area=5)
    overlaps = 0
    for seed in range(30):
        torch.manual_seed(seed)
        image, target = paste(*_sample([fish], trusted=[True]))
        _check_consistent(image, target)
        assert target["masks_trusted"].all() and len(target["masks_trusted"]) == len(
            target["masks"]
        )
        masks = target["masks"].bool()
        assert int(masks.sum(dim=0).max()) <= 1  # every pixel belongs to one fish at most
        overlaps += int(not torch.equal(masks[0], fish))  # cut, or hidden and dropped
    assert overlaps >= 10  # touching placement does land on the fish (cut or hidden)


def test_nothing_is_pasted_over_box_only_fish_or_ignore_regions() -> None:
    box_only = _rect(0, 48, 0, 30)
    paste = CopyPaste(_source(6, 12), prob=1.0, max_fish=3, touch_prob=1.0)
    for seed in range(10):
        torch.manual_seed(seed)
        sample = _sample([box_only], trusted=[False])
        sample[1]["ignore_boxes"] = torch.tensor([[30.0, 0.0, 48.0, 20.0]])
        image, target = paste(*sample)
        _check_consistent(image, target)
        assert torch.equal(target["masks"][0].bool(), box_only)
        assert target["masks_trusted"].tolist()[0] is False
        for m in target["masks"][1:].bool():
            assert not (m & box_only).any() and not m[:20, 30:].any()


def test_faded_copies_blend_over_the_floor_clear_of_other_fish() -> None:
    fish = _rect(10, 20, 10, 40)
    paste = CopyPaste(_source(8, 16), prob=1.0, max_fish=1, fade_prob=1.0, fade_alpha=(0.3, 0.5))
    for seed in range(10):
        torch.manual_seed(seed)
        image, target = paste(*_sample([fish]))
        _check_consistent(image, target)
        assert len(target["masks"]) == 2 and torch.equal(target["masks"][0].bool(), fish)
        faded = target["masks"][1].bool()
        assert not (faded & fish).any()
        alpha = (image[:, faded] - 0.3) / (FISH_RGB[:, None] - 0.3)
        assert torch.allclose(alpha, alpha[0, 0]) and 0.3 <= float(alpha[0, 0]) <= 0.5


def test_prob_zero_returns_the_inputs_and_draws_nothing() -> None:
    paste = CopyPaste(_source(6, 12), prob=0.0)
    sample = _sample([_rect(5, 9, 5, 20)])
    state = torch.get_rng_state()
    image, target = paste(*sample)
    assert image is sample[0] and target is sample[1]
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="prob must be in \\[0, 1\\]"):
        CopyPaste(_source(6, 12), prob=1.5)


def test_dataset_copy_paste_off_is_bit_identical_and_on_is_consistent(tmp_path) -> None:
    coco = make_tiny_coco(tmp_path, num_frames=4, num_negatives=1, fish_per_frame=2)
    plain = CropDataset(coco, crop_size=64, augment=True, seed=3)
    off = CropDataset(coco, crop_size=64, augment=True, seed=3, copy_paste_prob=0.0)
    on = CropDataset(coco, crop_size=64, augment=True, seed=3, copy_paste_prob=1.0)
    assert off._copy_paste is None and on._copy_paste is not None
    more = 0
    for key in [(0, i) for i in range(len(plain))] + [(1, 2)]:
        a, ta = plain[key]
        b, tb = off[key]
        assert torch.equal(a, b) and all(torch.equal(ta[k], tb[k]) for k in ("boxes", "masks"))
        c, tc = on[key]
        assert c.shape == a.shape and tc["masks"].dtype == torch.uint8
        for box, mask in zip(tc["boxes"], tc["masks"], strict=True):
            assert box.tolist() == mask_to_box_xyxy(mask.numpy().astype(bool)).tolist()
        more += len(tc["labels"]) - len(ta["labels"])
        again, t_again = on[key]  # seeded per (epoch, index)
        assert torch.equal(c, again) and torch.equal(tc["masks"], t_again["masks"])
    assert more > 0
    # DataLoader workers get the dataset pickled, copy-paste included
    clone = pickle.loads(pickle.dumps(on))
    assert torch.equal(clone[(0, 1)][0], on[(0, 1)][0])
