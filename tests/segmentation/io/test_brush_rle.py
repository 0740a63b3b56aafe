"""Label Studio brush RLE: bit-for-bit against label-studio-sdk's converter, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aquapose.segmentation.io.brush_rle import (
    brush_rle_to_mask,
    decode_brush_rle,
    encode_brush_rle,
    mask_to_brush_rle,
)

brush = pytest.importorskip("label_studio_sdk.converter.brush")

# Run lengths at every boundary of the SDK's encoder: 1 (literal), 8/9 (3->4 bits),
# 16/17 (4->8 bits), 256/257 (8->16 bits), 65536/65537 and 2*65536 (+1) (split runs).
EDGE_LENGTHS = [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131072, 131073]


@pytest.mark.parametrize("length", EDGE_LENGTHS)
def test_encode_matches_sdk_at_run_length_edges(length: int) -> None:
    values = np.concatenate([np.zeros(length, np.uint8), [7], np.full(length, 255, np.uint8)])
    assert encode_brush_rle(values) == brush.encode_rle(values)
    assert np.array_equal(decode_brush_rle(encode_brush_rle(values)), values)


def test_encode_matches_sdk_on_random_arrays(rng: np.random.Generator) -> None:
    for n in (1, 2, 3, 5, 7, 8, 100, 1000):  # n = 5, 7: padding lands on different bits
        noisy = rng.integers(0, 3, n).astype(np.uint8)
        runs = np.repeat(rng.integers(0, 256, n), rng.integers(1, 400, n)).astype(np.uint8)
        for values in (noisy, runs):
            ours = encode_brush_rle(values)
            assert ours == brush.encode_rle(values)
            assert np.array_equal(decode_brush_rle(ours), values)
            assert np.array_equal(brush.decode_rle(bytes(ours)), values)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 255)), min_size=1, max_size=30))
def test_encode_matches_sdk_property(runs: list[tuple[int, int]]) -> None:
    values = np.concatenate([np.full(n, v, np.uint8) for n, v in runs])
    assert encode_brush_rle(values) == brush.encode_rle(values)


def test_mask_encoding_matches_sdk_mask2rle(rng: np.random.Generator) -> None:
    mask = np.zeros((37, 53), bool)
    mask[5:20, 7:40] = True
    mask[rng.random(mask.shape) < 0.05] = True  # single pixels: runs of exactly 4 values
    ours = mask_to_brush_rle(mask)
    assert ours == brush.mask2rle(mask.astype(np.uint8) * 255)
    assert np.array_equal(brush_rle_to_mask(ours, 53, 37), mask)
    sdk_alpha = brush.decode_rle(bytes(ours)).reshape(37, 53, 4)[:, :, 3]
    assert np.array_equal(sdk_alpha > 0, mask)


def _bits(*fields: tuple[int, int]) -> list[int]:
    text = "".join(f"{value:0{width}b}" for value, width in fields)
    text += "0" * (-len(text) % 8)
    return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def test_decode_reads_literal_blocks_like_the_browser_writes() -> None:
    # The browser's rle-pack groups literal values into one block (the SDK never does).
    header = [(8, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4)]
    literal = [(0, 1), (0, 2), (3, 3), (10, 8), (20, 8), (30, 8), (40, 8)]
    repeat = [(1, 1), (0, 2), (3, 3), (99, 8)]
    rle = _bits(*header, *literal, *repeat)
    expected = np.array([10, 20, 30, 40, 99, 99, 99, 99], np.uint8)
    assert np.array_equal(decode_brush_rle(rle), expected)
    assert np.array_equal(brush.decode_rle(bytes(rle)), expected)


def test_decode_refuses_truncated_and_overrunning_streams() -> None:
    rle = mask_to_brush_rle(np.eye(20, dtype=bool))
    with pytest.raises(ValueError, match="truncated"):
        decode_brush_rle(rle[: len(rle) // 2])
    header = [(4, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4)]
    with pytest.raises(ValueError, match="past the declared 4"):
        decode_brush_rle(_bits(*header, (1, 1), (0, 2), (7, 3), (1, 8)))
    with pytest.raises(ValueError, match="byte values"):
        decode_brush_rle([0, 1, 300])
    with pytest.raises(ValueError, match="byte values"):
        decode_brush_rle("not a list")  # type: ignore[arg-type]


def test_mask_size_mismatch_is_reported() -> None:
    rle = mask_to_brush_rle(np.ones((10, 12), bool))
    with pytest.raises(ValueError, match=r"480 values, expected width\*height\*4 = 12\*11\*4"):
        brush_rle_to_mask(rle, 12, 11)


def test_alpha_threshold() -> None:
    values = np.repeat(np.array([0, 1, 127, 128, 255], np.uint8), 4)
    rle = encode_brush_rle(values)
    assert brush_rle_to_mask(rle, 5, 1).tolist() == [[False, False, False, True, True]]
    assert brush_rle_to_mask(rle, 5, 1, alpha_threshold=1).tolist() == [
        [False, True, True, True, True]
    ]
    with pytest.raises(ValueError, match="alpha_threshold"):
        brush_rle_to_mask(rle, 5, 1, alpha_threshold=0)
