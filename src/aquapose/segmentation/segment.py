"""Segment whole videos: detect -> crop -> predict -> paste, streaming and resumable.

Per processed frame, crops come from two sources:
- every MOG2 detection (a crop centred on its box);
- every *track* (a fish seen in an earlier frame) that no detection covers now:
  background subtraction loses fish that stop moving, so the model re-checks the
  crop where the fish was last seen, for up to ``recheck_frames`` frames, until
  ``recheck_misses`` re-checks in a row find nothing there (the fish swam away).
Optionally the whole frame is also tiled at crop size every ``tile_every`` frames.
Predictions whose centre lies outside the crop's target box are dropped (they
belong to a neighbour, whose own crop sees it whole), then duplicates across
crops are merged by mask-IoU non-maximum suppression. Each kept mask is snapped to
the fish's edges by GrabCut seeded with it (the classical pseudo-labeler,
``refine_pad``): the model finds and separates the fish, GrabCut draws the outline.
A detection that no mask touches but that stands out clearly from the floor around it
(``blob_contrast``) is a fish the model missed: its blob is kept (refined too) with
the low score ``blob_score``.

Results stream to ``<out>/segments.jsonl`` (one line per frame, flushed as it
goes), so memory stays bounded and an interrupted run resumes where it stopped;
``<out>/results.json`` (COCO, frame-space RLE masks with scores) is assembled
from it at the end, also streaming.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from aquapose.segmentation.crops import compute_crop_region, extract_crop, paste_mask
from aquapose.segmentation.io.files import atomic_write_json, read_jsonl
from aquapose.segmentation.masks import (
    decode_rle,
    encode_rle,
    rle_area,
    rle_iou_matrix,
    rle_to_box_xyxy,
    rle_union,
)
from aquapose.segmentation.pseudo_labeler import SAMPseudoLabeler
from aquapose.segmentation.types import CropRegion, Detection

if TYPE_CHECKING:
    from aquapose.segmentation.detector import DetectorConfig
    from aquapose.segmentation.model import MaskRCNNSegmentor

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
# Ring around a missed blob, from 2 to 4 pixels out, for its contrast with the floor.
_RING_PX = 4
_RING_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * _RING_PX + 1,) * 2)
_NEAR_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of :func:`segment_video`.

    Attributes:
        every: process every N-th frame (the detector still sees every frame).
        score_threshold: keep predicted fish at or above this confidence.
        batch_size: crops per model forward pass.
        recheck_frames: re-check a lost fish's last crop for this many frames
            (0 disables; at 30 fps, 9000 = 5 minutes).
        recheck_misses: ... and stop after this many re-checks in a row that find no
            fish there (it swam away, and MOG2 sees it elsewhere).
        tile_every: also run the model on the whole frame, tiled at crop size, every
            N processed frames (0 disables). Finds fish that were never seen moving.
        nms_iou: predictions overlapping more than this (mask IoU) are one fish.
        refine_pad: snap each mask to the fish's edges with GrabCut, seeded by the
            mask, in its box grown by this many pixels (about 13 ms per fish); 0 = off.
        blob_contrast: keep a detection's blob that no model mask touches when its
            median grey level differs by at least this from a 4-pixel ring around it
            (a clearly visible fish the model missed; faint blobs are usually shadows
            or fish the model rightly doubts); 0 = off.
        blob_score: the score of such a blob, below the default ``score_threshold`` so
            that filtering at it keeps the model's own fish only.
    """

    every: int = 1
    score_threshold: float = 0.5
    batch_size: int = 8
    recheck_frames: int = 9000
    recheck_misses: int = 3
    tile_every: int = 0
    nms_iou: float = 0.5
    refine_pad: int = 12
    blob_contrast: float = 25.0
    blob_score: float = 0.3

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.recheck_misses < 1:
            raise ValueError(f"recheck_misses must be >= 1, got {self.recheck_misses}")
        if self.recheck_frames < 0 or self.tile_every < 0 or self.refine_pad < 0:
            raise ValueError("recheck_frames, tile_every and refine_pad must be >= 0")
        if self.blob_contrast < 0 or not 0.0 <= self.blob_score <= 1.0:
            raise ValueError(
                f"blob_contrast must be >= 0 and blob_score in [0, 1], got "
                f"{self.blob_contrast} and {self.blob_score}"
            )


