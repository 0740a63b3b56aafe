"""Detection scoring on hand-made frames: one-to-one mask matching, flags, joins, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aquapose.segmentation.detection_eval import evaluate_detections
from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance

H, W = 20, 30


def _rect(x0, y0, x1, y1):
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _inst(mask, score=None, **extra):
    return Instance(mask_to_box_xyxy(mask), encode_rle(mask), score=score, extra=extra)


def _frame(camera, index, instances, image_id=None):
    image_id = image_id if image_id is not None else hash((camera, index)) % 10_000
    return AnnotatedFrame(image_id, f"{camera}/{index}.png", W, H, camera, index, "", instances)


FISH_A = _rect(1, 1, 6, 4)  # 15 px
FISH_B = _rect(10, 10, 16, 13)  # 18 px, stationary
FISH_C = _rect(20, 2, 25, 6)  # 20 px, low contrast


def _ground_truth():
    return [
        _frame(
            "cam0",
            5,
            (
                _inst(FISH_A),
                _inst(FISH_B, stationary=True),
                _inst(FISH_C, low_contrast=True, stationary=False),
            ),
            image_id=1,
        ),
        _frame("cam1", 5, (_inst(FISH_A),), image_id=2),
        _frame("cam0", 0, (_inst(FISH_A),), image_id=3),
    ]


def test_counts_recall_precision_and_flags():
    detections = [
        _frame(
            "cam0",
            5,
            (
                _inst(FISH_A | _rect(6, 1, 7, 4), 0.9),  # a bit bigger: IoU 15/18
                _inst(FISH_B, 0.8),
                _inst(_rect(0, 15, 4, 19), 0.5),  # nothing there: false positive
            ),
            image_id=1,
        ),
        _frame("cam1", 5, (), image_id=2),  # missed fish
    ]
    report = evaluate_detections(detections, _ground_truth())
    cam0, cam1 = report.cameras
    assert (cam0.camera_id, cam0.frames, cam0.gt, cam0.detections) == ("cam0", 1, 3, 3)
    assert cam0.true_positives == 2 and cam0.false_positives == 1 and cam0.false_negatives == 1
    assert cam0.recall == pytest.approx(2 / 3) and cam0.precision == pytest.approx(2 / 3)
    assert cam0.mean_iou == pytest.approx((15 / 18 + 1.0) / 2)
    assert cam0.flag_recall("stationary") == 1.0 and cam0.flag_gt["stationary"] == 1
    assert cam0.flag_recall("low_contrast") == 0.0 and cam0.flag_gt["low_contrast"] == 1
    assert math.isnan(cam0.flag_recall("touching"))
    assert cam1.recall == 0.0 and math.isnan(cam1.precision)  # no detections: undefined
    total = report.total
    assert (total.gt, total.detections, total.true_positives) == (4, 3, 2)
    assert report.frames_without_ground_truth == 0
    data = report.to_dict()
    assert data["cameras"][1]["precision"] is None
    assert data["total"]["flags"]["stationary"]["recall"] == 1.0


def test_one_detection_covering_two_fish_matches_one():
    both = FISH_A | _rect(6, 1, 9, 4)  # covers A (15 px) and a second fish D (9 px)
    fish_d = _rect(6, 1, 9, 4)
    gt = [_frame("c", 1, (_inst(FISH_A), _inst(fish_d)), image_id=1)]
    det = [_frame("c", 1, (_inst(both, 1.0),), image_id=1)]
    (cam,) = evaluate_detections(det, gt).cameras
    assert cam.true_positives == 1 and cam.false_negatives == 1
    # IoU of the A match is 15/24 = 0.625: below a 0.7 threshold nothing matches.
    (strict,) = evaluate_detections(det, gt, iou_threshold=0.7).cameras
    assert strict.true_positives == 0 and strict.false_positives == 1


def test_frames_are_joined_by_camera_and_index_and_warmup_is_skipped():
    detections = [
        _frame("cam0", 0, (_inst(_rect(0, 15, 4, 19), 0.5),), image_id=7),  # warm-up frame
        _frame("cam0", 5, (_inst(FISH_A, 1.0), _inst(FISH_B, 1.0), _inst(FISH_C, 1.0)), image_id=8),
        _frame("cam9", 5, (), image_id=9),  # no ground truth for this camera
    ]
    report = evaluate_detections(detections, _ground_truth(), skip_warmup=1)
    (cam0,) = report.cameras
    assert cam0.frames == 1 and cam0.recall == 1.0 and cam0.precision == 1.0
    assert report.frames_without_ground_truth == 1
    with_warmup = evaluate_detections(detections, _ground_truth())
    assert with_warmup.cameras[0].frames == 2 and with_warmup.cameras[0].false_positives == 1


def test_reads_files_and_box_only_labels(tmp_path):
    gt_path = write_coco(_ground_truth(), tmp_path / "gt.json")
    box_only = Instance([1, 1, 6, 4], None, score=0.7)  # no mask: scored as its box
    det_path = write_coco([_frame("cam1", 5, (box_only,), image_id=1)], tmp_path / "det.json")
    report = evaluate_detections(det_path, [gt_path])
    assert report.cameras[0].recall == 1.0
    assert evaluate_detections(str(det_path), gt_path).total.true_positives == 1


def test_errors():
    gt = _ground_truth()
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_detections([], gt, iou_threshold=0)
    with pytest.raises(ValueError, match="skip_warmup"):
        evaluate_detections([], gt, skip_warmup=-1)
    with pytest.raises(ValueError, match="appears twice"):
        evaluate_detections([_frame("cam0", 5, (), 1), _frame("cam0", 5, (), 2)], gt)
    with pytest.raises(ValueError, match=r"no detection frame matches.*'camZ'.*'cam0'"):
        evaluate_detections([_frame("camZ", 5, (), 1)], gt)
    small = AnnotatedFrame(1, "x.png", W - 2, H, "cam0", 5, "", ())
    with pytest.raises(ValueError, match="28x20 but ground truth is 30x20"):
        evaluate_detections([small], gt)
    with pytest.raises(TypeError, match="AnnotatedFrames or COCO file paths"):
        evaluate_detections([1, 2], gt)


def test_coverage_criterion_counts_a_fish_inside_a_bigger_blob():
    fish = _rect(2, 2, 6, 5)  # 12 px
    blob_with_shadow = _rect(2, 2, 14, 9)  # 84 px: IoU 1/7, but the whole fish is inside
    gt = [_frame("c", 0, (_inst(fish),), image_id=1)]
    det = [_frame("c", 0, (_inst(blob_with_shadow, 0.9),), image_id=1)]
    assert evaluate_detections(det, gt).total.recall == 0.0
    report = evaluate_detections(det, gt, min_coverage=0.5)
    assert report.total.recall == 1.0 and report.total.precision == 1.0
    assert report.total.mean_iou == pytest.approx(12 / 84)
    assert report.to_dict()["criterion"] == "coverage"
    half_out = [_frame("c", 0, (_inst(_rect(4, 2, 14, 9), 0.9),), image_id=1)]  # 6/12 inside
    assert evaluate_detections(half_out, gt, min_coverage=0.6).total.recall == 0.0
    with pytest.raises(ValueError, match="min_coverage"):
        evaluate_detections(det, gt, min_coverage=0.0)


def test_touching_fish_are_left_out_of_recall_and_precision_on_request():
    """Two touching fish detected as one blob plus a stray piece of them, and a lone fish
    with one false positive on the empty floor."""
    left, right = _rect(1, 1, 6, 5), _rect(6, 1, 11, 5)
    gt = [
        _frame(
            "cam0",
            0,
            (_inst(left, touching=True), _inst(right, touching=True), _inst(FISH_B)),
            image_id=1,
        )
    ]
    detections = [
        _frame(
            "cam0",
            0,
            (
                _inst(left | right, score=0.9),  # the pair: matches one of them
                _inst(_rect(9, 4, 12, 7), score=0.5),  # a piece overlapping the pair
                _inst(FISH_B, score=0.9),
                _inst(_rect(22, 12, 27, 16), score=0.4),  # floor
            ),
            image_id=1,
        )
    ]
    total = evaluate_detections(detections, gt).total
    assert (total.true_positives, total.detections) == (2, 4)
    assert total.flag_fp == {"stationary": 0, "low_contrast": 0, "touching": 1}
    assert total.recall_without("touching") == 1.0
    assert total.precision_without("touching") == pytest.approx(2 / 3)
    assert total.precision == 0.5
    assert total.to_dict()["flags"]["touching"]["false_positives_overlapping"] == 1
