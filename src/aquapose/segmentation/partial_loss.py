"""Partially supervised Mask R-CNN: boxes for every fish, masks only where trusted.

The detector trusts more fish than the labeler gives good masks for (faint fish, tails cut
off); a blob it flags as probably several fish is neither a fish nor background. Two
optional target keys carry that, beside torchvision's ``boxes``/``labels``/``masks``:

- ``masks_trusted``: bool ``[N]``. The box and class heads learn from all ``N`` fish;
  the mask loss only from the proposals matched to a fish with a trusted mask (the mask
  head does not even run on the others, so they leave its batch-norm statistics alone
  too). Its ``masks`` row is not read (any ``H x W`` mask, e.g. zeros or the box).
- ``ignore_boxes``: float ``[K, 4]`` xyxy, regions where no loss is taken (a blob holding
  several fish). A proposal (RoI heads) or anchor (RPN) that would be a *negative* and lies
  mostly inside one of them (intersection over its own area >= ``ignore_ioa``, as
  Detectron's crowd regions) is neither positive nor negative: the samplers skip it. Positive
  matches to a fish box stay positive: they have a real target. Ignore regions are scaled
  with the image by the model's transform.

Without these keys (or with every mask trusted and no ignore region) the losses, the
sampling and the random numbers drawn are exactly torchvision's. :func:`partial_supervision`
swaps a built ``MaskRCNN``'s RPN, RoI heads and transform for these subclasses, sharing
their modules (state dicts unchanged).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

__all__ = [
    "PartialRPN",
    "PartialRoIHeads",
    "PartialTransform",
    "box_ioa",
    "partial_maskrcnn_loss",
    "partial_supervision",
]


def box_ioa(boxes: Tensor, regions: Tensor) -> Tensor:
    """Intersection of each box with each region over the box's own area, ``[N, K]``."""
    lt = torch.max(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    return inter / area[:, None]


def _in_ignore(boxes: Tensor, ignore: Tensor | None, threshold: float) -> Tensor | None:
    """Bool ``[N]``: boxes mostly inside an ignore region; None when there is none."""
    if ignore is None or ignore.numel() == 0 or boxes.numel() == 0:
        return None
    return box_ioa(boxes, ignore.to(boxes)).amax(dim=1) >= threshold


def partial_maskrcnn_loss(
    mask_logits: Tensor,
    proposals: list[Tensor],
    gt_masks: list[Tensor],
    gt_labels: list[Tensor],
    mask_matched_idxs: list[Tensor],
    masks_trusted: list[Tensor | None],
) -> Tensor:
    """torchvision's ``maskrcnn_loss`` over the positives matched to a trusted mask only.

    Same arguments as ``torchvision.models.detection.roi_heads.maskrcnn_loss`` plus
    ``masks_trusted`` (per image, bool ``[N_gt]`` or None = all trusted). With every mask
    trusted it *is* torchvision's loss; untrusted ones change nothing (0 when none is left).
    """
    keeps = [
        torch.ones_like(idxs, dtype=torch.bool)
        if trusted is None
        else trusted.to(idxs.device)[idxs]
        for idxs, trusted in zip(mask_matched_idxs, masks_trusted, strict=True)
    ]
    keep = torch.cat(keeps) if keeps else torch.zeros(0, dtype=torch.bool)
    return maskrcnn_loss(
        mask_logits[keep.to(mask_logits.device)],
        [p[k] for p, k in zip(proposals, keeps, strict=True)],
        gt_masks,
        gt_labels,
        [i[k] for i, k in zip(mask_matched_idxs, keeps, strict=True)],
    )


def _check_partial_targets(targets: list[dict[str, Tensor]]) -> None:
    for n, t in enumerate(targets):
        trusted = t.get("masks_trusted")
        if trusted is not None and (
            trusted.dtype != torch.bool or trusted.shape != t["boxes"].shape[:1]
        ):
            raise ValueError(
                f"targets[{n}]['masks_trusted'] must be a bool tensor [N] with N = "
                f"{t['boxes'].shape[0]} boxes, got {trusted.dtype} {tuple(trusted.shape)}"
            )
        ignore = t.get("ignore_boxes")
        if ignore is not None and (
            not ignore.is_floating_point() or ignore.ndim != 2 or ignore.shape[1] != 4
        ):
            raise ValueError(
                f"targets[{n}]['ignore_boxes'] must be a float tensor [K, 4] (xyxy), got "
                f"{ignore.dtype} {tuple(ignore.shape)}"
            )


class PartialRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` with trusted-only mask loss and ignore regions.

    Build one from an existing ``RoIHeads`` with :meth:`from_roi_heads`.
    """

    def __init__(self, *args: Any, ignore_ioa: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 < ignore_ioa <= 1.0:
            raise ValueError(f"ignore_ioa must be in (0, 1], got {ignore_ioa}")
        self.ignore_ioa = float(ignore_ioa)
        self._ignore: list[Tensor | None] | None = None

    @classmethod
    def from_roi_heads(cls, heads: RoIHeads, ignore_ioa: float = 0.5) -> PartialRoIHeads:
        """The same heads (shared modules and settings) with partial supervision."""
        if heads.has_keypoint():
            raise ValueError("PartialRoIHeads does not support keypoint heads")
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
            mask_roi_pool=heads.mask_roi_pool,
            mask_head=heads.mask_head,
            mask_predictor=heads.mask_predictor,
            ignore_ioa=ignore_ioa,
        )

    def select_training_samples(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        self._ignore = None if targets is None else [t.get("ignore_boxes") for t in targets]
        try:
            return super().select_training_samples(proposals, targets)
        finally:
            self._ignore = None

    def assign_targets_to_proposals(
        self, proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        matched_idxs, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        for n, (boxes, labels_in_image) in enumerate(zip(proposals, labels, strict=True)):
            ignore = None if self._ignore is None else self._ignore[n]
            inside = _in_ignore(boxes, ignore, self.ignore_ioa)
            if inside is not None:
                labels_in_image[inside & (labels_in_image == 0)] = -1  # the sampler skips -1
        return matched_idxs, labels

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        if targets is None:
            raise ValueError("targets are needed in training mode")
        for t in targets:
            if not t["boxes"].is_floating_point():
                raise TypeError(f"target boxes must be of float type, got {t['boxes'].dtype}")
            if t["labels"].dtype != torch.int64:
                raise TypeError(f"target labels must be of int64 type, got {t['labels'].dtype}")
        _check_partial_targets(targets)
        # Below: torchvision's RoIHeads.forward in training mode, with the mask loss
        # restricted to trusted masks.
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
            proposals, targets
        )
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if class_logits.shape[0] == 0:  # every proposal ignored: no box loss (not NaN)
            loss_classifier = loss_box_reg = class_logits.sum() + box_regression.sum()
        else:
            loss_classifier, loss_box_reg = fastrcnn_loss(
                class_logits, box_regression, labels, regression_targets
            )
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        if self.has_mask():
            mask_proposals, pos_matched_idxs = [], []
            for img_id, target in enumerate(targets):
                pos = torch.where(labels[img_id] > 0)[0]
                idxs = matched_idxs[img_id][pos]
                trusted = target.get("masks_trusted")
                if trusted is not None:  # the mask head runs on trusted fish only
                    keep = trusted.to(idxs.device)[idxs]
                    pos, idxs = pos[keep], idxs[keep]
                mask_proposals.append(proposals[img_id][pos])
                pos_matched_idxs.append(idxs)
            mask_features = self.mask_head(
                self.mask_roi_pool(features, mask_proposals, image_shapes)
            )
            mask_logits = self.mask_predictor(mask_features)
            losses["loss_mask"] = maskrcnn_loss(
                mask_logits,
                mask_proposals,
                [t["masks"] for t in targets],
                [t["labels"] for t in targets],
                pos_matched_idxs,
            )
        return [], losses


class PartialRPN(RegionProposalNetwork):
    """torchvision's RPN whose would-be negative anchors inside ignore regions are skipped."""

    def __init__(self, *args: Any, ignore_ioa: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 < ignore_ioa <= 1.0:
            raise ValueError(f"ignore_ioa must be in (0, 1], got {ignore_ioa}")
        self.ignore_ioa = float(ignore_ioa)

    @classmethod
    def from_rpn(cls, rpn: RegionProposalNetwork, ignore_ioa: float = 0.5) -> PartialRPN:
        """The same RPN (shared modules and settings) with ignore regions."""
        out = cls(
            rpn.anchor_generator,
            rpn.head,
            rpn.proposal_matcher.high_threshold,
            rpn.proposal_matcher.low_threshold,
            rpn.fg_bg_sampler.batch_size_per_image,
            rpn.fg_bg_sampler.positive_fraction,
            dict(rpn._pre_nms_top_n),
            dict(rpn._post_nms_top_n),
            rpn.nms_thresh,
            rpn.score_thresh,
            ignore_ioa=ignore_ioa,
        )
        out.min_size = rpn.min_size
        return out

    def assign_targets_to_anchors(
        self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        labels, matched_gt_boxes = super().assign_targets_to_anchors(anchors, targets)
        for anchors_in_image, target, labels_in_image in zip(anchors, targets, labels, strict=True):
            inside = _in_ignore(anchors_in_image, target.get("ignore_boxes"), self.ignore_ioa)
            if inside is not None:
                labels_in_image[inside & (labels_in_image == 0.0)] = -1.0  # discarded
        return labels, matched_gt_boxes

    def compute_loss(
        self,
        objectness: Tensor,
        pred_bbox_deltas: Tensor,
        labels: list[Tensor],
        regression_targets: list[Tensor],
    ) -> tuple[Tensor, Tensor]:
        if not any(bool((lab >= 0).any()) for lab in labels):  # every anchor ignored
            zero = objectness.sum() * 0.0 + pred_bbox_deltas.sum() * 0.0
            return zero, zero
        return super().compute_loss(objectness, pred_bbox_deltas, labels, regression_targets)


class PartialTransform(GeneralizedRCNNTransform):
    """torchvision's transform that also resizes ``ignore_boxes`` with the image."""

    @classmethod
    def from_transform(cls, transform: GeneralizedRCNNTransform) -> PartialTransform:
        return cls(
            transform.min_size,
            transform.max_size,
            transform.image_mean,
            transform.image_std,
            transform.size_divisible,
            transform.fixed_size,
            _skip_resize=transform._skip_resize,
        )

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[Any, list[dict[str, Tensor]] | None]:
        if targets is not None:
            _check_partial_targets(targets)
        return super().forward(images, targets)

    def resize(
        self, image: Tensor, target: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        old_hw = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "ignore_boxes" in target:
            target["ignore_boxes"] = resize_boxes(
                target["ignore_boxes"], list(old_hw), list(image.shape[-2:])
            )
        return image, target


def partial_supervision(model: MaskRCNN, ignore_ioa: float = 0.5) -> MaskRCNN:
    """Give ``model`` the partial RPN, RoI heads and transform (in place; returns it).

    The swapped parts share the model's modules: parameters, state-dict keys, settings and
    results without ``masks_trusted``/``ignore_boxes`` are unchanged.
    """
    model.rpn = PartialRPN.from_rpn(model.rpn, ignore_ioa)
    model.roi_heads = PartialRoIHeads.from_roi_heads(model.roi_heads, ignore_ioa)
    model.transform = PartialTransform.from_transform(model.transform)
    return model
