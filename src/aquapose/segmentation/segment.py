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
the fish's edges by GrabCut seeded with it (:mod:`~aquapose.segmentation.grabcut`,
``refine_pad``): the model finds and separates the fish, GrabCut draws the outline.
A detection that no mask touches but that stands out clearly from the floor around it
(``blob_contrast``) is a fish the model missed: its blob is kept (refined too) with
the low score ``blob_score``. A mask whose pixels match the detector's background (fewer
than ``static_fraction`` of them differ from it by ``static_diff`` grey levels or more) is
floor, a wall or a stone, not a fish, unless it touches a detection's blob: it is
dropped, and the frame's ``static_dropped`` field counts it. Re-checked fish are exempt:
a fish that rests for most of the clip is part of the background, and was seen moving.
A model trained with the background as input gets the detector's background of each crop.

``segment_videos`` writes into ``out_dir``:

- ``segments.jsonl``: the journal, one line per processed frame (flushed as it goes),
  so memory stays bounded and an interrupted run resumes where it stopped;
- ``results.json``: COCO results streamed from the journal at the end: one image per
  processed frame whose ``file_name`` is a video frame reference
  (``<video>#frame=<index>``, no image file is written), frame-space RLE masks with
  ``score`` and ``source`` (``detection``, ``recheck``, ``tile`` or ``blob``);
- ``segment_config.yaml``: the resolved config.

:func:`segment_chunk` segments frames ``[start, stop)`` of one video as one pass would
(the unit of work of :mod:`~aquapose.segmentation.cluster`, which runs chunks on Ray and
merges them with :func:`write_chunk_results` into the same two files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from aquapose.segmentation.crops import compute_crop_region, extract_crop, paste_mask
from aquapose.segmentation.detector import DetectorConfig, MOG2Detector, detect_video, resumable
from aquapose.segmentation.draw import overlay_masks
from aquapose.segmentation.grabcut import ClassicalConfig, GrabCutSegmenter
from aquapose.segmentation.io.coco import (
    CocoWriter,
    frame_from_record,
    frame_record,
    video_frame_name,
)
from aquapose.segmentation.io.config import config_to_dict, write_config
from aquapose.segmentation.io.files import relative_path
from aquapose.segmentation.io.journal import Journal, iter_journal
from aquapose.segmentation.io.video import iter_frames, video_info, write_video
from aquapose.segmentation.masks import (
    decode_rle,
    encode_rle,
    rle_iou_matrix,
    rle_to_box_xyxy,
    rle_union,
)
from aquapose.segmentation.types import AnnotatedFrame, CropRegion, Instance

if TYPE_CHECKING:
    from aquapose.segmentation.model import MaskRCNNSegmentor

__all__ = [
    "Candidate",
    "Chunk",
    "ChunkResult",
    "SegmentConfig",
    "VideoSegmenter",
    "plan_chunks",
    "segment_chunk",
    "segment_videos",
    "write_overlay_video",
]

# Ring around a missed blob, from 2 to 4 pixels out, for its contrast with the floor.
_RING_PX = 4
_RING_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * _RING_PX + 1,) * 2)
_NEAR_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))

#: ``on_frame(camera_id, frame_index, total_frames)`` after each processed frame.
FrameFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of :func:`segment_videos`.

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
        static_diff, static_fraction: a mask that touches no detection blob and has fewer
            than ``static_fraction`` of its pixels differing from the detector's background
            by at least ``static_diff`` grey levels (in any colour channel) is a static
            structure and is dropped (``static_fraction=0``: off).
        detector: the settings of the detector that finds the fish to crop.
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
    static_diff: float = 12.0
    static_fraction: float = 0.25
    detector: DetectorConfig = field(default_factory=DetectorConfig)

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
        if self.static_diff < 0 or not 0.0 <= self.static_fraction <= 1.0:
            raise ValueError(
                f"static_diff must be >= 0 and static_fraction in [0, 1], got "
                f"{self.static_diff} and {self.static_fraction}"
            )
        if self.blob_contrast < 0 or not 0.0 <= self.blob_score <= 1.0:
            raise ValueError(
                f"blob_contrast must be >= 0 and blob_score in [0, 1], got "
                f"{self.blob_contrast} and {self.blob_score}"
            )


