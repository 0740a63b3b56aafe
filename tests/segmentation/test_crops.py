import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquapose.segmentation.crops import compute_crop_region, extract_crop, paste_mask
from aquapose.segmentation.masks import mask_iou


def _frame_mask(width, height, box):
    mask = np.zeros((height, width), bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def test_centred_region_inside_frame():
    region = compute_crop_region([100, 100, 140, 120], (640, 480), crop_size=64)
    assert (region.x0, region.y0, region.size, region.edge) == (88, 78, 64, "inside")


@pytest.mark.parametrize(
    ("box", "corner"),
    [
        ([0, 200, 20, 220], (0, 178)),  # left edge
        ([620, 200, 640, 220], (576, 178)),  # right edge
        ([300, 0, 320, 10], (278, 0)),  # top edge
        ([300, 470, 320, 480], (278, 416)),  # bottom edge
        ([0, 0, 10, 10], (0, 0)),  # corner
    ],
)
def test_regions_near_edges_shift_inside(box, corner):
    region = compute_crop_region(box, (640, 480), crop_size=64)
    assert region.edge == "shifted"
    assert (region.x0, region.y0) == corner
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop = extract_crop(frame, region)
    np.testing.assert_array_equal(
        crop, frame[corner[1] : corner[1] + 64, corner[0] : corner[0] + 64]
    )


def test_small_frame_is_padded_and_paste_drops_padding():
    frame = np.full((40, 50), 7, np.uint8)
    region = compute_crop_region([10, 10, 30, 30], (50, 40), crop_size=64)
    assert region.edge == "padded"
    crop = extract_crop(frame, region)
    assert crop.shape == (64, 64)
    assert (crop == 7).sum() == 40 * 50 and (crop == 0).sum() == 64 * 64 - 2000
    back = paste_mask(crop == 7, region)
    assert back.shape == (40, 50) and back.all()


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(70, 200),
    height=st.integers(70, 200),
    data=st.data(),
)
def test_paste_extract_round_trip_exact(width, height, data):
    """paste(extract(mask)) is the mask restricted to the window, for any box position."""
    x0 = data.draw(st.integers(0, width - 2))
    y0 = data.draw(st.integers(0, height - 2))
    x1 = data.draw(st.integers(x0 + 1, min(width, x0 + 40)))
    y1 = data.draw(st.integers(y0 + 1, min(height, y0 + 40)))
    mask = _frame_mask(width, height, (x0, y0, x1, y1))
    region = compute_crop_region([x0, y0, x1, y1], (width, height), crop_size=64)
    assert region.scale == 1.0
    crop = extract_crop(mask, region)
    assert crop.shape == (64, 64) and crop.dtype == bool
    np.testing.assert_array_equal(paste_mask(crop, region), mask)  # fish fully inside the crop


def test_box_larger_than_crop_gets_downscaled_window():
    mask = np.zeros((600, 800), bool)
    mask[100:160, 200:500] = True  # a 300 px fish
    region = compute_crop_region([200, 100, 500, 160], (800, 600), crop_size=128, margin=0.1)
    assert region.size >= 360 and region.scale < 1
    x0, y0, x1, y1 = region.box_xyxy
    assert x0 <= 200 and x1 >= 500 and y0 <= 100 and y1 >= 160
    crop = extract_crop(mask, region)
    assert crop.shape == (128, 128)
    back = paste_mask(crop, region)
    assert mask_iou(back, mask) > 0.95
    image = np.zeros((600, 800, 3), np.uint8)
    image[mask] = 200
    assert extract_crop(image, region).shape == (128, 128, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="frame_size_wh"):
        compute_crop_region([0, 0, 5, 5], (0, 10))
    with pytest.raises(ValueError, match="margin"):
        compute_crop_region([0, 0, 5, 5], (100, 100), margin=-1)
    region = compute_crop_region([0, 0, 5, 5], (100, 100), crop_size=32)
    with pytest.raises(ValueError, match="does not match the region's frame size"):
        extract_crop(np.zeros((50, 100), np.uint8), region)
    with pytest.raises(ValueError, match=r"crop_mask must have shape \(32, 32\)"):
        paste_mask(np.zeros((16, 16), bool), region)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        extract_crop(np.zeros((100,), np.uint8), region)
