"""COCO JSON adapter: the only module that knows COCO's ``xywh`` boxes and file layout.

Every image entry carries ``camera_id``, ``frame_index`` and ``video``; files are
written atomically and load in ``pycocotools.coco.COCO``. One category, ``fish``
(id 1).

``file_name`` of an image is either an image file (relative to the COCO file's
folder, or absolute) that exists, or a *video frame reference*
``<video path>#frame=<index>`` (:func:`video_frame_name`) when no image file was
written (``segment`` results): the frame is then read from the video
(:func:`~aquapose.segmentation.io.video.read_frame_image`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from aquapose.segmentation.io.files import json_default, read_json
from aquapose.segmentation.masks import decode_rle, encode_rle, rle_area
from aquapose.segmentation.types import AnnotatedFrame, Instance

FISH_CATEGORY = {"id": 1, "name": "fish", "supercategory": "animal"}
_IMAGE_KEYS = {"id", "file_name", "width", "height", "camera_id", "frame_index", "video"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd"}
_ANN_KEYS |= {"score", "fish_id"}
# Boxes may overhang the image by this much (float rounding in other tools).
_BOX_TOLERANCE_PX = 0.5
_FRAME_REF = "#frame="


class CocoFormatError(ValueError):
    """A COCO file that does not follow the format; the message names file, id and field."""


#: ``fail(where, message)``: the error to raise for an entry of the file being read.
_Fail = Callable[[str, str], CocoFormatError]


def video_frame_name(video: str | Path, frame_index: int) -> str:
    """The ``file_name`` of a frame that exists only in its video: ``<video>#frame=<index>``."""
    return f"{Path(video).as_posix()}{_FRAME_REF}{int(frame_index)}"


def parse_video_frame_name(file_name: str) -> tuple[str, int] | None:
    """``(video, frame_index)`` of a video frame reference, None for an image file name."""
    video, sep, index = file_name.rpartition(_FRAME_REF)
    if not sep or not index.isdigit():
        return None
    return video, int(index)


def read_coco(path: str | Path) -> list[AnnotatedFrame]:
    """Read and validate a COCO JSON file into frames (in file order)."""
    path = Path(path)
    return coco_to_frames(read_json(path), source=str(path))


def write_coco(
    frames: Iterable[AnnotatedFrame], path: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write frames as COCO JSON atomically (temp file + rename); returns ``path``.

    Streams: memory holds one frame at a time (see :class:`CocoWriter`).
    """
    with CocoWriter(path, info) as writer:
        for frame in frames:
            writer.add(frame)
    return Path(path)


class CocoWriter:
    """Stream frames into a COCO file: ``with CocoWriter(path) as w: w.add(frame)``.

    Images go to the file as they come, annotations to a spill file beside it; on a
    clean exit both are joined and renamed into place (annotation ids 1, 2, ... in
    frame order). On an error nothing is written. Memory stays bounded for any length.
    """

    def __init__(self, path: str | Path, info: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path}: is a folder, expected a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._info = _info(info)
        self._seen: set[int] = set()
        self.annotations = 0
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        self._images = os.fdopen(fd, "w", encoding="utf-8")
        self._anns = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)  # noqa: SIM115 - closed in __exit__
        self._images.write(
            f'{{"info": {json.dumps(self._info, default=json_default)}, "licenses": [], "images": ['
        )

    def add(self, frame: AnnotatedFrame) -> None:
        """Append one frame and its instances."""
        self.add_entries(*frame_to_coco(frame))

    def add_entries(self, image: dict[str, Any], annotations: list[dict[str, Any]]) -> None:
        """Append one COCO image entry and its annotations (their ids are renumbered)."""
        image_id = image["id"]
        if image_id in self._seen:
            raise ValueError(f"duplicate image_id {image_id} in the frames to write")
        self._images.write(
            ("" if not self._seen else ", ") + json.dumps(image, default=json_default)
        )
        self._seen.add(image_id)
        for ann in annotations:
            ann = {**ann, "id": self.annotations + 1, "image_id": image_id}
            self._anns.write(
                ("" if not self.annotations else ", ") + json.dumps(ann, default=json_default)
            )
            self.annotations += 1

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._images.write('], "annotations": [')
                self._anns.seek(0)
                while chunk := self._anns.read(1 << 20):
                    self._images.write(chunk)
                self._images.write(f'], "categories": [{json.dumps(FISH_CATEGORY)}]}}')
                self._images.flush()
                os.fsync(self._images.fileno())
            self._images.close()
            self._anns.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)


def _info(info: dict[str, Any] | None) -> dict[str, Any]:
    from aquapose import __version__

    return {
        "description": "AquaPose",
        "version": __version__,
        "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(info or {}),
    }


def frame_to_coco(
    frame: AnnotatedFrame, first_annotation_id: int = 1
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One frame -> its COCO image entry and annotations (ids from ``first_annotation_id``)."""
    image = {
        **frame.extra,
        "id": int(frame.image_id),
        "file_name": frame.image_path,
        "width": int(frame.width),
        "height": int(frame.height),
        "camera_id": frame.camera_id,
        "frame_index": int(frame.frame_index),
        "video": frame.video,
    }
    annotations: list[dict[str, Any]] = []
    for inst in frame.instances:
        x0, y0, x1, y1 = (float(v) for v in inst.box_xyxy)
        ann: dict[str, Any] = {
            **inst.extra,
            "id": first_annotation_id + len(annotations),
            "image_id": int(frame.image_id),
            "category_id": FISH_CATEGORY["id"],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": float(rle_area(inst.rle)) if inst.rle else (x1 - x0) * (y1 - y0),
            "iscrowd": 0,
        }
        if inst.rle is not None:
            ann["segmentation"] = {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]}
        if inst.score is not None:
            ann["score"] = float(inst.score)
        if inst.fish_id is not None:
            ann["fish_id"] = int(inst.fish_id)
        annotations.append(ann)
    return image, annotations