@dataclass(frozen=True)
class Candidate:
    """One fish found in a frame: frame-space RLE mask, score and where its crop came from.

    ``source`` is ``"detection"``, ``"recheck"`` (a lost fish's last place), ``"tile"``
    or ``"blob"`` (a clear detection the model missed).
    """

    score: float
    rle: dict[str, Any]
    source: str


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
        self._refiner = GrabCutSegmenter(ClassicalConfig()) if config.refine_pad else None
        #: masks of the last frame dropped as static structures (matching the background)
        self.static_dropped = 0

    def segment_frame(
        self,
        frame_bgr: np.ndarray,
        frame_index: int,
        detection_boxes: Sequence[np.ndarray],
        detection_masks: Sequence[np.ndarray | None] = (),
        background_bgr: np.ndarray | None = None,
    ) -> list[Candidate]:
        """The fish of one frame (frame-space masks, highest score first, missed blobs last).

        ``detection_boxes`` are the detections' xyxy boxes and ``detection_masks`` their
        bool (H, W) blobs; ``background_bgr`` the detector's background (uint8 (H, W, 3)),
        needed by a model trained with the background as input.
        """
        cfg = self.config
        targets, rechecked = self._targets(frame_bgr.shape[:2], frame_index, detection_boxes)
        kept = self._nms(self._predict(frame_bgr, targets, background_bgr))
        if self._refiner is not None and kept:
            kept = self._refine(self._refiner, frame_bgr, kept)
        self.static_dropped = 0
        if cfg.static_fraction and background_bgr is not None and kept:
            blobs = [m for m in detection_masks if m is not None]
            moving = [
                c
                for c in kept
                if c.source == "recheck" or not self._static(c, frame_bgr, background_bgr, blobs)
            ]
            self.static_dropped = len(kept) - len(moving)
            kept = moving
        if cfg.blob_contrast and detection_masks:
            missed = self._missed_blobs(frame_bgr, detection_boxes, detection_masks, kept)
            if self._refiner is not None and missed:
                missed = self._refine(self._refiner, frame_bgr, missed)
            kept += missed
        self._update_tracks(kept, frame_index)
        # A re-checked track that found its fish was replaced by a fresh one above.
        for track in rechecked:
            track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses < cfg.recheck_misses]
        return kept

    def _targets(
        self, frame_hw: tuple[int, ...], frame_index: int, detection_boxes: Sequence[np.ndarray]
    ) -> tuple[list[_Target], list[_Track]]:
        """The crops to predict on (detections, lost tracks, tiles) and the tracks re-checked."""
        cfg = self.config
        size_wh = (int(frame_hw[1]), int(frame_hw[0]))
        crop_size = self.model.crop_size
        targets = [
            _Target(compute_crop_region(box, size_wh, crop_size), np.asarray(box), "detection")
            for box in detection_boxes
        ]
        rechecked: list[_Track] = []
        if cfg.recheck_frames:
            det = np.asarray(detection_boxes, float).reshape(-1, 4)
            for track in self.tracks:
                covered = det.size and _box_iou(track.box_xyxy[None], det).max() > 0.1
                if not covered and frame_index - track.last_frame <= cfg.recheck_frames:
                    region = compute_crop_region(track.box_xyxy, size_wh, crop_size)
                    targets.append(_Target(region, track.box_xyxy, "recheck"))
                    rechecked.append(track)
        if cfg.tile_every and self._processed % cfg.tile_every == 0:
            for region in _tile_regions(*size_wh, crop_size):
                targets.append(_Target(region, region.box_xyxy, "tile"))
        self._processed += 1
        return targets, rechecked

    def _predict(
        self, frame_bgr: np.ndarray, targets: list[_Target], background_bgr: np.ndarray | None
    ) -> list[Candidate]:
        """The model's fish in the targets' crops whose centre lies in the target's box."""
        if not targets:
            return []
        crops = [extract_crop(frame_bgr, t.region) for t in targets]
        backgrounds = None
        if self.model.background_input:
            if background_bgr is None:
                raise ValueError(
                    f"camera {self.camera_id}: the model takes the background as input, but "
                    "the detector has none yet (prime it: median_frames > 0)"
                )
            backgrounds = [extract_crop(background_bgr, t.region) for t in targets]
        results = self.model.predict(
            crops,
            [t.region for t in targets],
            score_threshold=self.config.score_threshold,
            batch_size=self.config.batch_size,
            backgrounds=backgrounds,
        )
        candidates: list[Candidate] = []
        for target, crop_results in zip(targets, results, strict=True):
            for res in crop_results:
                box = target.region.crop_to_frame_xyxy(res.crop_box_xyxy)
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                tx0, ty0, tx1, ty1 = target.box_xyxy
                if not (tx0 <= cx <= tx1 and ty0 <= cy <= ty1):
                    continue
                frame_mask = paste_mask(decode_rle(res.crop_rle), target.region)
                if frame_mask.any():
                    candidates.append(
                        Candidate(res.confidence, encode_rle(frame_mask), target.source)
                    )
        return candidates

    def _nms(self, candidates: list[Candidate]) -> list[Candidate]:
        """Mask-IoU NMS, highest score first."""
        kept: list[Candidate] = []
        for cand in sorted(candidates, key=lambda c: -c.score):
            if (
                kept
                and rle_iou_matrix([cand.rle], [k.rle for k in kept])[0].max() > self.config.nms_iou
            ):
                continue
            kept.append(cand)
        return kept

    def _missed_blobs(
        self,
        frame_bgr: np.ndarray,
        boxes: Sequence[np.ndarray],
        blobs: Sequence[np.ndarray | None],
        kept: list[Candidate],
    ) -> list[Candidate]:
        """Detection blobs no kept mask touches that stand out from the floor around them."""
        height, width = frame_bgr.shape[:2]
        explained = decode_rle(rle_union([c.rle for c in kept])) if kept else None
        missed: list[Candidate] = []
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
                missed.append(Candidate(self.config.blob_score, encode_rle(blob), "blob"))
        return missed

    def _static(
        self,
        candidate: Candidate,
        frame_bgr: np.ndarray,
        background_bgr: np.ndarray,
        blobs: Sequence[np.ndarray],
    ) -> bool:
        """Whether a mask's pixels match the background (a static structure, not a fish):
        few of its pixels differ from the background and it touches no detection blob
        (``blobs``: bool (H, W) each)."""
        x0, y0, x1, y1 = (int(v) for v in rle_to_box_xyxy(candidate.rle))
        window = (slice(y0, max(y1, y0 + 1)), slice(x0, max(x1, x0 + 1)))
        inside = decode_rle(candidate.rle)[window]
        if not inside.any():
            return False
        diff = cv2.absdiff(frame_bgr[window], background_bgr[window]).max(axis=2)
        differs = np.count_nonzero(diff[inside] >= self.config.static_diff)
        if differs >= self.config.static_fraction * np.count_nonzero(inside):
            return False
        return not any(blob[window][inside].any() for blob in blobs)

    def _refine(
        self, refiner: GrabCutSegmenter, frame_bgr: np.ndarray, kept: list[Candidate]
    ) -> list[Candidate]:
        """Each kept mask snapped to the fish's edges (GrabCut seeded by the mask).

        The other fish's masks are background to each one; an empty result keeps the
        model's mask.
        """
        height, width = frame_bgr.shape[:2]
        pad = self.config.refine_pad
        boxes, seeds = [], []
        for cand in kept:
            x0, y0, x1, y1 = rle_to_box_xyxy(cand.rle)
            boxes.append(
                [max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)]
            )
            seeds.append(decode_rle(cand.rle))
        masks = refiner.predict(frame_bgr, np.asarray(boxes, np.float64), seeds)
        return [
            Candidate(cand.score, encode_rle(mask), cand.source) if mask.any() else cand
            for cand, mask in zip(kept, masks, strict=True)
        ]

    def _update_tracks(self, kept: list[Candidate], frame_index: int) -> None:
        """Greedy box-IoU association of this frame's fish to the tracks.

        Only fish backed by a detection start a track: a model's false positive must
        not be re-checked (and so re-found) frame after frame.
        """
        boxes = np.array([rle_to_box_xyxy(c.rle) for c in kept], float).reshape(-1, 4)
        old = np.array([t.box_xyxy for t in self.tracks]).reshape(-1, 4)
        iou = _box_iou(boxes, old)
        used: set[int] = set()
        for i in np.argsort(-iou.max(axis=1)) if iou.size else range(len(boxes)):
            j = int(np.argmax(iou[i])) if iou.size else -1
            if j >= 0 and iou[i, j] > 0.1 and j not in used:
                used.add(j)
                self.tracks[j] = _Track(boxes[i], frame_index)
            elif kept[i].source == "detection":
                self.tracks.append(_Track(boxes[i], frame_index))
        horizon = frame_index - self.config.recheck_frames
        self.tracks = [t for t in self.tracks if t.last_frame >= horizon]

    def state(self) -> dict[str, Any]:
        """Everything that carries from one frame to the next (JSON-ready): the tracks, in
        order, and the count of processed frames. Equal states give equal results after."""
        tracks = [[*(float(v) for v in t.box_xyxy), t.last_frame, t.misses] for t in self.tracks]
        return {"processed": self._processed, "tracks": tracks}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` (e.g. the end of the previous chunk)."""
        self._processed = int(state["processed"])
        self.tracks = [
            _Track(np.asarray(t[:4], float), int(t[4]), int(t[5])) for t in state["tracks"]
        ]

    def seed_tracks(self, last: AnnotatedFrame) -> None:
        """Restore tracks from the last frame written before an interruption."""
        for inst in last.instances:
            self.tracks.append(_Track(inst.box_xyxy.copy(), last.frame_index))


def _segments_frame(
    candidates: list[Candidate],
    camera_id: str,
    frame_index: int,
    video: str,
    frame_hw: tuple[int, ...],
    static_dropped: int = 0,
) -> AnnotatedFrame:
    """One processed frame as a COCO results frame (a video frame reference, no file);
    ``static_dropped`` masks dropped as static structures are counted in its fields."""
    instances = tuple(
        Instance(rle_to_box_xyxy(c.rle), c.rle, score=c.score, extra={"source": c.source})
        for c in candidates
    )
    name = video_frame_name(video, frame_index)
    extra = {"static_dropped": static_dropped} if static_dropped else {}
    return AnnotatedFrame(
        0,
        name,
        int(frame_hw[1]),
        int(frame_hw[0]),
        camera_id,
        frame_index,
        video,
        instances,
        extra=extra,
    )


def run_settings(videos: Sequence[str | Path], config: SegmentConfig) -> dict[str, Any]:
    """The settings a run's journal starts with: results made with others do not mix."""
    return {"videos": [str(v) for v in videos], **config_to_dict(config)}


def segment_videos(
    videos: Sequence[str | Path],
    model: MaskRCNNSegmentor,
    out_dir: str | Path,
    config: SegmentConfig | None = None,
    *,
    overwrite: bool = False,
    on_frame: FrameFn | None = None,
) -> Path:
    """Segment every video into ``out_dir/results.json`` (COCO); returns its path.

    ``on_frame(camera_id, frame_index, total_frames)`` is called after each
    processed frame (for progress bars). Re-running with the same ``out_dir`` and
    settings skips the frames already in ``segments.jsonl``; ``overwrite`` starts over.
    """
    config = config or SegmentConfig()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: output path exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    camera_ids = [Path(v).stem for v in videos]
    if len(set(camera_ids)) != len(camera_ids):
        raise ValueError(f"video file names must be unique per camera, got {camera_ids}")
    settings = run_settings(videos, config)
    write_config(config, out / "segment_config.yaml")
    journal_path = out / "segments.jsonl"
    with Journal(journal_path, settings, overwrite=overwrite) as journal:
        last: dict[str, AnnotatedFrame] = {}
        for record in journal.records:
            frame = frame_from_record(record, source=str(journal_path))
            last[frame.camera_id] = frame
        for video, camera_id in zip(videos, camera_ids, strict=True):
            _segment_video(
                Path(video), camera_id, model, config, journal, last.get(camera_id), on_frame
            )
    return _write_results(journal_path, out / "results.json")


def _segment_video(
    video: Path,
    camera_id: str,
    model: MaskRCNNSegmentor,
    config: SegmentConfig,
    journal: Journal,
    previous: AnnotatedFrame | None,
    on_frame: FrameFn | None,
) -> None:
    """Segment one camera's video after ``previous`` (its last journaled frame)."""
    segmenter = VideoSegmenter(model, config, camera_id)
    if previous is not None:
        segmenter.seed_tracks(previous)
    last_done = previous.frame_index if previous is not None else -1
    total, _ = video_info(video)
    detector = MOG2Detector(config.detector)
    for frame_index, frame, detections in detect_video(
        video, camera_id=camera_id, every=config.every, detector=detector
    ):
        if frame_index <= last_done:
            continue
        kept = segmenter.segment_frame(
            frame,
            frame_index,
            [d.box_xyxy for d in detections],
            [d.blob_mask for d in detections],
            detector.background_bgr,
        )
        result = _segments_frame(
            kept, camera_id, frame_index, str(video), frame.shape[:2], segmenter.static_dropped
        )
        journal.append(frame_record(result))
        if on_frame:
            on_frame(camera_id, frame_index, total)


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of one camera's video (``stop`` None: to its end): the unit
    of work of a cluster run."""

    video: str
    camera_id: str
    start: int
    stop: int | None

    @property
    def name(self) -> str:
        stop = "end" if self.stop is None else f"{self.stop:08d}"
        return f"{self.camera_id}_{self.start:08d}_{stop}"


@dataclass
class ChunkResult:
    """A segmented chunk: its journal records (frames ``[start, stop)``, in order) and the
    segmenter's :meth:`~VideoSegmenter.state` on entering ``start`` and after the last
    frame. A chunk whose ``start_state`` equals the previous chunk's ``end_state`` (and,
    when it ``seeked``, whose ``head`` equals the previous chunk's ``tail``) gives exactly
    what one pass over the whole video gives.

    ``head`` and ``tail``: ``[frame_index, fingerprint]`` of the processed frames before
    ``start`` (the warm-up) and of the last ``warmup`` frames before ``stop``.
    """

    chunk: Chunk
    records: list[dict[str, Any]]
    start_state: dict[str, Any]
    end_state: dict[str, Any]
    head: list[list[Any]] = field(default_factory=list)
    tail: list[list[Any]] = field(default_factory=list)
    seeked: bool = False


def frame_fingerprint(frame: np.ndarray) -> str:
    """A short hash of a decoded frame's pixels (two decoders agree on a frame)."""
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=8).hexdigest()


def plan_chunks(
    videos: Sequence[str | Path], chunk_frames: int, config: SegmentConfig
) -> list[Chunk]:
    """Each video cut into chunks of ``chunk_frames`` frames (0 = whole videos), in order.

    The last chunk of a video reads to its end (a frame count can be off by a few). A
    detector that cannot start mid-clip (not :func:`~aquapose.segmentation.detector.resumable`)
    or a video whose frame count is unknown gets one chunk for the whole video.
    """
    if chunk_frames < 0:
        raise ValueError(f"chunk_frames must be >= 0, got {chunk_frames}")
    chunks: list[Chunk] = []
    for video in videos:
        camera_id = Path(video).stem
        total, _ = video_info(video)
        if chunk_frames == 0 or total <= 0 or not resumable(config.detector):
            chunks.append(Chunk(str(video), camera_id, 0, None))
            continue
        starts = list(range(0, total, chunk_frames))
        stops: list[int | None] = [*starts[1:], None]
        chunks += [Chunk(str(video), camera_id, a, b) for a, b in zip(starts, stops, strict=True)]
    return chunks


def segment_chunk(
    chunk: Chunk,
    model: MaskRCNNSegmentor,
    config: SegmentConfig,
    *,
    warmup: int = 0,
    state: dict[str, Any] | None = None,
    seek: bool = False,
) -> ChunkResult:
    """Segment frames ``[chunk.start, chunk.stop)`` of one video, as one pass would.

    The detector is primed for the whole video (or its ``median_window`` segment), so
    its detections equal one pass's. The chunk starts ``warmup`` frames early. Frames
    are decoded straight through from frame 0 (exact), or with ``seek`` from a seek to
    the warm-up's first frame (fast, not exact on every codec: compare ``head`` with the
    previous chunk's ``tail``). The fish tracks carry between frames: ``state`` (the
    previous chunk's ``end_state``) continues them exactly (the warm-up frames are then
    only fingerprinted); without it the warm-up frames rebuild them from none and their
    results are dropped: ``start_state`` then equals one pass's unless a fish was lost
    (re-checked) over the whole warm-up. Compare it with the previous ``end_state``.
    """
    first = max(0, chunk.start - warmup)
    if first and not resumable(config.detector):
        raise ValueError(
            f"{chunk.video}: a chunk starting at frame {first} needs a detector primed from "
            "the clip and frozen (median_frames > 0, learning_rate=0)"
        )
    segmenter = VideoSegmenter(model, config, chunk.camera_id)
    if state is not None:
        segmenter.restore(state)
    else:
        segmenter._processed = len(range(0, first, config.every))  # primed: all ready
    start_state = segmenter.state() if first == chunk.start or state is not None else None
    records: list[dict[str, Any]] = []
    head: list[list[Any]] = []
    tail: list[list[Any]] = []
    tail_from = None if chunk.stop is None or not warmup else chunk.stop - warmup
    detector = MOG2Detector(config.detector)
    for frame_index, frame, detections in detect_video(
        chunk.video,
        detector=detector,
        camera_id=chunk.camera_id,
        every=config.every,
        start=first,
        stop=chunk.stop,
        seek=seek,
    ):
        in_tail = tail_from is not None and frame_index >= tail_from
        if frame_index < chunk.start or in_tail:
            fingerprint = frame_fingerprint(frame)
            if in_tail:
                tail.append([frame_index, fingerprint])
        if frame_index < chunk.start:
            head.append([frame_index, fingerprint])
            if state is not None:
                continue
        elif start_state is None:
            start_state = segmenter.state()
        kept = segmenter.segment_frame(
            frame,
            frame_index,
            [d.box_xyxy for d in detections],
            [d.blob_mask for d in detections],
            detector.background_bgr,
        )
        if frame_index >= chunk.start:
            result = _segments_frame(
                kept,
                chunk.camera_id,
                frame_index,
                chunk.video,
                frame.shape[:2],
                segmenter.static_dropped,
            )
            records.append(frame_record(result))
    if start_state is None:  # no frame of the chunk was processed
        start_state = segmenter.state()
    seeked = seek and first > 0
    return ChunkResult(chunk, records, start_state, segmenter.state(), head, tail, seeked)


def write_chunk_results(
    out_dir: str | Path,
    settings: dict[str, Any],
    records: Iterator[dict[str, Any]] | list[dict[str, Any]],
) -> Path:
    """Chunks' records, in video and frame order, as ``segments.jsonl`` and ``results.json``:
    the files a single-process run writes (which can then resume from them)."""
    out = Path(out_dir)
    with Journal(out / "segments.jsonl", settings, overwrite=True) as journal:
        empty = True
        for record in records:
            journal.append(record)
            empty = False
        if empty:
            journal.rewrite([])
    return _write_results(out / "segments.jsonl", out / "results.json")


def iter_segments(jsonl: str | Path) -> Iterator[AnnotatedFrame]:
    """The frames of a ``segments.jsonl`` journal, streamed."""
    for record in iter_journal(jsonl):
        yield frame_from_record(record, source=str(jsonl))


def _write_results(jsonl: Path, path: Path) -> Path:
    """Stream the journal into a COCO results file; image ids are journal line numbers."""
    root = path.parent
    with CocoWriter(path, info={"description": "AquaPose segment results"}) as writer:
        for image_id, record in enumerate(iter_journal(jsonl), start=1):
            image = dict(record["image"], id=image_id)
            video = relative_path(image["video"], root)
            image["file_name"] = video_frame_name(video, image["frame_index"])
            writer.add_entries(image, record["annotations"])
    return path


def write_overlay_video(
    video: str | Path, jsonl: str | Path, camera_id: str, path: str | Path
) -> Path:
    """Re-read ``video`` and draw the masks of ``segments.jsonl`` over it into ``path`` (mp4).

    Frames that were not processed (``every`` > 1) are written without outlines.
    Streams both files: memory does not grow with the clip's length.
    """
    _, fps = video_info(video)

    def drawn() -> Iterator[np.ndarray]:
        records = (f for f in iter_segments(jsonl) if f.camera_id == camera_id)
        pending = next(records, None)
        for index, frame in iter_frames(video):
            while pending is not None and pending.frame_index < index:
                pending = next(records, None)
            if pending is not None and pending.frame_index == index:
                frame = overlay_masks(frame, pred_masks=[i.mask() for i in pending.instances])
            yield frame

    return write_video(path, drawn(), fps or 15.0)