@dataclass
class FrameSegments:
    """The fish found in one frame: frame-space boxes (xyxy), RLE masks and scores."""

    camera_id: str
    frame_index: int
    video: str
    width: int
    height: int
    boxes_xyxy: list[list[float]] = field(default_factory=list)
    rles: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # "detection" | "recheck" | "tile"


@dataclass
class _Track:
    box_xyxy: np.ndarray
    last_frame: int
    misses: int = 0  # re-checks in a row that found nothing


@dataclass(frozen=True)
class _Target:
    region: CropRegion
    box_xyxy: np.ndarray  # the frame-space box this crop is about
    source: str


def find_videos(paths: Sequence[str | Path]) -> list[Path]:
    """Expand the given paths: files stay, a folder becomes its video files (a rig)."""
    videos: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise FileNotFoundError(
                    f"{path}: folder holds no video files ({', '.join(VIDEO_SUFFIXES)})"
                )
            videos.extend(found)
        elif path.is_file():
            videos.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such video file or folder")
    return videos


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of xyxy boxes, (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _tile_regions(width: int, height: int, crop_size: int) -> list[CropRegion]:
    """Crop-size tiles covering the frame with at least 1/4 overlap."""

    def starts(limit: int) -> list[int]:
        if limit <= crop_size:
            return [0]
        n = int(np.ceil((limit - crop_size) / (crop_size * 0.75))) + 1
        return [round(i * (limit - crop_size) / (n - 1)) for i in range(n)]

    return [
        compute_crop_region(
            [x, y, x + crop_size, y + crop_size], (width, height), crop_size, margin=0
        )
        for y in starts(height)
        for x in starts(width)
    ]


class VideoSegmenter:
    """Segments the frames of one camera in order, keeping the fish tracks between frames."""

    def __init__(
        self, model: MaskRCNNSegmentor, config: SegmentConfig, camera_id: str = "camera"
    ) -> None:
        self.model = model
        self.config = config
        self.camera_id = camera_id
        self.tracks: list[_Track] = []
        self._processed = 0
        self._refiner = SAMPseudoLabeler() if config.refine_pad else None  # classical

    def segment_frame(
        self,
        frame_bgr: np.ndarray,
        frame_index: int,
        detection_boxes: Sequence[np.ndarray],
        detection_masks: Sequence[np.ndarray | None] = (),
    ) -> FrameSegments:
        """The fish of one frame; ``detection_masks`` are the detections' bool (H, W) blobs."""
        cfg = self.config
        height, width = frame_bgr.shape[:2]
        crop_size = self.model.crop_size
        targets = [
            _Target(
                compute_crop_region(box, (width, height), crop_size), np.asarray(box), "detection"
            )
            for box in detection_boxes
        ]
        rechecked: list[_Track] = []
        if cfg.recheck_frames:
            det = np.asarray(detection_boxes, float).reshape(-1, 4)
            for track in self.tracks:
                covered = det.size and _box_iou(track.box_xyxy[None], det).max() > 0.1
                if not covered and frame_index - track.last_frame <= cfg.recheck_frames:
                    region = compute_crop_region(track.box_xyxy, (width, height), crop_size)
                    targets.append(_Target(region, track.box_xyxy, "recheck"))
                    rechecked.append(track)
        if cfg.tile_every and self._processed % cfg.tile_every == 0:
            for region in _tile_regions(width, height, crop_size):
                targets.append(_Target(region, region.box_xyxy, "tile"))
        self._processed += 1

        crops = [extract_crop(frame_bgr, t.region) for t in targets]
        results = (
            self.model.predict(
                crops,
                [t.region for t in targets],
                score_threshold=cfg.score_threshold,
                batch_size=cfg.batch_size,
            )
            if crops
            else []
        )

        candidates: list[tuple[float, dict[str, Any], str]] = []
        for target, crop_results in zip(targets, results, strict=True):
            for res in crop_results:
                crop_box = res.crop_box_xyxy
                centre = target.region.crop_to_frame_xyxy(crop_box)
                cx, cy = (centre[0] + centre[2]) / 2, (centre[1] + centre[3]) / 2
                tx0, ty0, tx1, ty1 = target.box_xyxy
                if not (tx0 <= cx <= tx1 and ty0 <= cy <= ty1):
                    continue
                frame_mask = paste_mask(decode_rle(res.crop_rle), target.region)
                if frame_mask.any():
                    candidates.append((res.confidence, encode_rle(frame_mask), target.source))

        kept = self._nms(candidates)
        if self._refiner is not None and kept:
            kept = self._refine(self._refiner, frame_bgr, frame_index, kept)
        if cfg.blob_contrast and detection_masks:
            missed = self._missed_blobs(frame_bgr, detection_boxes, detection_masks, kept)
            if self._refiner is not None and missed:
                missed = self._refine(self._refiner, frame_bgr, frame_index, missed)
            kept += missed
        out = FrameSegments("", frame_index, "", width, height)
        for score, rle, source in kept:
            out.rles.append(rle)
            out.scores.append(score)
            out.sources.append(source)
            out.boxes_xyxy.append(rle_to_box_xyxy(rle).tolist())
        self._update_tracks(
            np.asarray(out.boxes_xyxy, float).reshape(-1, 4), out.sources, frame_index
        )
        # A re-checked track that found its fish was replaced by a fresh one above.
        for track in rechecked:
            track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses < cfg.recheck_misses]
        return out

    def _nms(
        self, candidates: list[tuple[float, dict[str, Any], str]]
    ) -> list[tuple[float, dict[str, Any], str]]:
        """Mask-IoU NMS, highest score first; a mask mostly inside a kept one is dropped too."""
        order = sorted(candidates, key=lambda c: -c[0])
        kept: list[tuple[float, dict[str, Any], str]] = []
        for cand in order:
            if kept:
                iou = rle_iou_matrix([cand[1]], [k[1] for k in kept])[0]
                if iou.max() > self.config.nms_iou:
                    continue
            kept.append(cand)
        return kept

    def _missed_blobs(
        self,
        frame_bgr: np.ndarray,
        boxes: Sequence[np.ndarray],
        blobs: Sequence[np.ndarray | None],
        kept: list[tuple[float, dict[str, Any], str]],
    ) -> list[tuple[float, dict[str, Any], str]]:
        """Detection blobs no kept mask touches that stand out from the floor around them."""
        height, width = frame_bgr.shape[:2]
        explained = decode_rle(rle_union([rle for _, rle, _ in kept])) if kept else None
        missed: list[tuple[float, dict[str, Any], str]] = []
        for box, blob in zip(boxes, blobs, strict=True):
            if blob is None:
                continue
            x0, y0 = (max(0, int(v) - _RING_PX - 2) for v in box[:2])
            x1, y1 = min(width, int(box[2]) + _RING_PX + 2), min(height, int(box[3]) + _RING_PX + 2)
            window = (slice(y0, y1), slice(x0, x1))
            inside = blob[window]
            if not inside.any() or (explained is not None and (explained[window] & inside).any()):
                continue
            grown = inside.astype(np.uint8)
            ring = (cv2.dilate(grown, _RING_KERNEL) > 0) & ~(cv2.dilate(grown, _NEAR_KERNEL) > 0)
            grey = cv2.cvtColor(frame_bgr[window], cv2.COLOR_BGR2GRAY)
            if (
                ring.any()
                and abs(float(np.median(grey[inside])) - float(np.median(grey[ring])))
                >= self.config.blob_contrast
            ):
                missed.append((self.config.blob_score, encode_rle(blob), "blob"))
        return missed

    def _refine(
        self,
        refiner: SAMPseudoLabeler,
        frame_bgr: np.ndarray,
        frame_index: int,
        kept: list[tuple[float, dict[str, Any], str]],
    ) -> list[tuple[float, dict[str, Any], str]]:
        """Each kept mask snapped to the fish's edges (GrabCut seeded by the mask).

        The other fish's masks are background to each one; an empty result keeps the
        model's mask.
        """
        height, width = frame_bgr.shape[:2]
        pad = self.config.refine_pad
        seeds = []
        for _, rle, _ in kept:
            x0, y0, x1, y1 = rle_to_box_xyxy(rle)
            box = [max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)]
            seeds.append(
                Detection(np.array(box), 1.0, self.camera_id, frame_index, decode_rle(rle))
            )
        masks = refiner.label_frame(frame_bgr, seeds)
        return [
            (score, encode_rle(mask) if mask.any() else rle, source)
            for (score, rle, source), mask in zip(kept, masks, strict=True)
        ]

    def _update_tracks(self, boxes: np.ndarray, sources: list[str], frame_index: int) -> None:
        """Greedy box-IoU association of this frame's fish to the tracks.

        Only fish backed by a detection start a track: a model's false positive must
        not be re-checked (and so re-found) frame after frame.
        """
        old = np.array([t.box_xyxy for t in self.tracks]).reshape(-1, 4)
        iou = _box_iou(boxes, old)
        used: set[int] = set()
        for i in np.argsort(-iou.max(axis=1)) if iou.size else range(len(boxes)):
            j = int(np.argmax(iou[i])) if iou.size else -1
            if j >= 0 and iou[i, j] > 0.1 and j not in used:
                used.add(j)
                self.tracks[j] = _Track(boxes[i], frame_index)
            elif sources[i] == "detection":
                self.tracks.append(_Track(boxes[i], frame_index))
        horizon = frame_index - self.config.recheck_frames
        self.tracks = [t for t in self.tracks if t.last_frame >= horizon]

    def seed_tracks(self, last: FrameSegments) -> None:
        """Restore tracks from the last frame written before an interruption."""
        for box in last.boxes_xyxy:
            self.tracks.append(_Track(np.asarray(box, float), last.frame_index))