def frames_to_coco(
    frames: Iterable[AnnotatedFrame], info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Frames -> COCO dict. Annotation ids are assigned 1, 2, ... in frame order."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen_ids: set[int] = set()
    for frame in frames:
        if frame.image_id in seen_ids:
            raise ValueError(f"duplicate image_id {frame.image_id} in the frames to write")
        seen_ids.add(frame.image_id)
        image, anns = frame_to_coco(frame, first_annotation_id=len(annotations) + 1)
        images.append(image)
        annotations.extend(anns)
    return {
        "info": _info(info),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(FISH_CATEGORY)],
    }


def frame_record(frame: AnnotatedFrame) -> dict[str, Any]:
    """One frame as a JSON-ready record (a journal line): ``{"image": ..., "annotations": [...]}``."""
    image, annotations = frame_to_coco(frame)
    return {"image": image, "annotations": annotations}


def frame_from_record(record: dict[str, Any], source: str = "<record>") -> AnnotatedFrame:
    """The frame of a :func:`frame_record` (validated like a COCO file)."""
    data = {"images": [record["image"]], "annotations": record["annotations"]}
    return coco_to_frames({**data, "categories": [FISH_CATEGORY]}, source=source)[0]


def coco_to_frames(data: Any, source: str = "<coco>") -> list[AnnotatedFrame]:
    """Validate a COCO dict and convert it to frames.

    Raises:
        CocoFormatError: one line naming ``source``, the entry id and the field.
    """

    def fail(where: str, message: str) -> CocoFormatError:
        return CocoFormatError(f"{source}: {where}: {message}")

    if not isinstance(data, dict):
        raise fail("top level", f"expected a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise fail("top level", f"missing key '{key}'")
        if not isinstance(data[key], list):
            raise fail("top level", f"'{key}' must be a list, got {type(data[key]).__name__}")

    categories: dict[int, str] = {}
    for cat in data["categories"]:
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or "name" not in cat:
            raise fail("categories", f"each category needs an int 'id' and a 'name', got {cat!r}")
        categories[int(cat["id"])] = str(cat["name"])

    images: dict[int, dict[str, Any]] = {}
    for img in data["images"]:
        _check_image(img, images, fail)
        images[int(img["id"])] = img

    instances: dict[int, list[Instance]] = {image_id: [] for image_id in images}
    seen_ann: set[int] = set()
    for ann in data["annotations"]:
        instance = _read_annotation(ann, images, categories, seen_ann, fail)
        instances[int(ann["image_id"])].append(instance)

    return [
        AnnotatedFrame(
            image_id=image_id,
            image_path=img["file_name"],
            width=int(img["width"]),
            height=int(img["height"]),
            camera_id=img["camera_id"],
            frame_index=int(img["frame_index"]),
            video=str(img.get("video", "")),
            instances=tuple(instances[image_id]),
            extra={k: v for k, v in img.items() if k not in _IMAGE_KEYS},
        )
        for image_id, img in images.items()
    ]


def _check_image(img: Any, images: dict[int, dict[str, Any]], fail: _Fail) -> None:
    """Raise ``fail(...)`` unless ``img`` is a valid image entry with a new id."""
    if not isinstance(img, dict):
        raise fail("images", f"each image must be an object, got {type(img).__name__}")
    where = f"image id={img.get('id')!r}"
    for key in ("id", "file_name", "width", "height", "camera_id", "frame_index"):
        if key not in img:
            raise fail(where, f"missing field '{key}'")
    if not _is_int(img["id"]):
        raise fail(where, f"field 'id' must be an int, got {img['id']!r}")
    if img["id"] in images:
        raise fail(where, "duplicate image id")
    for key in ("width", "height"):
        if not _is_int(img[key]) or img[key] <= 0:
            raise fail(where, f"field '{key}' must be a positive int, got {img[key]!r}")
    if not _is_int(img["frame_index"]) or img["frame_index"] < 0:
        raise fail(where, f"field 'frame_index' must be an int >= 0, got {img['frame_index']!r}")
    if not isinstance(img["camera_id"], str) or not img["camera_id"]:
        raise fail(where, f"field 'camera_id' must be a non-empty string, got {img['camera_id']!r}")
    if not isinstance(img["file_name"], str) or not img["file_name"]:
        raise fail(where, f"field 'file_name' must be a non-empty string, got {img['file_name']!r}")


def _read_annotation(
    ann: Any,
    images: dict[int, dict[str, Any]],
    categories: dict[int, str],
    seen_ann: set[int],
    fail: _Fail,
) -> Instance:
    """Validate one annotation entry (adding its id to ``seen_ann``); its instance."""
    if not isinstance(ann, dict):
        raise fail("annotations", f"each annotation must be an object, got {type(ann).__name__}")
    where = f"annotation id={ann.get('id')!r}"
    for key in ("id", "image_id", "category_id", "bbox"):
        if key not in ann:
            raise fail(where, f"missing field '{key}'")
    if not _is_int(ann["id"]):
        raise fail(where, f"field 'id' must be an int, got {ann['id']!r}")
    if ann["id"] in seen_ann:
        raise fail(where, "duplicate annotation id")
    seen_ann.add(ann["id"])
    if ann["image_id"] not in images:
        raise fail(where, f"field 'image_id' refers to unknown image {ann['image_id']!r}")
    if ann["category_id"] not in categories:
        raise fail(where, f"field 'category_id' refers to unknown category {ann['category_id']!r}")
    img = images[ann["image_id"]]
    width, height = int(img["width"]), int(img["height"])
    box_xyxy = _read_bbox(ann["bbox"], width, height, lambda m, w=where: fail(w, m))
    rle = None
    if ann.get("segmentation") not in (None, [], {}):
        rle = _read_segmentation(ann["segmentation"], width, height, lambda m, w=where: fail(w, m))
    score = ann.get("score")
    if score is not None and not (_is_number(score) and 0.0 <= score <= 1.0):
        raise fail(where, f"field 'score' must be a number in [0, 1], got {score!r}")
    fish_id = ann.get("fish_id")
    if fish_id is not None and not _is_int(fish_id):
        raise fail(where, f"field 'fish_id' must be an int, got {fish_id!r}")
    extra = {k: v for k, v in ann.items() if k not in _ANN_KEYS}
    return Instance(
        box_xyxy=box_xyxy,
        rle=rle,
        score=score,
        fish_id=fish_id,
        category=categories[int(ann["category_id"])],
        extra=extra,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _read_bbox(bbox: Any, width: int, height: int, fail: Any) -> np.ndarray:
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(_is_number(v) and math.isfinite(v) for v in bbox)
    ):
        raise fail(f"field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise fail(f"field 'bbox' has zero or negative area (w={w}, h={h})")
    tol = _BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise fail(f"field 'bbox' {bbox} lies outside the {width}x{height} image")
    return np.array(
        [max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))], float
    )


