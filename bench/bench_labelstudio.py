"""Label Studio brush RLE: our codec against label-studio-sdk's converter (same bytes).

Rows (one 1600x1200 rig frame, 9 fish of the field's sizes, one mask per fish):

- encoding the 9 fish masks to brush RLE, ms per frame, beside
  ``label_studio_sdk.converter.brush.mask2rle``;
- decoding them back to bool masks, ms per frame, beside ``brush.decode_rle`` + alpha;
- the whole file round trip (export tasks.json of 20 frames, import the accepted export),
  frames/s, beside the same with the SDK's codec patched in.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, format_table, timed  # noqa: E402
from aquapose.segmentation.io import labelstudio  # noqa: E402
from aquapose.segmentation.io.brush_rle import brush_rle_to_mask, mask_to_brush_rle  # noqa: E402
from aquapose.segmentation.io.coco import write_coco  # noqa: E402
from aquapose.segmentation.io.files import write_image  # noqa: E402
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy  # noqa: E402
from aquapose.segmentation.types import AnnotatedFrame, Instance  # noqa: E402

W, H = 1600, 1200


def rig_masks(seed: int = 0) -> list[np.ndarray]:
    """9 elongated fish, lengths 40-300 px (median ~56), anywhere in the frame."""
    rng = np.random.default_rng(seed)
    lengths = [40, 48, 52, 56, 56, 60, 70, 120, 300]
    masks = []
    for length in lengths:
        mask = np.zeros((H, W), np.uint8)
        center = (int(rng.integers(200, W - 200)), int(rng.integers(200, H - 200)))
        axes = (length // 2, max(length // 6, 3))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks.append(mask.astype(bool))
    return masks


def sdk_encode(mask: np.ndarray) -> list[int]:
    from label_studio_sdk.converter import brush

    return brush.mask2rle(mask.astype(np.uint8) * 255)


def sdk_decode(rle: list[int], width: int, height: int, alpha_threshold: int = 128) -> np.ndarray:
    from label_studio_sdk.converter import brush

    values = brush.decode_rle(bytes(rle))
    return values.reshape(height, width, 4)[:, :, 3] >= alpha_threshold


def run(quick: bool = False) -> list[BenchRow]:
    masks = rig_masks()
    repeat = 2 if quick else 5
    ours_rles = [mask_to_brush_rle(m) for m in masks]
    assert ours_rles == [sdk_encode(m) for m in masks], "codec differs from the SDK"
    enc_ours = timed(lambda: [mask_to_brush_rle(m) for m in masks], repeat)
    enc_sdk = timed(lambda: [sdk_encode(m) for m in masks], repeat)
    dec_ours = timed(lambda: [brush_rle_to_mask(r, W, H) for r in ours_rles], repeat)
    dec_sdk = timed(lambda: [sdk_decode(r, W, H) for r in ours_rles], repeat)
    rows = [
        BenchRow("brush encode, 9 fish @1600x1200", enc_ours * 1e3, "ms/frame",
                 "label_studio_sdk mask2rle", enc_sdk * 1e3, higher_is_better=False),
        BenchRow("brush decode, 9 fish @1600x1200", dec_ours * 1e3, "ms/frame",
                 "label_studio_sdk decode_rle", dec_sdk * 1e3, higher_is_better=False),
    ]  # fmt: skip

    n_frames = 4 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_image(root / "frame.png", np.zeros((H, W), np.uint8))
        instances = tuple(Instance(mask_to_box_xyxy(m), encode_rle(m), score=0.9) for m in masks)
        frames = [
            AnnotatedFrame(i + 1, "frame.png", W, H, "cam0", i, "cam0.mp4", instances)
            for i in range(n_frames)
        ]
        coco = write_coco(frames, root / "coco.json")

        def round_trip() -> None:
            export = labelstudio.export_to_label_studio(coco, root / "ls")
            import json

            tasks = json.loads(export.tasks_json.read_text())
            reviewed = [
                {
                    "id": t,
                    "data": task["data"],
                    "annotations": [{"id": t, **task["predictions"][0]}],
                }
                for t, task in enumerate(tasks)
            ]
            labelstudio.import_from_label_studio(reviewed, image_root=root)

        ours = timed(round_trip, 1)
        with (
            mock.patch.object(labelstudio, "mask_to_brush_rle", sdk_encode),
            mock.patch.object(labelstudio, "brush_rle_to_mask", sdk_decode),
        ):
            sdk = timed(round_trip, 1)
    rows.append(
        BenchRow(f"file round trip ({n_frames} frames x 9 fish)", n_frames / ours, "frames/s",
                 "same with the SDK's codec", n_frames / sdk)
    )  # fmt: skip
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