def _last_done(jsonl: Path) -> dict[str, FrameSegments]:
    """Last frame per camera in a (possibly interrupted) segments.jsonl."""
    last: dict[str, FrameSegments] = {}
    for record in read_jsonl(jsonl):
        try:
            segments = FrameSegments(**record)
        except TypeError as err:
            raise ValueError(f"{jsonl}: not a segments log written by segment ({err})") from None
        last[segments.camera_id] = segments
    return last


def segment_videos(
    videos: Sequence[Path],
    model: MaskRCNNSegmentor,
    out_dir: str | Path,
    config: SegmentConfig | None = None,
    detector_config: DetectorConfig | None = None,
    on_frame: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Segment every video into ``out_dir/results.json`` (COCO); returns its path.

    ``on_frame(camera_id, frame_index, total_frames)`` is called after each
    processed frame (for progress bars). Re-running with the same ``out_dir``
    skips the frames already in ``segments.jsonl``.
    """
    from aquapose.segmentation.detector import detect_video

    config = config or SegmentConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: output path exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "segments.jsonl"
    done = _last_done(jsonl)
    camera_ids = [Path(v).stem for v in videos]
    if len(set(camera_ids)) != len(camera_ids):
        raise ValueError(f"video file names must be unique per camera, got {camera_ids}")
    settings = {"videos": [str(v) for v in videos], "segment": asdict(config)}
    _check_same_run(out_dir / "segment_config.json", settings, resuming=bool(done))
    atomic_write_json(out_dir / "segment_config.json", settings, indent=2)

    with jsonl.open("a", encoding="utf-8") as sink:
        for video, camera_id in zip(videos, camera_ids, strict=True):
            segmenter = VideoSegmenter(model, config, camera_id)
            previous = done.get(camera_id)
            if previous is not None:
                segmenter.seed_tracks(previous)
            last_done = previous.frame_index if previous is not None else -1
            total = _frame_count(video)
            for frame_index, frame, detections in detect_video(
                video, config=detector_config, camera_id=camera_id, every=config.every
            ):
                if frame_index <= last_done:
                    continue
                seg = segmenter.segment_frame(
                    frame,
                    frame_index,
                    [d.box_xyxy for d in detections],
                    [d.blob_mask for d in detections],
                )
                seg.camera_id, seg.video = camera_id, str(video)
                sink.write(json.dumps(asdict(seg)) + "\n")
                sink.flush()
                if on_frame:
                    on_frame(camera_id, frame_index, total)
            sink.flush()
            os.fsync(sink.fileno())
    return _write_results_coco(jsonl, out_dir / "results.json")


def _check_same_run(path: Path, settings: dict[str, Any], resuming: bool) -> None:
    """Refuse to resume a run with other videos or settings: the results would mix."""
    if not resuming or not path.exists():
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    changed = [
        k for k in settings["segment"] if before.get("segment", {}).get(k) != settings["segment"][k]
    ]
    if before.get("videos") != settings["videos"]:
        changed.insert(0, "videos")
    if changed:
        raise ValueError(
            f"{path.parent}: holds results made with other {', '.join(changed)} "
            f"(see {path.name}); resume with the same arguments or use a new output folder"
        )


def _frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def iter_segments(jsonl: str | Path) -> Iterator[FrameSegments]:
    with Path(jsonl).open(encoding="utf-8") as fh:
        for line in fh:
            yield FrameSegments(**json.loads(line))


def _write_results_coco(jsonl: Path, path: Path) -> Path:
    """Stream segments.jsonl into a COCO results file (two passes, bounded memory), atomically.

    Image ids are the line numbers of segments.jsonl (1-based).
    """
    from aquapose.segmentation.io.coco import FISH_CATEGORY

    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(
            '{"info": {"description": "AquaPose segment results"}, "licenses": [],\n"images": ['
        )
        for image_id, seg in enumerate(iter_segments(jsonl), start=1):
            image = {
                "id": image_id,
                "file_name": f"frames/{seg.camera_id}/{seg.frame_index:06d}.png",
                "width": seg.width,
                "height": seg.height,
                "camera_id": seg.camera_id,
                "frame_index": seg.frame_index,
                "video": seg.video,
            }
            fh.write(("" if image_id == 1 else ",\n") + json.dumps(image))
        fh.write('],\n"annotations": [')
        ann_id = 0
        for image_id, seg in enumerate(iter_segments(jsonl), start=1):
            for box, rle, score in zip(seg.boxes_xyxy, seg.rles, seg.scores, strict=True):
                ann_id += 1
                x0, y0, x1, y1 = box
                ann = {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": FISH_CATEGORY["id"],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(rle_area(rle)),
                    "iscrowd": 0,
                    "segmentation": rle,
                    "score": score,
                }
                fh.write(("" if ann_id == 1 else ",\n") + json.dumps(ann))
        fh.write(f'],\n"categories": [{json.dumps(FISH_CATEGORY)}]}}\n')
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def write_overlay_video(
    video: str | Path, jsonl: str | Path, camera_id: str, path: str | Path
) -> Path:
    """Re-read ``video`` and draw the masks of ``segments.jsonl`` over it into ``path`` (mp4).

    Frames that were not processed (``every`` > 1) are written without outlines.
    Streams both files: memory does not grow with the clip's length.
    """
    from aquapose.report import overlay_masks

    path = Path(path)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ValueError(f"{video}: OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = None
    try:
        records = (s for s in iter_segments(jsonl) if s.camera_id == camera_id)
        pending = next(records, None)
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
            while pending is not None and pending.frame_index < index:
                pending = next(records, None)
            if pending is not None and pending.frame_index == index:
                frame = overlay_masks(frame, pred_masks=[decode_rle(r) for r in pending.rles])
            writer.write(frame)
            index += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if writer is None:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{video}: no frame could be decoded")
    os.replace(tmp, path)
    return path
