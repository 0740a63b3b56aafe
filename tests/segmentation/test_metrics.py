import numpy as np
import pytest

from aquapose.segmentation.masks import encode_rle
from aquapose.segmentation.metrics import match_by_iou, match_masks


def test_hungarian_beats_greedy():
    # Greedy would pair (0, 0) at 0.6 and leave gt 1 with 0.0; optimal pairs cross.
    iou = np.array([[0.6, 0.5], [0.55, 0.0]])
    matches = match_by_iou(iou, threshold=0.3)
    assert [(m.gt_index, m.pred_index) for m in matches] == [(0, 1), (1, 0)]


def test_threshold_and_empty_inputs():
    assert match_by_iou(np.zeros((0, 3)), 0.5) == []
    assert match_by_iou(np.array([[0.2]]), 0.3) == []
    with pytest.raises(ValueError, match="2-D"):
        match_by_iou(np.zeros(3), 0.5)


def test_match_masks_pairs_by_overlap_not_index():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros((10, 10), bool)
    b[5:] = True
    matches = match_masks([encode_rle(a), encode_rle(b)], [encode_rle(b), encode_rle(a)], 0.5)
    assert [(m.gt_index, m.pred_index, m.iou) for m in matches] == [(0, 1, 1.0), (1, 0, 1.0)]
