"""Partial supervision: boxes for every fish, masks only where trusted, ignore regions."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from aquapose.segmentation.model import ARCHITECTURES, LIGHT_ARCH, HeadSettings, build_model
from aquapose.segmentation.partial_loss import (
    PartialRoIHeads,
    PartialRPN,
    box_ioa,
    partial_maskrcnn_loss,
)

SIZE = 64


def _masks_and_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    masks = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
    masks[0, 10:18, 6:40] = 1
    masks[1, 30:50, 20:28] = 1
    masks[2, 44:52, 36:60] = 1
    boxes = torch.tensor(
        [[6.0, 10.0, 40.0, 18.0], [20.0, 30.0, 28.0, 50.0], [36.0, 44.0, 60.0, 52.0]]
    )
    return masks, boxes


def _images(n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.rand(3, SIZE, SIZE, generator=g) for _ in range(n)]


def _targets(**extra: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    masks, boxes = _masks_and_boxes()
    first = {"boxes": boxes, "labels": torch.ones(3, dtype=torch.int64), "masks": masks, **extra}
    second = {  # a negative crop
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, SIZE, SIZE, dtype=torch.uint8),
    }
    return [first, second]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(
        LIGHT_ARCH, crop_size=SIZE, settings=HeadSettings(box_batch_size_per_image=64)
    )
    return model.train()


def _losses(model: torch.nn.Module, targets, seed: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return model(_images(), copy.deepcopy(targets))


def _mask_loss_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    masks, boxes = _masks_and_boxes()
    proposals = [boxes + torch.rand(3, 4, generator=g) * 4 - 2, boxes[:2] + 1.0]
    idxs = [torch.tensor([0, 1, 2]), torch.tensor([0, 1])]
    gt_masks = [masks, masks[:2].clone()]
    gt_labels = [torch.ones(3, dtype=torch.int64), torch.ones(2, dtype=torch.int64)]
    logits = torch.randn(5, 2, 14, 14, generator=g)
    return logits, proposals, gt_masks, gt_labels, idxs


def test_partial_mask_loss_is_torchvisions_when_every_mask_is_trusted() -> None:
    logits, proposals, gt_masks, gt_labels, idxs = _mask_loss_inputs()
    expected = maskrcnn_loss(logits, proposals, gt_masks, gt_labels, idxs)
    trusted = [torch.ones(3, dtype=torch.bool), None]
    got = partial_maskrcnn_loss(logits, proposals, gt_masks, gt_labels, idxs, trusted)
    assert torch.equal(got, expected)


def test_partial_mask_loss_ignores_untrusted_masks() -> None:
    logits, proposals, gt_masks, gt_labels, idxs = _mask_loss_inputs()
    trusted = [torch.tensor([True, False, True]), torch.tensor([False, False])]
    before = partial_maskrcnn_loss(logits, proposals, gt_masks, gt_labels, idxs, trusted)
    changed = [m.clone() for m in gt_masks]
    changed[0][1] = 1 - changed[0][1]  # untrusted: any content
    changed[1][:] = 0
    after = partial_maskrcnn_loss(logits, proposals, changed, gt_labels, idxs, trusted)
    assert torch.equal(before, after)
    # only the trusted rows count: torchvision's loss on them alone
    only = maskrcnn_loss(
        logits[[0, 2]], [proposals[0][[0, 2]]], gt_masks[:1], gt_labels[:1], [idxs[0][[0, 2]]]
    )
    assert torch.equal(before, only)
    changed[0][0] = 1 - changed[0][0]  # a trusted mask does count (the test can fail)
    assert not torch.equal(
        before, partial_maskrcnn_loss(logits, proposals, changed, gt_labels, idxs, trusted)
    )
    none = [torch.zeros(3, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)]
    zero = partial_maskrcnn_loss(logits, proposals, gt_masks, gt_labels, idxs, none)
    assert zero.item() == 0.0


def test_model_uses_the_partial_heads_with_unchanged_weights() -> None:
    model = _model()
    assert isinstance(model.roi_heads, PartialRoIHeads) and isinstance(model.rpn, PartialRPN)
    plain = ARCHITECTURES[LIGHT_ARCH](2, False, SIZE, HeadSettings(box_batch_size_per_image=64))
    assert type(plain.roi_heads) is RoIHeads  # the builders themselves are torchvision's
    plain_state = plain.state_dict()
    assert list(model.state_dict()) == list(plain_state)  # old checkpoints load as they are
    model.load_state_dict(plain_state)
    assert model.rpn._post_nms_top_n == plain.rpn._post_nms_top_n
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64


def _torchvision_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The same model and weights with torchvision's own RPN, RoI heads and transform."""
    plain = copy.deepcopy(model)
    plain.roi_heads.__class__ = RoIHeads
    plain.rpn.__class__ = RegionProposalNetwork
    plain.transform.__class__ = GeneralizedRCNNTransform
    return plain


