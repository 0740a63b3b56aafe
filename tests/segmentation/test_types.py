import numpy as np
import pytest

from aquapose.segmentation.masks import as_bool_mask, encode_rle
from aquapose.segmentation.types import (
    AnnotatedFrame,
    CropRegion,
    Detection,
    Instance,
    SegmentationResult,
    as_box_xyxy,
)


def test_box_validation_messages():
    assert as_box_xyxy([1, 2, 3, 4]).dtype == np.float64
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        as_box_xyxy([1, 2, 3])
    with pytest.raises(ValueError, match="x1 > x0"):
        as_box_xyxy([5, 2, 3, 4])
    with pytest.raises(ValueError, match="finite"):
        as_box_xyxy([0, 0, np.nan, 4])


def test_bool_mask_refuses_lossy_input():
    assert as_bool_mask(np.array([[0, 255]], np.uint8)).tolist() == [[False, True]]
    assert as_bool_mask(np.array([[0, 1]], np.int64)).tolist() == [[False, True]]
    with pytest.raises(ValueError, match="only 0/1 or 0/255"):
        as_bool_mask(np.array([[0, 7]], np.uint8))
    with pytest.raises(TypeError, match="dtype float"):
        as_bool_mask(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        as_bool_mask(np.zeros((2, 2, 1), bool))


def test_detection_validates():
    det = Detection([0, 0, 4, 4], 0.5, "cam0", 3, np.ones((2, 3), np.uint8), (1, 2), (5, 6))
    assert det.window_mask is not None and det.window_mask.dtype == bool
    assert det.blob_mask is not None and det.blob_mask.shape == (5, 6)
    assert np.argwhere(det.blob_mask).tolist() == [[y, x] for y in (2, 3) for x in (1, 2, 3)]
    assert Detection([0, 0, 4, 4], 0.5, "cam0", 3).blob_mask is None
    with pytest.raises(ValueError, match="frame_hw"):
        Detection([0, 0, 4, 4], 0.5, "cam0", 3, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="outside the"):
        Detection([0, 0, 4, 4], 0.5, "cam0", 3, np.ones((2, 3), bool), (4, 0), (5, 6))
    with pytest.raises(ValueError, match="window_xy"):
        Detection([0, 0, 4, 4], 0.5, "cam0", 3, np.ones((2, 3), bool), (-1, 0), (5, 6))
    with pytest.raises(ValueError, match="score"):
        Detection([0, 0, 4, 4], 1.5, "cam0", 0)
    with pytest.raises(ValueError, match="camera_id"):
        Detection([0, 0, 4, 4], 0.5, "", 0)
    with pytest.raises(ValueError, match="frame_index"):
        Detection([0, 0, 4, 4], 0.5, "cam0", -1)
    with pytest.raises(TypeError, match="frame_index"):
        Detection([0, 0, 4, 4], 0.5, "cam0", 1.0)  # type: ignore[arg-type]


def test_crop_region_validates_and_maps_boxes():
    region = CropRegion(x0=10, y0=20, size=64, frame_width=100, frame_height=100, crop_size=32)
    assert region.scale == 0.5
    crop_box = region.frame_to_crop_xyxy([10, 20, 74, 84])
    np.testing.assert_allclose(crop_box, [0, 0, 32, 32])
    np.testing.assert_allclose(region.crop_to_frame_xyxy(crop_box), [10, 20, 74, 84])
    with pytest.raises(ValueError, match="never upsampled"):
        CropRegion(x0=0, y0=0, size=16, frame_width=100, frame_height=100, crop_size=32)
    with pytest.raises(TypeError, match="x0"):
        CropRegion(x0=0.5, y0=0, size=32, frame_width=100, frame_height=100)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edge"):
        CropRegion(0, 0, 32, 100, 100, 32, edge="wrapped")  # type: ignore[arg-type]


def test_segmentation_result_checks_rle_size():
    region = CropRegion(0, 0, 8, 8, 8, crop_size=8)
    rle = encode_rle(np.ones((8, 8), bool))
    result = SegmentationResult([0, 0, 8, 8], rle, 0.9, region)
    assert result.label == "fish"
    with pytest.raises(ValueError, match="crop_size"):
        SegmentationResult([0, 0, 8, 8], encode_rle(np.ones((4, 4), bool)), 0.9, region)
    with pytest.raises(ValueError, match="confidence"):
        SegmentationResult([0, 0, 8, 8], rle, -0.1, region)
    with pytest.raises(TypeError, match="CropRegion"):
        SegmentationResult([0, 0, 8, 8], rle, 0.5, "region")  # type: ignore[arg-type]


def test_annotated_frame_checks_instance_mask_size(tmp_path):
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    inst = Instance([2, 1, 5, 3], rle=encode_rle(mask), fish_id=4)
    frame = AnnotatedFrame(1, "a.png", 8, 6, "cam0", 0, instances=[inst])
    assert isinstance(frame.instances, tuple)
    np.testing.assert_array_equal(frame.instances[0].mask(), mask)
    assert frame.resolve_image(tmp_path) == tmp_path / "a.png"
    assert not inst.is_prediction
    with pytest.raises(ValueError, match=r"does not match the image's \[height, width\]"):
        AnnotatedFrame(1, "a.png", 6, 8, "cam0", 0, instances=[inst])
    with pytest.raises(ValueError, match="no mask"):
        Instance([0, 0, 1, 1]).mask()
