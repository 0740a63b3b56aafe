"""Label Studio's brush RLE (the ``@thi.ng/rle-pack`` bit stream), vectorised with numpy.

Label Studio stores a brush region as the run-length-encoded RGBA pixels of a
``width x height`` canvas: ``width * height * 4`` values, row-major, the mask in
the alpha channel. This is *not* COCO RLE. The stream is::

    num (32 bits) | word_size - 1 (5) | 4 x (rle_size - 1) (4 each) | blocks ... | zero padding

and each block is ``flag (1) | size index (2) | count - 1 (rle_sizes[index] bits)`` then,
for ``flag == 1``, one value repeated ``count`` times, else ``count`` literal values
(``word_size`` bits each).

:func:`encode_brush_rle` writes exactly the bytes ``label_studio_sdk.converter.brush.encode_rle``
writes (word size 8, rle sizes 3/4/8/16, a length-1 run as a one-value literal block,
runs over 65536 split, padding to the next byte and one extra zero byte when already
aligned), only much faster. :func:`decode_brush_rle` reads any rle-pack stream
(also the browser's, which groups literal values), and refuses streams that are
truncated or whose runs overrun the declared length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aquapose.segmentation.masks import as_bool_mask

_HEADER = (32, 5, 4, 4, 4, 4)
_SDK_RLE_SIZES = (3, 4, 8, 16)
_CHUNK_TOKENS = 1 << 18
_MAX_RUN = 1 << 16

#: Default alpha threshold: a pixel is fish when its alpha is >= this (half opaque).
#: Label Studio's own converters count any alpha > 0; pass ``alpha_threshold=1`` for that.
DEFAULT_ALPHA_THRESHOLD = 128


def encode_brush_rle(values: np.ndarray) -> list[int]:
    """Encode a 1-D uint8 array as Label Studio brush RLE (list of byte values).

    Bit-for-bit identical to ``label_studio_sdk.converter.brush.encode_rle(values)``.
    """
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise ValueError("values must be integers in [0, 255] (uint8)")
        arr = arr.astype(np.uint8)
    if arr.size >= 1 << 32:
        raise ValueError(f"cannot encode {arr.size} values: the length field has 32 bits")

    ends = np.append(np.flatnonzero(arr[1:] != arr[:-1]), arr.size - 1)
    lengths = np.diff(np.append(-1, ends)).astype(np.int64)
    return _encode_runs(lengths, arr[ends].astype(np.int64), arr.size)


def _encode_runs(lengths: np.ndarray, run_values: np.ndarray, num: int) -> list[int]:
    """Encode maximal runs (int64 lengths, values 0-255) of ``num`` values, the SDK's way."""
    # Runs longer than 256 use the 16-bit count; runs longer than 65536 are split into
    # full 65536-runs followed by the remainder (as the SDK does).
    n_full = np.where(lengths > 256, (lengths - 1) // _MAX_RUN, 0)
    repeats = n_full + 1
    tok_values = np.repeat(run_values, repeats)
    tok_lengths = np.repeat(lengths, repeats)
    first = np.cumsum(repeats) - repeats  # index of each run's first token
    is_last = np.zeros(tok_lengths.size, dtype=bool)
    is_last[first + n_full] = True
    long_run = tok_lengths > 256
    counts = np.where(
        long_run & ~is_last, _MAX_RUN, tok_lengths - n_full.repeat(repeats) * _MAX_RUN
    )

    flag = ((counts > 1) | long_run).astype(np.int64)  # SDK: any run > 1 is a repeat
    size_index = np.select([long_run, counts > 16, counts > 8], [3, 2, 1], 0)
    count_bits = np.asarray(_SDK_RLE_SIZES, dtype=np.int64)[size_index]
    widths = 1 + 2 + count_bits + 8
    tokens = (
        (flag << (widths - 1)) | (size_index << (widths - 3)) | ((counts - 1) << 8) | tok_values
    )

    header = [num, 8 - 1, *(s - 1 for s in _SDK_RLE_SIZES)]
    head_bits = _bits_of(np.asarray(header, np.int64), np.asarray(_HEADER, np.int64))
    body_bits = [
        _bits_of(tokens[i : i + _CHUNK_TOKENS], widths[i : i + _CHUNK_TOKENS])
        for i in range(0, tokens.size, _CHUNK_TOKENS)
    ]
    total = head_bits.size + sum(b.size for b in body_bits)
    padding = np.zeros(8 - total % 8, dtype=np.uint8)  # the SDK pads 8 bits when aligned
    bits = np.concatenate([head_bits, *body_bits, padding])
    return np.packbits(bits).tolist()


def _bits_of(tokens: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """MSB-first bits of each token (``widths[i]`` bits), concatenated, uint8."""
    max_width = int(widths.max()) if widths.size else 0
    pos = np.arange(max_width, dtype=np.int64)
    shifts = widths[:, None] - 1 - pos[None, :]
    keep = shifts >= 0
    bits = (tokens[:, None] >> np.maximum(shifts, 0)) & 1
    return bits[keep].astype(np.uint8)


def decode_brush_rle(rle: Sequence[int] | bytes | np.ndarray) -> np.ndarray:
    """Decode a Label Studio brush RLE into its 1-D values (uint8 for word size <= 8).

    Raises ValueError for a stream that is not a list of bytes, is truncated, or whose
    runs overrun the length it declares.
    """
    lengths, values = _decode_runs(rle)
    return np.repeat(values, lengths)


def _decode_runs(rle: Sequence[int] | bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stream's runs: int64 lengths (summing to the declared count) and their values."""
    data = _as_bytes(rle)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    text = (bits + 48).tobytes().decode("ascii")  # '0'/'1' string: int(s, 2) per field
    n_bits = len(text)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > n_bits:
            raise ValueError(f"brush RLE is truncated: needs bit {pos + n}, has {n_bits} bits")
        value = int(text[pos : pos + n], 2)
        pos += n
        return value

    num = read(32)
    word_size = read(5) + 1
    rle_sizes = [read(4) + 1 for _ in range(4)]
    dtype = np.uint8 if word_size <= 8 else np.uint16 if word_size <= 16 else np.uint32
    run_lengths: list[int] = []
    run_values: list[int] = []
    weights = 1 << np.arange(word_size - 1, -1, -1, dtype=np.int64)
    longest = 3 + max(rle_sizes) + word_size
    i = 0
    # The hot loop reads fields inline (one int() per field); `read` is for the checks.
    while i < num:
        if pos + longest > n_bits:  # near the end: go field by field, with bound checks
            head = read(3)
            count = 1 + read(rle_sizes[head & 3])
        else:
            head = int(text[pos : pos + 3], 2)
            size = rle_sizes[head & 3]
            count = 1 + int(text[pos + 3 : pos + 3 + size], 2)
            pos += 3 + size
        if i + count > num:
            raise ValueError(
                f"brush RLE is corrupt: a run ends at value {i + count}, past the declared {num}"
            )
        if head >> 2:
            run_lengths.append(count)
            run_values.append(read(word_size))
        else:
            if pos + count * word_size > n_bits:
                raise ValueError(f"brush RLE is truncated: literal block past bit {n_bits}")
            block = bits[pos : pos + count * word_size].reshape(count, word_size)
            run_values.extend((block.astype(np.int64) @ weights).tolist())
            run_lengths.extend([1] * count)
            pos += count * word_size
        i += count
    return np.asarray(run_lengths, dtype=np.int64), np.asarray(run_values, dtype=dtype)


def _as_bytes(rle: Any) -> bytes:
    if isinstance(rle, (bytes, bytearray)):
        return bytes(rle)
    arr = np.asarray(rle)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("brush RLE must be a non-empty list of byte values (ints 0-255)")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError("brush RLE must hold byte values 0-255")
    return arr.astype(np.uint8).tobytes()


def mask_to_brush_rle(mask: np.ndarray) -> list[int]:
    """Bool (H, W) mask -> brush RLE of the RGBA canvas (0 or 255 in all four channels).

    Same bytes as ``label_studio_sdk.converter.brush.mask2rle(mask.astype(np.uint8) * 255)``.
    """
    flat = as_bool_mask(mask).ravel()
    if flat.size == 0:
        raise ValueError("mask must not be empty (0 pixels)")
    # Runs of the mask, times 4 channels: no need to build the (H*W*4) RGBA array.
    ends = np.append(np.flatnonzero(flat[1:] != flat[:-1]), flat.size - 1)
    lengths = np.diff(np.append(-1, ends)).astype(np.int64) * 4
    return _encode_runs(lengths, flat[ends].astype(np.int64) * 255, flat.size * 4)


def brush_rle_to_mask(
    rle: Sequence[int] | bytes | np.ndarray,
    width: int,
    height: int,
    alpha_threshold: int = DEFAULT_ALPHA_THRESHOLD,
) -> np.ndarray:
    """Brush RLE -> bool (height, width) mask: alpha >= ``alpha_threshold``.

    Raises ValueError when the RLE does not decode to exactly ``width * height * 4`` values.
    """
    if not 1 <= alpha_threshold <= 255:
        raise ValueError(f"alpha_threshold must be in [1, 255], got {alpha_threshold}")
    lengths, values = _decode_runs(rle)
    ends = np.cumsum(lengths)
    num = int(ends[-1]) if ends.size else 0
    expected = int(width) * int(height) * 4
    if num != expected:
        raise ValueError(
            f"brush RLE decodes to {num} values, expected width*height*4 = "
            f"{width}*{height}*4 = {expected} (wrong original_width/original_height?)"
        )
    # Pixel p's alpha is value 4p + 3: a run of values [i, j) holds the alphas of pixels
    # [i // 4, j // 4). Fill the fish runs' pixels; never expand to RGBA values.
    starts, stops = (ends - lengths) // 4, ends // 4
    mask = np.zeros(int(height) * int(width), dtype=bool)
    fish = np.flatnonzero(values >= alpha_threshold)
    for start, stop in zip(starts[fish].tolist(), stops[fish].tolist(), strict=True):
        mask[start:stop] = True
    return mask.reshape(int(height), int(width))
