import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from aquapose.segmentation.masks import (
    decode_rle,
    encode_rle,
    largest_component,
    mask_iou,
    mask_to_box_xyxy,
    rle_area,
    rle_iou_matrix,
    rle_to_box_xyxy,
    rle_union,
)


@settings(max_examples=50, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_round_trip_and_area(mask):
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str)
    assert rle["size"] == list(mask.shape)
    np.testing.assert_array_equal(decode_rle(rle), mask)
    assert rle_area(rle) == mask.sum()


def test_decode_accepts_uncompressed_rle_and_matches_pycocotools():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:7] = True
    # column-major runs, as COCO writes "iscrowd" RLE
    flat = mask.flatten(order="F")
    runs, current, count = [], False, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    np.testing.assert_array_equal(decode_rle({"size": [6, 8], "counts": runs}), mask)
    coco = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    np.testing.assert_array_equal(decode_rle(coco), mask)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [4, 4]}, "'size' \\[H, W\\] and 'counts'"),
        ({"size": [4], "counts": "04"}, "'size' must be"),
        ({"size": [4, 4], "counts": [3, 2]}, "sum to H\\*W"),
        ({"size": [4, 4], "counts": 5}, "must be str"),
        ({"size": [4, 4], "counts": "0"}, "cover 0 pixels"),
        ({"size": [2, 2], "counts": "9"}, "cover 9 pixels"),
        ({"size": [4, 4], "counts": "`"}, "truncated"),
        ({"size": [4, 4], "counts": " "}, "invalid character"),
    ],
)
def test_decode_rejects_bad_rle(rle, message):
    with pytest.raises(ValueError, match=message):
        decode_rle(rle)


def test_boxes_are_tight_with_exclusive_far_edges():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_to_box_xyxy(mask), [3, 2, 9, 5])
    np.testing.assert_array_equal(rle_to_box_xyxy(encode_rle(mask)), [3, 2, 9, 5])
    one = np.zeros((4, 4), bool)
    one[1, 2] = True
    np.testing.assert_array_equal(mask_to_box_xyxy(one), [2, 1, 3, 2])
    with pytest.raises(ValueError, match="empty"):
        mask_to_box_xyxy(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="empty"):
        rle_to_box_xyxy(encode_rle(np.zeros((3, 3), bool)))


def test_mask_iou_cases():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 0.0
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(a, np.zeros((3, 4), bool))


def test_rle_iou_matrix_matches_dense_iou(rng):
    masks = [rng.random((9, 7)) > 0.5 for _ in range(4)]
    rles = [encode_rle(m) for m in masks]
    matrix = rle_iou_matrix(rles[:3], rles[1:])
    assert matrix.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert matrix[i, j] == pytest.approx(mask_iou(masks[i], masks[j + 1]))
    assert rle_iou_matrix([], rles).shape == (0, 4)
    with pytest.raises(ValueError, match="same size"):
        rle_iou_matrix(rles[:1], [encode_rle(np.zeros((3, 3), bool))])


def test_largest_component():
    mask = np.zeros((6, 10), bool)
    mask[0:2, 0:2] = True
    mask[3:6, 4:9] = True
    kept = largest_component(mask)
    assert kept.sum() == 15 and not kept[0, 0]
    assert largest_component(np.zeros((3, 3), bool)).sum() == 0
    diagonal = np.eye(4, dtype=bool)
    assert largest_component(diagonal, connectivity=8).sum() == 4
    assert largest_component(diagonal, connectivity=4).sum() == 1
    with pytest.raises(ValueError, match="connectivity"):
        largest_component(mask, connectivity=6)


def test_rle_union_equals_the_or_of_the_masks():
    rng = np.random.default_rng(0)
    masks = [rng.random((7, 9)) > 0.7 for _ in range(3)]
    union = decode_rle(rle_union([encode_rle(m) for m in masks]))
    np.testing.assert_array_equal(union, masks[0] | masks[1] | masks[2])
    with pytest.raises(ValueError, match="at least one"):
        rle_union([])
