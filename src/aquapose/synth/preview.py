"""Contact sheet of a generated rig: a few decoded frames per camera with the ground truth drawn.

Each fish's visible mask is outlined in a colour of its ``fish_id``, with a tag
``<id> S L T`` for its flags (Stationary, Low contrast, Touching). Frames are
chosen to show the difficulties when the clip has them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aquapose.segmentation.io.coco import read_coco
from aquapose.segmentation.io.files import read_json, write_image
from aquapose.segmentation.io.video import read_frames
from aquapose.segmentation.masks import decode_rle
from aquapose.segmentation.types import AnnotatedFrame

_PALETTE = [
    (0, 0, 255), (0, 200, 0), (255, 80, 0), (0, 215, 255), (255, 0, 255),
    (255, 255, 0), (0, 128, 255), (160, 0, 255), (128, 255, 128), (255, 128, 128),
]  # fmt: skip


def write_preview(
    manifest_path: str | Path,
    out_path: str | Path | None = None,
    frames_per_camera: int = 4,
    tile_width: int = 400,
) -> Path:
    """Write a PNG contact sheet (default ``preview.png`` beside the manifest); returns its path."""
    manifest_path = Path(manifest_path)
    if frames_per_camera < 1 or tile_width < 64:
        raise ValueError(
            f"frames_per_camera must be >= 1 and tile_width >= 64, got "
            f"{frames_per_camera} and {tile_width}"
        )
    manifest = read_json(manifest_path)
    root = manifest_path.parent
    rows = []
    for camera in manifest["cameras"]:
        frames = read_coco(root / camera["ground_truth"])
        chosen = pick_frames(frames, frames_per_camera)
        images = read_frames(root / camera["video"], {f.frame_index for f in chosen})
        tiles = [
            _draw(images[f.frame_index], f, tile_width) for f in chosen if f.frame_index in images
        ]
        while len(tiles) < frames_per_camera:
            tiles.append(np.zeros_like(tiles[0]) if tiles else _blank(tile_width, manifest))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out = Path(out_path) if out_path is not None else root / "preview.png"
    return write_image(out, sheet)


def pick_frames(frames: list[AnnotatedFrame], count: int) -> list[AnnotatedFrame]:
    """Up to ``count`` frames: one touching, one stationary, one low-contrast, then spread out."""
    chosen: list[AnnotatedFrame] = []
    for flag in ("touching", "stationary", "low_contrast"):
        hits = [f for f in frames if any(i.extra.get(flag) for i in f.instances)]
        hits = [f for f in hits if f not in chosen]
        if hits and len(chosen) < count:
            chosen.append(hits[len(hits) // 2])
    for i in np.linspace(0, len(frames) - 1, count + 2)[1:-1].round().astype(int):
        if len(chosen) >= count:
            break
        if frames[i] not in chosen:
            chosen.append(frames[i])
    return sorted(chosen, key=lambda f: f.frame_index)


def _draw(image: np.ndarray, frame: AnnotatedFrame, tile_width: int) -> np.ndarray:
    scale = tile_width / image.shape[1]
    size = (tile_width, max(1, int(round(image.shape[0] * scale))))
    tile = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    for inst in frame.instances:
        colour = _PALETTE[int(inst.fish_id or 0) % len(_PALETTE)]
        mask = decode_rle(inst.rle).astype(np.uint8) if inst.rle else None
        if mask is None:
            continue
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        scaled = [np.round(c.astype(np.float64) * scale).astype(np.int32) for c in contours]
        cv2.drawContours(tile, scaled, -1, colour, 1, cv2.LINE_AA)
        tag = str(inst.fish_id) + "".join(
            letter
            for letter, key in (("S", "stationary"), ("L", "low_contrast"), ("T", "touching"))
            if inst.extra.get(key)
        )
        x0, y0 = (int(v * scale) for v in inst.box_xyxy[:2])
        cv2.putText(tile, tag, (x0, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    caption = f"{frame.camera_id} #{frame.frame_index}  fish={len(frame.instances)}"
    cv2.rectangle(tile, (0, 0), (tile_width, 16), (0, 0, 0), -1)
    cv2.putText(tile, caption, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (40, 40, 40), 1)
    return tile


def _blank(tile_width: int, manifest: dict) -> np.ndarray:
    h = int(round(manifest["frame_height"] * tile_width / manifest["frame_width"]))
    return np.zeros((h, tile_width, 3), np.uint8)
