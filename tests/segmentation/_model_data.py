"""Tiny COCO data sets for the dataset/model/training/evaluation tests: ellipses on noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.io.files import write_image
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance


def ellipse_mask(shape_hw: tuple[int, int], centre_xy, axes, angle: float) -> np.ndarray:
    mask = np.zeros(shape_hw, np.uint8)
    cv2.ellipse(mask, (int(centre_xy[0]), int(centre_xy[1])), axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def make_tiny_coco(
    folder: Path,
    num_frames: int = 4,
    num_negatives: int = 1,
    size_wh: tuple[int, int] = (96, 80),
    fish_per_frame: int = 2,
    seed: int = 0,
    name: str = "tiny.json",
) -> Path:
    """Write ``folder/name`` (COCO) and its PNG frames: bright ellipses ("fish") on
    dark noise, plus ``num_negatives`` frames without fish. Returns the JSON path."""
    rng = np.random.default_rng(seed)
    width, height = size_wh
    frames = []
    for index in range(num_frames + num_negatives):
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        instances = []
        if index < num_frames:
            for _ in range(fish_per_frame):
                centre = rng.uniform([16, 16], [width - 16, height - 16])
                axes = (int(rng.integers(9, 14)), int(rng.integers(4, 6)))
                mask = ellipse_mask((height, width), centre, axes, float(rng.uniform(0, 180)))
                # later fish occlude earlier ones: keep visible pixels only
                instances = [
                    Instance(mask_to_box_xyxy(m), rle=encode_rle(m))
                    for m in [i.mask() & ~mask for i in instances]
                    if m.sum() > 0
                ]
                image[mask] = rng.integers(170, 255, 3, dtype=np.uint8)
                instances.append(Instance(mask_to_box_xyxy(mask), rle=encode_rle(mask)))
        rel = f"frames/{index:03d}.png"
        write_image(folder / rel, image)
        frames.append(
            AnnotatedFrame(
                image_id=index + 1,
                image_path=rel,
                width=width,
                height=height,
                camera_id="cam0",
                frame_index=index,
                video="cam0.mp4",
                instances=tuple(instances),
            )
        )
    return write_coco(frames, folder / name)
