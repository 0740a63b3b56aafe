"""Label Studio adapter: the only module that knows Label Studio's task JSON, its percent
coordinates and its brush RLE.

Export (:func:`export_to_label_studio`): one task per frame with the pseudo-labels as
*predictions* (a ``brushlabels`` region per fish, or ``polygonlabels`` with
``polygons=True``) and the labeling config (BrushLabels ``mask`` [+ PolygonLabels
``polygon``], label ``fish``, on Image ``image``). ``data.image`` is a local-files URL
(``/data/local-files/?d=<path relative to image_root>``, served when Label Studio runs with
``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<image_root>``) or ``url_prefix + <relative path>``.
``data`` also carries ``camera_id``, ``frame_index``, ``video``, ``image_id``, ``width``,
``height``, ``aquapose_regions`` (region id -> the fish it came from, so ``fish_id``
and the per-fish COCO extras survive review) and ``aquapose_extra`` (the image's extra
COCO keys), and the review queue's ``uncertainty``, ``review_reasons`` and ``review_rank``
(see :func:`review_uncertainty`; Label Studio's data manager shows and sorts them).

Review queue (``order="uncertain"``): tasks come least-trusted first, so a reviewer who
stops after K tasks has fixed the labels the chain trusts least. A frame's uncertainty
counts the fish whose mask the chain does not trust, plus the doubt in the masks it kept:

    uncertainty = rejected + 2 * merged + box_only + sum(1 - score of each kept mask)

- *rejected*: a mask the quality filter rejected (``accepted: false`` on an instance, as in
  ``pseudolabels.json``; or an entry of the image's ``rejected_boxes_xyxy``, as in
  ``train.json``, with its reason from ``rejected_reasons``): a fish without a usable label;
- *merged*: a blob flagged as probably several fish (an instance with ``merged: true`` or
  ``reject_reason: "merged"``, or an entry of the image's ``ignore_regions_xyxy``): at least
  two fish without a mask, hence weight 2;
- *box_only*: an instance with ``mask_trusted: false`` (its box is trusted, its mask not);
- *score*: the detection score of each other (kept) mask; one below ``low_score`` is named
  in the reasons.

Ties keep the file order. Label Studio numbers imported tasks in file order and its
default labeling stream follows those ids, so the queue order carries over.

Import (:func:`import_from_label_studio`), the policy:
- a reviewed frame is a human label: the pseudo-labeler's trust marks are dropped from it
  (per fish ``accepted``, ``reject_reason``, ``mask_trusted``, ``merged``; per image
  ``rejected_boxes_xyxy``, ``rejected_reasons``, ``ignore_regions_xyxy``), so training
  uses every reviewed mask and no longer avoids or ignores parts of the frame;
- reads a project's JSON export (``annotations``, or ``completions`` of older versions);
- per task, the annotation kept is the newest (``updated_at``, then ``created_at``, then
  id) of the non-cancelled ones, those marked ``ground_truth`` first; the others are
  counted in ``ImportReport.ignored_annotations``;
- tasks whose annotations are all cancelled / skipped (``was_cancelled``, ``skipped``) are
  left out and counted (``cancelled``), as are tasks nobody annotated (``unreviewed``);
- a kept annotation with no regions is a reviewed frame with no fish: it becomes an image
  with no annotations (Label Studio's own COCO export drops those);
- brush pixels are fish when alpha >= ``alpha_threshold`` (128; Label Studio's own
  converters use any alpha > 0: pass 1). Polygon vertices are read at pixel centres
  (the export writes contour pixels' centres) and filled with ``cv2.fillPoly``;
- regions exported from one fish (same ``aquapose_regions`` entry) are merged back into
  one instance; a region a reviewer added becomes a new instance;
- anything unexpected (truncated JSON, unknown result types or labels, RLE that does not
  decode to width*height*4, missing ``original_width``/``original_height``, rotated
  images, image paths outside ``image_root``) raises one :class:`LabelStudioFormatError`
  naming the task, and nothing is written.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeGuard
from urllib.parse import parse_qs, quote, unquote, urlsplit

import cv2
import numpy as np

from aquapose.segmentation.io.brush_rle import (
    DEFAULT_ALPHA_THRESHOLD,
    brush_rle_to_mask,
    mask_to_brush_rle,
)
from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import (
    atomic_write_bytes,
    atomic_write_json,
    read_image,
    read_json,
)
from aquapose.segmentation.masks import encode_rle, mask_iou, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance

LABEL = "fish"
IMAGE_NAME = "image"
BRUSH_NAME = "mask"
POLYGON_NAME = "polygon"
LOCAL_FILES_PATH = "/data/local-files/"
REGIONS_KEY = "aquapose_regions"
EXTRA_KEY = "aquapose_extra"
_RESULT_TYPES = {"brushlabels": BRUSH_NAME, "polygonlabels": POLYGON_NAME}
_POLYGON_SHIFT = 8  # cv2.fillPoly sub-pixel bits
#: Task orders of :func:`export_to_label_studio`.
ORDERS = ("file", "uncertain")
#: Kept masks scored below this are named in a task's ``review_reasons``.
DEFAULT_LOW_SCORE = 0.8
#: The pseudo-labeler's trust marks, dropped from reviewed frames on import.
_TRUST_KEYS = ("accepted", "reject_reason", "mask_trusted", "merged")
_FRAME_TRUST_KEYS = ("rejected_boxes_xyxy", "rejected_reasons", "ignore_regions_xyxy")


class LabelStudioFormatError(ValueError):
    """A Label Studio export this adapter cannot import; the message names file, task, field."""


@dataclass(frozen=True)
class LabelStudioExport:
    """What :func:`export_to_label_studio` wrote."""

    tasks_json: Path
    config_xml: Path
    tasks: int
    regions: int
    image_root: Path
    local_files: bool


@dataclass(frozen=True)
class ImportReport:
    """Frames imported from a Label Studio export and what was left out.

    Attributes:
        frames: the reviewed frames (human labels: ``Instance.score is None``).
        tasks: tasks in the export.
        empty: imported frames reviewed as holding no fish.
        instances: fish imported.
        cancelled: tasks left out because every annotation was cancelled / skipped.
        unreviewed: tasks left out because nobody annotated them (predictions only).
        ignored_annotations: annotations not used (cancelled or older beside the kept one).
        empty_regions: regions dropped because they hold no pixel.
        out_coco: the COCO file written, if any.
    """

    frames: tuple[AnnotatedFrame, ...]
    tasks: int
    empty: int
    instances: int
    cancelled: int
    unreviewed: int
    ignored_annotations: int
    empty_regions: int
    out_coco: Path | None = None

    @property
    def imported(self) -> int:
        return len(self.frames)

    def summary(self) -> str:
        return (
            f"{self.imported} of {self.tasks} tasks imported ({self.instances} fish, "
            f"{self.empty} frames with no fish); left out: {self.cancelled} cancelled/skipped, "
            f"{self.unreviewed} not annotated; {self.ignored_annotations} other annotations "
            f"ignored; {self.empty_regions} empty regions dropped"
        )


# ----------------------------------------------------------------------------- export


def labeling_config(polygons: bool = False) -> str:
    """The labeling config XML: BrushLabels (and PolygonLabels with ``polygons``), label fish."""
    polygon = (
        f'  <PolygonLabels name="{POLYGON_NAME}" toName="{IMAGE_NAME}" strokeWidth="2" '
        f'pointSize="small" opacity="0.4">\n'
        f'    <Label value="{LABEL}" background="#1E90FF"/>\n'
        "  </PolygonLabels>\n"
        if polygons
        else ""
    )
    return (
        "<View>\n"
        '  <Header value="$camera_id, frame $frame_index"/>\n'
        f'  <Image name="{IMAGE_NAME}" value="$image" zoom="true" zoomControl="true"/>\n'
        f'  <BrushLabels name="{BRUSH_NAME}" toName="{IMAGE_NAME}">\n'
        f'    <Label value="{LABEL}" background="#FF8C00"/>\n'
        "  </BrushLabels>\n"
        f"{polygon}"
        "</View>\n"
    )


@dataclass(frozen=True)
class ExportConfig:
    """Settings of ``aquapose ls export`` / ``push`` (see :func:`export_to_label_studio`)."""

    image_root: Path | None = None
    url_prefix: str | None = None
    polygons: bool = False
    model_version: str = "aquapose"
    order: str = "file"
    low_score: float = DEFAULT_LOW_SCORE


@dataclass(frozen=True)
class ImportConfig:
    """Settings of ``aquapose ls import`` / ``pull`` (see :func:`import_from_label_studio`)."""

    url_prefix: str | None = None
    alpha_threshold: int = DEFAULT_ALPHA_THRESHOLD


def export_to_label_studio(
    coco: str | Path | Sequence[AnnotatedFrame],
    out_dir: str | Path,
    *,
    coco_dir: str | Path | None = None,
    image_root: str | Path | None = None,
    url_prefix: str | None = None,
    polygons: bool = False,
    model_version: str = "aquapose",
    order: str = "file",
    low_score: float = DEFAULT_LOW_SCORE,
) -> LabelStudioExport:
    """Write ``out_dir/tasks.json`` (one task per frame, fish as predictions) and
    ``out_dir/labeling_config.xml``.

    Args:
        coco: a COCO JSON path, or frames.
        coco_dir: folder the frames' relative ``image_path`` are relative to (default:
            the COCO file's folder; required for frames with relative paths).
        image_root: Label Studio's local-files document root (or the folder ``url_prefix``
            serves); every image must lie inside it. Default: the deepest folder that
            holds ``coco_dir`` and every image (the COCO file's folder when the images
            lie under it).
        url_prefix: serve images as ``url_prefix + relative path`` instead of local-files URLs.
        polygons: predictions as polygons (percent coordinates) instead of brush RLE.
        model_version: the predictions' ``model_version``.
        order: ``"file"`` (the frames' order) or ``"uncertain"``: the review queue, the
            frames whose labels the chain trusts least first (rule in the module
            docstring; every task's ``data`` carries ``uncertainty``, ``review_reasons``
            and ``review_rank`` either way).
        low_score: kept masks scored below this are named in ``review_reasons``.
    """
    tasks, root = frames_to_tasks(
        coco,
        coco_dir=coco_dir,
        image_root=image_root,
        url_prefix=url_prefix,
        polygons=polygons,
        model_version=model_version,
        order=order,
        low_score=low_score,
    )
    out_dir = Path(out_dir)
    regions = sum(len(t["predictions"][0]["result"]) for t in tasks)
    tasks_json = atomic_write_json(out_dir / "tasks.json", tasks)
    config_xml = atomic_write_bytes(
        out_dir / "labeling_config.xml", labeling_config(polygons).encode("utf-8")
    )
    return LabelStudioExport(tasks_json, config_xml, len(tasks), regions, root, url_prefix is None)


def frames_to_tasks(
    coco: str | Path | Sequence[AnnotatedFrame],
    *,
    coco_dir: str | Path | None = None,
    image_root: str | Path | None = None,
    url_prefix: str | None = None,
    polygons: bool = False,
    model_version: str = "aquapose",
    order: str = "file",
    low_score: float = DEFAULT_LOW_SCORE,
) -> tuple[list[dict[str, Any]], Path]:
    """Frames -> Label Studio tasks (list of dicts) and the image root used; see
    :func:`export_to_label_studio`."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
    if not 0.0 <= low_score <= 1.0:
        raise ValueError(f"low_score must be in [0, 1], got {low_score}")
    if isinstance(coco, (str, Path)):
        frames: Sequence[AnnotatedFrame] = read_coco(coco)
        coco_dir = Path(coco).parent if coco_dir is None else coco_dir
    else:
        frames = coco
    base = Path(os.path.abspath(coco_dir)) if coco_dir is not None else None
    paths = []
    for frame in frames:
        path = Path(frame.image_path)
        if not path.is_absolute():
            if base is None:
                raise ValueError(
                    f"image {frame.image_id}: relative image_path {frame.image_path!r} needs "
                    "coco_dir (the folder it is relative to)"
                )
            path = base / path
        path = Path(os.path.abspath(path))
        if not path.is_file():
            raise FileNotFoundError(f"image {frame.image_id}: {path}: image file not found")
        paths.append(path)
    folders = [p.parent for p in paths] + ([base] if base is not None else [])
    root = Path(os.path.abspath(image_root)) if image_root is not None else _common_folder(folders)
    if root is None:
        raise ValueError("no images and no image_root: nothing to export")
    tasks = []
    for frame, path in zip(frames, paths, strict=True):
        if not path.is_relative_to(root):
            raise ValueError(
                f"image {frame.image_id}: {path} is outside the image root {root}; Label Studio "
                "serves files under one root: pass image_root (the local-files document root)"
            )
        rel = path.relative_to(root).as_posix()
        task = _frame_task(frame, _image_url(rel, url_prefix), polygons, model_version)
        uncertainty, reasons = review_uncertainty(frame, low_score)
        task["data"]["uncertainty"] = round(uncertainty, 4)
        task["data"]["review_reasons"] = "; ".join(reasons)
        tasks.append(task)
    queue = sorted(range(len(tasks)), key=lambda k: -tasks[k]["data"]["uncertainty"])
    for rank, k in enumerate(queue, 1):
        tasks[k]["data"]["review_rank"] = rank
    if order == "uncertain":
        tasks = [tasks[k] for k in queue]
    return tasks, root


def review_uncertainty(
    frame: AnnotatedFrame, low_score: float = DEFAULT_LOW_SCORE
) -> tuple[float, list[str]]:
    """How little the chain trusts a frame's labels, and why (the review queue's rule).

    Returns ``rejected + 2 * merged + box_only + sum(1 - score)`` over the kept masks
    (see the module docstring for what each counts) and the reasons, e.g.
    ``["rejected: low_contrast x2, small_area", "box-only fish x1", "low score 0.42"]``.
    A negative or empty frame scores 0 with no reasons.
    """
    rejected: Counter[str] = Counter()
    merged = box_only = 0
    doubt = 0.0
    low: list[float] = []
    for inst in frame.instances:
        extra = inst.extra
        if extra.get("merged") is True or extra.get("reject_reason") == "merged":
            merged += 1
        elif extra.get("accepted") is False:
            rejected[str(extra.get("reject_reason") or "unknown")] += 1
        elif extra.get("mask_trusted") is False or inst.rle is None:
            box_only += 1
        elif inst.score is not None:
            doubt += 1.0 - float(inst.score)
            if inst.score < low_score:
                low.append(float(inst.score))
    boxes = frame.extra.get("rejected_boxes_xyxy")
    boxes = boxes if isinstance(boxes, list) else []
    why = frame.extra.get("rejected_reasons")
    why = why if isinstance(why, list) and len(why) == len(boxes) else ["unknown"] * len(boxes)
    rejected.update(str(r or "unknown") for r in why)
    regions = frame.extra.get("ignore_regions_xyxy")
    merged += len(regions) if isinstance(regions, list) else 0
    reasons = []
    if rejected:
        counts = (f"{r} x{n}" if n > 1 else r for r, n in sorted(rejected.items()))
        reasons.append("rejected: " + ", ".join(counts))
    if merged:
        reasons.append(f"merged blob x{merged}")
    if box_only:
        reasons.append(f"box-only fish x{box_only}")
    if low:
        reasons.append("low score " + ", ".join(f"{v:.2f}" for v in sorted(low)))
    return sum(rejected.values()) + 2.0 * merged + box_only + doubt, reasons


def _common_folder(folders: Sequence[Path]) -> Path | None:
    """The deepest folder that holds every one of ``folders`` (None without any)."""
    if not folders:
        return None
    try:
        return Path(os.path.commonpath(folders))
    except ValueError:  # paths on different drives
        raise ValueError(
            "the images lie on different drives: pass image_root (Label Studio serves one root)"
        ) from None


def _image_url(rel: str, url_prefix: str | None) -> str:
    if url_prefix is None:
        return f"{LOCAL_FILES_PATH}?d={quote(rel, safe='/')}"
    return url_prefix + ("" if url_prefix.endswith("/") else "/") + quote(rel, safe="/")


def _frame_task(
    frame: AnnotatedFrame, image_url: str, polygons: bool, model_version: str
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    regions: dict[str, dict[str, Any]] = {}
    for k, inst in enumerate(frame.instances):
        if inst.rle is None:
            raise ValueError(
                f"image {frame.image_id}: instance {k} has no mask; Label Studio review needs masks"
            )
        mask = inst.mask()
        shapes = _mask_polygons(mask) if polygons else [None]
        for m, points in enumerate(shapes):
            region_id = f"i{frame.image_id}f{k}" + (f"p{m}" if polygons else "")
            regions[region_id] = {"fish": k, "fish_id": inst.fish_id, "extra": dict(inst.extra)}
            result = _region(region_id, frame.width, frame.height, mask, points)
            if inst.score is not None:
                result["score"] = inst.score
            results.append(result)
    scores = [inst.score for inst in frame.instances if inst.score is not None]
    prediction: dict[str, Any] = {"model_version": model_version, "result": results}
    if scores:
        prediction["score"] = float(np.mean(scores))
    data = {
        "image": image_url,
        "camera_id": frame.camera_id,
        "frame_index": int(frame.frame_index),
        "video": frame.video,
        "image_id": int(frame.image_id),
        "width": int(frame.width),
        "height": int(frame.height),
        REGIONS_KEY: regions,
    }
    if frame.extra:
        data[EXTRA_KEY] = dict(frame.extra)
    return {"data": data, "predictions": [prediction]}


def _region(
    region_id: str, width: int, height: int, mask: np.ndarray, points: list[list[float]] | None
) -> dict[str, Any]:
    kind = "brushlabels" if points is None else "polygonlabels"
    value: dict[str, Any]
    if points is None:
        value = {"format": "rle", "rle": mask_to_brush_rle(mask), "brushlabels": [LABEL]}
    else:
        value = {"points": points, "closed": True, "polygonlabels": [LABEL]}
    return {
        "id": region_id,
        "from_name": _RESULT_TYPES[kind],
        "to_name": IMAGE_NAME,
        "type": kind,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": value,
    }


def _mask_polygons(mask: np.ndarray) -> list[list[list[float]]]:
    """Outer contours of a bool mask as percent ``[x, y]`` points at pixel centres.

    Holes and parts thinner than 3 contour points are lost (polygon mode is lossy;
    brush is exact).
    """
    height, width = mask.shape
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    shapes = []
    for contour in contours:
        xy = contour.reshape(-1, 2).astype(np.float64)
        if len(xy) < 3:
            continue
        percent = np.column_stack(
            [(xy[:, 0] + 0.5) * 100.0 / width, (xy[:, 1] + 0.5) * 100.0 / height]
        )
        shapes.append(percent.tolist())
    return shapes


def exported_task(
    task: dict[str, Any],
    masks: Sequence[np.ndarray] | None,
    *,
    task_id: int,
    annotation_id: int | None = None,
    when: str = "2026-01-01T00:00:00.000000Z",
    match_iou: float = 0.5,
) -> dict[str, Any]:
    """``task`` (from :func:`export_to_label_studio`) as Label Studio's JSON export holds it
    after a reviewer submitted ``masks`` (bool ``(H, W)``, frame space; ``[]``: no fish) as
    its fish, or, with ``masks=None``, left it unannotated.

    One brush region per non-empty mask. A mask that overlaps a predicted fish with IoU >=
    ``match_iou`` keeps that prediction's region id, as when a reviewer corrects a
    prediction, so its fish id and extras come back on import; others are new regions.
    For scripted reviews and tests (the demo's simulated reviewer).
    """
    out: dict[str, Any] = {"id": int(task_id), **copy.deepcopy(task)}
    if masks is None:
        out["annotations"] = []
        return out
    data = task["data"]
    width, height = int(data["width"]), int(data["height"])
    annotation_id = int(task_id if annotation_id is None else annotation_id)
    predicted: dict[int, tuple[str, np.ndarray]] = {}  # fish -> (first region id, mask)
    regions = data.get(REGIONS_KEY) or {}
    for result in (task.get("predictions") or [{}])[0].get("result", []):
        fish = regions.get(result.get("id"), {}).get("fish")
        if result.get("type") != "brushlabels" or fish is None:
            continue
        mask = brush_rle_to_mask(result["value"]["rle"], width, height)
        rid, old = predicted.get(fish, (result["id"], np.zeros_like(mask)))
        predicted[fish] = (rid, old | mask)
    results = []
    for n, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(
                f"task {task_id}: mask {n} is {mask.shape}, the image {height}x{width}"
            )
        if not mask.any():
            continue
        best = max(predicted, key=lambda f: mask_iou(mask, predicted[f][1]), default=None)
        region_id = f"r{annotation_id}_{n}"
        if best is not None and mask_iou(mask, predicted[best][1]) >= match_iou:
            region_id = predicted.pop(best)[0]
        results.append(_region(region_id, width, height, mask, None))
    out["annotations"] = [
        {
            "id": annotation_id,
            "completed_by": 1,
            "result": results,
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": when,
            "updated_at": when,
            "lead_time": 0.0,
        }
    ]
    return out


# ----------------------------------------------------------------------------- import


def import_from_label_studio(
    export_json: str | Path | list[dict[str, Any]],
    *,
    image_root: str | Path,
    url_prefix: str | None = None,
    out_coco: str | Path | None = None,
    alpha_threshold: int = DEFAULT_ALPHA_THRESHOLD,
) -> ImportReport:
    """Read a Label Studio project's JSON export into frames (and COCO, with ``out_coco``).

    Args:
        export_json: path of the export (``[{"id", "data", "annotations", ...}, ...]``) or
            the loaded list.
        image_root: folder ``data.image`` paths are relative to (the local-files document
            root, or the folder ``url_prefix`` serves). Paths leaving it are refused.
        url_prefix: the prefix the tasks' image URLs were made with, if not local-files.
        out_coco: write the frames there (atomically; ``file_name`` relative to its folder).
        alpha_threshold: brush pixels with alpha >= this are fish (1..255).

    See the module docstring for the policy (annotation choice, cancelled and empty tasks).
    """
    if isinstance(export_json, (str, Path)):
        source = str(export_json)
        try:
            tasks = read_json(export_json)
        except ValueError as err:
            raise LabelStudioFormatError(
                f"{err} (truncated or not a Label Studio export?)"
            ) from None
    else:
        source, tasks = "export", export_json
    if not isinstance(tasks, list):
        raise LabelStudioFormatError(
            f"{source}: expected a Label Studio JSON export (a list of tasks), got "
            f"{type(tasks).__name__}; JSON_MIN and COCO exports are not supported"
        )
    if not 1 <= int(alpha_threshold) <= 255:
        raise ValueError(f"alpha_threshold must be in [1, 255], got {alpha_threshold}")
    ctx = _ImportContext(source, Path(os.path.abspath(image_root)), url_prefix, alpha_threshold)
    out_dir = Path(os.path.abspath(out_coco)).parent if out_coco is not None else None
    frames: list[AnnotatedFrame] = []
    seen: dict[int, Any] = {}
    for task in tasks:
        frame = ctx.task_frame(task, out_dir)
        if frame is None:
            continue
        if frame.image_id in seen:
            raise LabelStudioFormatError(
                f"{source}: tasks {seen[frame.image_id]} and {task.get('id')} are both image "
                f"{frame.image_id} (pushed twice?)"
            )
        seen[frame.image_id] = task.get("id")
        frames.append(frame)
    report = ImportReport(
        frames=tuple(frames),
        tasks=len(tasks),
        empty=sum(1 for f in frames if not f.instances),
        instances=sum(len(f.instances) for f in frames),
        cancelled=ctx.cancelled,
        unreviewed=ctx.unreviewed,
        ignored_annotations=ctx.ignored,
        empty_regions=ctx.empty_regions,
    )
    if out_coco is None:
        return report
    info = {"description": f"imported from Label Studio export {Path(source).name}"}
    path = write_coco(frames, out_coco, info=info)
    return dataclasses.replace(report, out_coco=path)


class _ImportContext:
    """Counters and settings while walking an export's tasks."""

    def __init__(
        self, source: str, image_root: Path, url_prefix: str | None, alpha_threshold: int
    ) -> None:
        self.source = source
        self.image_root = image_root
        self.url_prefix = url_prefix
        self.alpha_threshold = int(alpha_threshold)
        self.cancelled = self.unreviewed = self.ignored = self.empty_regions = 0

    def fail(self, where: str, message: str) -> LabelStudioFormatError:
        return LabelStudioFormatError(f"{self.source}: {where}: {message}")

    def task_frame(self, task: Any, out_dir: Path | None) -> AnnotatedFrame | None:
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise self.fail(
                f"task {task.get('id') if isinstance(task, dict) else '?'}",
                "expected an object with 'data' (is this a Label Studio JSON export?)",
            )
        where = f"task {task.get('id')}"
        key = "annotations" if "annotations" in task else "completions"
        annotations = task.get(key) or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise self.fail(where, f"'{key}' must be a list of objects")
        kept = [a for a in annotations if not (a.get("was_cancelled") or a.get("skipped"))]
        if not kept:
            if annotations:
                self.cancelled += 1
            else:
                self.unreviewed += 1
            return None
        annotation = max(kept, key=_annotation_rank)
        self.ignored += len(annotations) - 1
        where += f", annotation {annotation.get('id')}"
        return self._frame(task, annotation, where, out_dir)

    def _frame(
        self, task: dict[str, Any], annotation: dict[str, Any], where: str, out_dir: Path | None
    ) -> AnnotatedFrame:
        data = task["data"]
        for field in ("image", "camera_id", "frame_index"):
            if field not in data:
                raise self.fail(
                    where, f"data has no '{field}' (tasks must come from `aquapose ls export`)"
                )
        results = annotation.get("result") or []
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise self.fail(where, "'result' must be a list of region objects")
        path = self.local_path(data["image"], where)
        width, height = self._size(data, results, path, where)
        regions = data.get(REGIONS_KEY)
        regions = regions if isinstance(regions, dict) else {}
        masks: dict[tuple[str, int], np.ndarray] = {}
        origins: dict[tuple[str, int], dict[str, Any]] = {}
        for n, result in enumerate(results):
            mask = self._result_mask(result, width, height, where)
            region = regions.get(str(result.get("id")))
            key = ("new", n)
            if isinstance(region, dict) and _is_int(region.get("fish")):
                key = ("fish", int(region["fish"]))
                origins[key] = region
            masks[key] = masks[key] | mask if key in masks else mask
        instances = []
        for key, mask in masks.items():
            if not mask.any():
                self.empty_regions += 1
                continue
            origin = origins.get(key, {})
            fish_id, extra = origin.get("fish_id"), origin.get("extra")
            instances.append(
                Instance(
                    box_xyxy=mask_to_box_xyxy(mask),
                    rle=encode_rle(mask),
                    fish_id=int(fish_id) if _is_int(fish_id) else None,
                    extra=_without(extra, _TRUST_KEYS),
                )
            )
        image_path = str(path)
        if out_dir is not None:
            with contextlib.suppress(ValueError):  # ValueError: another drive (Windows)
                image_path = Path(os.path.relpath(path, out_dir)).as_posix()
        try:
            return AnnotatedFrame(
                image_id=_as_int(data.get("image_id", task.get("id")), "image_id"),
                image_path=image_path,
                width=width,
                height=height,
                camera_id=data["camera_id"],
                frame_index=data["frame_index"],
                video=str(data.get("video", "")),
                instances=tuple(instances),
                extra={
                    **_without(data.get(EXTRA_KEY), _FRAME_TRUST_KEYS),
                    "ls_task_id": task.get("id"),
                    "ls_annotation_id": annotation.get("id"),
                },
            )
        except (TypeError, ValueError) as err:
            raise self.fail(where, str(err)) from None

    def _size(
        self, data: dict[str, Any], results: list[dict[str, Any]], path: Path, where: str
    ) -> tuple[int, int]:
        sizes = set()
        for result in results:
            w, h = result.get("original_width"), result.get("original_height")
            if not (_is_int(w) and _is_int(h) and int(w) > 0 and int(h) > 0):
                raise self.fail(
                    where,
                    f"region {result.get('id')!r} has no valid original_width/original_height "
                    f"(got {w!r}, {h!r}); re-export the project from Label Studio",
                )
            rotation = result.get("image_rotation") or 0
            if rotation != 0:
                raise self.fail(
                    where,
                    f"region {result.get('id')!r} was drawn on an image rotated by {rotation} "
                    "degrees; undo the rotation in Label Studio and export again",
                )
            sizes.add((int(w), int(h)))
        if _is_int(data.get("width")) and _is_int(data.get("height")):
            sizes.add((int(data["width"]), int(data["height"])))
        if len(sizes) > 1:
            raise self.fail(where, f"regions disagree on the image size: {sorted(sizes)}")
        if sizes:
            return sizes.pop()
        image = read_image(path)  # no size anywhere in the task: ask the image itself
        return int(image.shape[1]), int(image.shape[0])

    def _result_mask(
        self, result: dict[str, Any], width: int, height: int, where: str
    ) -> np.ndarray:
        kind = result.get("type")
        region = f"region {result.get('id')!r}"
        if kind not in _RESULT_TYPES:
            raise self.fail(
                where,
                f"{region} has result type {kind!r}; expected one of {sorted(_RESULT_TYPES)} "
                "(the labeling config of `aquapose ls export`)",
            )
        value = result.get("value")
        if not isinstance(value, dict):
            raise self.fail(where, f"{region} has no 'value' object")
        labels = value.get(kind)
        if not isinstance(labels, list) or labels != [LABEL]:
            raise self.fail(where, f"{region} has labels {labels!r}; expected [{LABEL!r}]")
        if kind == "brushlabels":
            if value.get("format", "rle") != "rle":
                raise self.fail(where, f"{region} has brush format {value.get('format')!r}")
            try:
                rle = value.get("rle")
                if rle is None:
                    raise ValueError("brush region has no 'rle'")
                return brush_rle_to_mask(rle, width, height, self.alpha_threshold)
            except ValueError as err:
                raise self.fail(where, f"{region}: {err}") from None
        return self._polygon_mask(value.get("points"), width, height, f"{where}: {region}")

    def _polygon_mask(self, points: Any, width: int, height: int, where: str) -> np.ndarray:
        if (
            not isinstance(points, list)
            or len(points) < 3
            or not all(
                isinstance(p, list) and len(p) == 2 and all(_is_finite(v) for v in p)
                for p in points
            )
        ):
            raise LabelStudioFormatError(
                f"{self.source}: {where}: polygon 'points' must be >= 3 [x, y] percent pairs"
            )
        xy = np.asarray(points, dtype=np.float64) / 100.0 * np.array([width, height]) - 0.5
        mask = np.zeros((height, width), np.uint8)
        scaled = np.round(xy * (1 << _POLYGON_SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [scaled], 1, lineType=cv2.LINE_8, shift=_POLYGON_SHIFT)
        return mask.astype(bool)

    def local_path(self, url: Any, where: str) -> Path:
        """``data.image`` -> an absolute path inside ``image_root`` (or an error)."""
        if not isinstance(url, str) or not url:
            raise self.fail(where, f"data.image must be a non-empty string, got {url!r}")
        rel: str | None = None
        if self.url_prefix is not None and url.startswith(self.url_prefix):
            rel = unquote(url[len(self.url_prefix) :].lstrip("/"))
        else:
            parts = urlsplit(url)
            if parts.path.rstrip("/") == LOCAL_FILES_PATH.rstrip("/"):
                rel = (parse_qs(parts.query).get("d") or [""])[0]
        if not rel:
            expected = f"'{LOCAL_FILES_PATH}?d=...'" + (
                f" or '{self.url_prefix}...'" if self.url_prefix else " (or pass url_prefix)"
            )
            raise self.fail(
                where, f"cannot map image URL {url!r} to a local file: expected {expected}"
            )
        return _join_inside(self.image_root, rel, lambda m: self.fail(where, m))


def _join_inside(root: Path, rel: str, fail: Any) -> Path:
    """``root / rel``, refusing ``..`` and absolute paths outside ``root``."""
    posix = PurePosixPath(rel.replace("\\", "/"))
    if ".." in posix.parts:
        raise fail(f"image path {rel!r} contains '..'; refusing paths that leave {root}")
    if posix.is_absolute() or PureWindowsPath(rel).drive:
        path = Path(os.path.abspath(rel))
        if not path.is_relative_to(root):
            raise fail(f"image path {rel!r} is outside the image root {root}; refusing it")
        return path
    return root.joinpath(*posix.parts)


def _annotation_rank(annotation: dict[str, Any]) -> tuple[bool, datetime, int]:
    """Sort key: ground truth first, then newest updated/created, then highest id."""
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    when = datetime.min.replace(tzinfo=timezone.utc)
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    ident = annotation.get("id")
    return bool(annotation.get("ground_truth")), when, int(ident) if _is_int(ident) else -1


def _without(extra: Any, keys: Sequence[str]) -> dict[str, Any]:
    """A copy of the ``extra`` dict without ``keys`` (empty when it is not a dict)."""
    return {k: v for k, v in extra.items() if k not in keys} if isinstance(extra, dict) else {}


def _as_int(value: Any, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