def test_all_trusted_and_no_ignore_region_train_exactly_as_torchvision() -> None:
    model = _model()
    plain = _torchvision_copy(model)
    expected = _losses(plain, _targets())
    for extra in (
        {},
        {"masks_trusted": torch.ones(3, dtype=torch.bool), "ignore_boxes": torch.zeros(0, 4)},
    ):
        got = _losses(model, _targets(**extra))
        assert (
            set(got)
            == set(expected)
            == {
                "loss_classifier",
                "loss_box_reg",
                "loss_mask",
                "loss_objectness",
                "loss_rpn_box_reg",
            }
        )
        for key, value in expected.items():
            assert torch.equal(got[key], value), key
    # gradients too
    torch.manual_seed(7)
    sum(_losses(model, _targets()).values()).backward()
    sum(expected.values()).backward()
    for (name, a), b in zip(model.named_parameters(), plain.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad), name


def test_untrusted_masks_contribute_nothing_but_their_boxes_do() -> None:
    model = _model()
    trusted = torch.tensor([True, False, True])
    base = _losses(model, _targets(masks_trusted=trusted))
    targets = _targets(masks_trusted=trusted)
    targets[0]["masks"][1] = 0  # a box-only fish: its mask row is not read
    targets[0]["masks"][1, 0:5, 0:5] = 1
    changed = _losses(model, targets)
    for key in base:
        assert torch.equal(base[key], changed[key]), key
    # box and class losses use every fish, the mask loss differs from the all-trusted one
    all_trusted = _losses(model, _targets())
    for key in ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"):
        assert torch.equal(base[key], all_trusted[key]), key
    assert not torch.equal(base["loss_mask"], all_trusted["loss_mask"])
    none = _losses(model, _targets(masks_trusted=torch.zeros(3, dtype=torch.bool)))
    assert none["loss_mask"].item() == 0.0 and torch.isfinite(none["loss_classifier"])


def test_ignore_regions_take_no_loss_in_rpn_and_roi_sampling() -> None:
    model = _model()
    region = torch.tensor([[0.0, 0.0, 32.0, 32.0]])  # over the negative crop's top-left
    # RoI heads: no proposal mostly inside the region is sampled as a negative
    heads = model.roi_heads
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(200, 2, generator=g) * 48
    proposals = [torch.cat([xy, xy + 4 + torch.rand(200, 2, generator=g) * 12], dim=1)]
    target = _targets()[1]
    inside = box_ioa(proposals[0], region)[:, 0] >= 0.5
    assert inside.sum() > 20

    def sampled(targets) -> torch.Tensor:  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        boxes, _, labels, _ = heads.select_training_samples(proposals, targets)
        return box_ioa(boxes[0], region)[:, 0] >= 0.5

    assert sampled([target]).any()  # without the region some are (the test can fail)
    assert not sampled([{**target, "ignore_boxes": region}]).any()
    # RPN: anchors inside the region are neither positive nor negative
    images, _ = model.transform(_images(1))
    features = list(model.backbone(images.tensors).values())
    anchors = model.rpn.anchor_generator(images, features)
    labels, _ = model.rpn.assign_targets_to_anchors(anchors, [{**target, "ignore_boxes": region}])
    in_region = box_ioa(anchors[0], region)[:, 0] >= 0.5
    assert in_region.sum() > 100
    assert (labels[0][in_region] == -1).all() and (labels[0][~in_region] == 0).all()
    # the whole crop ignored: finite losses that leave the other crop's terms alone
    whole = torch.tensor([[0.0, 0.0, float(SIZE), float(SIZE)]])
    targets = _targets()
    targets[1]["ignore_boxes"] = whole
    losses = _losses(model, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    first_only = _losses(model, [targets[0], {**targets[0]}])
    assert not torch.equal(first_only["loss_classifier"], losses["loss_classifier"])


def test_ignore_boxes_follow_the_models_resize() -> None:
    model = _model()
    image = torch.rand(3, SIZE // 2, SIZE // 2)  # upsampled x2 by the transform
    target = {**_targets()[1], "ignore_boxes": torch.tensor([[2.0, 4.0, 10.0, 12.0]])}
    _, out = model.transform([image], [target])
    assert torch.allclose(out[0]["ignore_boxes"], torch.tensor([[4.0, 8.0, 20.0, 24.0]]))


def test_bad_partial_targets_are_refused() -> None:
    model = _model()
    with pytest.raises(
        ValueError, match="masks_trusted'\\] must be a bool tensor \\[N\\] with N = 3"
    ):
        model(_images(), _targets(masks_trusted=torch.ones(2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="ignore_boxes'\\] must be a float tensor \\[K, 4\\]"):
        model(_images(), _targets(ignore_boxes=torch.zeros(4)))