def _read_segmentation(seg: Any, width: int, height: int, fail: Any) -> dict[str, Any]:
    """Polygon list or RLE (compressed/uncompressed) -> compressed RLE with str counts."""
    if isinstance(seg, list):
        if not all(
            isinstance(p, list)
            and len(p) >= 6
            and len(p) % 2 == 0
            and all(_is_number(v) for v in p)
            for p in seg
        ):
            raise fail("field 'segmentation' polygons must be lists of >= 3 (x, y) pairs")
        merged = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        return {"size": [height, width], "counts": merged["counts"].decode("ascii")}
    if not isinstance(seg, dict):
        raise fail(
            f"field 'segmentation' must be an RLE object or polygons, got {type(seg).__name__}"
        )
    if list(seg.get("size", [])) != [height, width]:
        raise fail(
            f"field 'segmentation' RLE size {seg.get('size')!r} does not match the image's "
            f"[height, width] [{height}, {width}]"
        )
    try:
        mask = decode_rle(seg)
    except ValueError as err:
        raise fail(f"field 'segmentation' is not a valid RLE: {err}") from None
    if isinstance(seg.get("counts"), list):
        return encode_rle(mask)
    counts = seg["counts"]
    return {
        "size": [height, width],
        "counts": counts.decode() if isinstance(counts, bytes) else counts,
    }
