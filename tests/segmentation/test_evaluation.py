"""Evaluation: the per-image mask IoU on hand-made cases, COCO AP, and evaluate() end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _model_data import make_tiny_coco

from aquapose.segmentation.dataset import CropDataset
from aquapose.segmentation.evaluation import coco_ap, evaluate, image_mask_iou
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.model import LIGHT_ARCH, MaskRCNNSegmentor
from aquapose.segmentation.types import SegmentationResult


def square(top: int, left: int, side: int = 4, shape=(12, 12)) -> dict:
    mask = np.zeros(shape, bool)
    mask[top : top + side, left : left + side] = True
    return encode_rle(mask)


def test_perfect_prediction_scores_one():
    gt = [square(1, 1), square(6, 6)]
    assert image_mask_iou(gt, list(reversed(gt))) == 1.0  # matched by overlap, not by index


def test_shifted_prediction_scores_its_iou():
    # 4x4 square shifted one pixel right: intersection 12, union 20
    assert image_mask_iou([square(2, 2)], [square(2, 3)]) == pytest.approx(12 / 20)


def test_missed_fish_counts_zero():
    gt = [square(1, 1), square(6, 6)]
    assert image_mask_iou(gt, [square(1, 1)]) == pytest.approx((1.0 + 0.0) / 2)
    assert image_mask_iou(gt, []) == 0.0


def test_false_positive_counts_zero():
    assert image_mask_iou([square(1, 1)], [square(1, 1), square(7, 7)]) == pytest.approx(0.5)


def test_empty_image_scores_one_without_predictions_and_zero_with_any():
    assert image_mask_iou([], []) == 1.0
    assert image_mask_iou([], [square(3, 3)]) == 0.0


def test_pair_below_match_threshold_counts_as_miss_and_false_positive():
    # shifted by 2 px: IoU 8/24 = 1/3 < 0.5, so one miss + one false positive
    assert image_mask_iou([square(2, 2)], [square(2, 4)]) == 0.0
    assert image_mask_iou([square(2, 2)], [square(2, 4)], match_iou_threshold=0.3) == pytest.approx(
        1 / 3
    )


def _pred(rle: dict, score: float) -> tuple[dict, np.ndarray, float]:
    from aquapose.segmentation.masks import decode_rle

    return rle, mask_to_box_xyxy(decode_rle(rle)), score


def test_coco_ap_perfect_none_and_no_ground_truth():
    gts = [[square(1, 1), square(6, 6)], []]
    perfect = coco_ap(gts, [[_pred(r, 0.9) for r in gts[0]], []], 12)
    assert perfect["segm_ap"] == pytest.approx(1.0) and perfect["bbox_ap"] == pytest.approx(1.0)
    assert coco_ap(gts, [[], []], 12)["segm_ap"] == 0.0
    assert math.isnan(coco_ap([[], []], [[_pred(square(1, 1), 0.9)], []], 12)["segm_ap"])
    half = coco_ap(gts, [[_pred(gts[0][0], 0.9)], []], 12)
    assert 0.4 < half["segm_ap"] < 0.6


class OracleSegmentor(MaskRCNNSegmentor):
    """Predicts the ground truth of each crop (looked up by pixels), plus optional extras."""

    def __init__(self, dataset: CropDataset, false_positive_on_negatives: bool = False):
        super().__init__(LIGHT_ARCH, crop_size=dataset.crop_size, device="cpu")
        self.lookup = {}
        for i in range(len(dataset)):
            sample = dataset.crop(i)
            self.lookup[sample.image_bgr.tobytes()] = sample.crop_masks
        self.fp = false_positive_on_negatives

    def predict(self, crops, regions=None, score_threshold=0.1, batch_size=8, backgrounds=None):
        out = []
        for crop, region in zip(crops, regions, strict=True):
            masks = list(self.lookup[crop.tobytes()])
            if not masks and self.fp:
                masks = [
                    np.pad(np.ones((5, 5), bool), ((0, crop.shape[0] - 5), (0, crop.shape[1] - 5)))
                ]
            out.append(
                [SegmentationResult(mask_to_box_xyxy(m), encode_rle(m), 0.9, region) for m in masks]
            )
        return out


def test_evaluate_perfect_predictions(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=2, num_negatives=1)
    dataset = CropDataset(coco, crop_size=64)
    report = evaluate(OracleSegmentor(dataset), coco)
    assert report.num_images == len(dataset) == 5
    assert report.num_negative_images == 1
    assert report.mean_mask_iou == 1.0 and report.mean_mask_iou_negatives == 1.0
    assert report.segm_ap == pytest.approx(1.0) and report.bbox_ap == pytest.approx(1.0)
    assert report.to_dict()["num_gt"] == report.num_gt > 0


def test_evaluate_penalises_a_false_positive_on_the_empty_crop(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=2, num_negatives=1)
    dataset = CropDataset(coco, crop_size=64)
    report = evaluate(OracleSegmentor(dataset, false_positive_on_negatives=True), coco)
    assert report.mean_mask_iou_negatives == 0.0
    assert report.mean_mask_iou == pytest.approx(4 / 5)


def test_evaluate_rejects_bad_arguments(tmp_path):
    coco = make_tiny_coco(tmp_path, num_frames=1, num_negatives=0)
    with pytest.raises(ValueError, match="score_threshold must be in"):
        evaluate(object(), coco, score_threshold=2.0)
    with pytest.raises(TypeError, match="MaskRCNNSegmentor or a checkpoint path"):
        evaluate(object(), coco)
