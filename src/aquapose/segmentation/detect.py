"""Stage 1 as a run: camera videos -> COCO detections + the kept frames, resumable.

``detect_videos(videos, out_dir, DetectConfig(...))`` writes into ``out_dir``:

- ``detections.json``: COCO, one image per kept frame, one annotation per blob
  (box, score, RLE blob mask); every ``file_name`` is a frame written below;
- ``frames/<camera_id>/<frame_index:06d>.png``: the kept frames;
- ``backgrounds/<camera_id>.png``: each camera's background (the floor the detector
  compares frames with; a model trained with the background as input reads it);
- ``overlay/<camera_id>/<frame_index:06d>.png``: the frames with boxes (``overlay``);
- ``detect_config.yaml``: the resolved config (``aquapose detect --config`` reads it);
- ``detections.jsonl``: the journal. An interrupted run started again with the same
  videos and settings continues after the last finished frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aquapose.segmentation._blobs import detection_rle
from aquapose.segmentation.detector import (
    DetectorConfig,
    GlobalChangeWarning,
    MOG2Detector,
    detect_video,
    resumable,
)
from aquapose.segmentation.draw import draw_boxes
from aquapose.segmentation.io.coco import CocoWriter, frame_record
from aquapose.segmentation.io.config import config_to_dict, write_config
from aquapose.segmentation.io.files import write_image
from aquapose.segmentation.io.journal import Journal, iter_journal
from aquapose.segmentation.io.video import open_video, video_info
from aquapose.segmentation.types import AnnotatedFrame, Detection, Instance

__all__ = ["CameraDetections", "DetectConfig", "DetectRun", "detect_videos"]

#: ``progress(task, done, total)``; ``total`` <= 0 when unknown.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DetectConfig:
    """Settings of :func:`detect_videos`.

    Attributes:
        every: keep every N-th frame (frame_index % every == 0); all frames are modelled.
        max_frames: stop after this many frames per video (None: the whole video).
        overlay: also write ``overlay/<camera_id>/<frame>.png`` with the boxes drawn.
        detector: the MOG2 detector's settings.
    """

    every: int = 1
    max_frames: int | None = None
    overlay: bool = False
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {self.max_frames}")


@dataclass(frozen=True)
class CameraDetections:
    """What one camera's video gave: kept frames, detections, frames rejected (and why)."""

    camera_id: str
    frames: int
    detections: int
    rejected: int
    reject_reason: str = ""


@dataclass(frozen=True)
class DetectRun:
    """The outputs of :func:`detect_videos`."""

    detections_json: Path
    cameras: tuple[CameraDetections, ...]


def _cameras(videos: Sequence[str | Path]) -> dict[str, Path]:
    """camera_id (file stem) -> video; fails early, with one line, on a bad file or a clash."""
    cameras: dict[str, Path] = {}
    for raw in videos:
        video = Path(raw)
        if video.stem in cameras:
            raise ValueError(
                f"{video} and {cameras[video.stem]} would both be camera {video.stem!r}: "
                "give each camera's video a different file name"
            )
        cap, _ = open_video(video)
        cap.release()
        cameras[video.stem] = video
    return cameras


def detect_videos(
    videos: Sequence[str | Path],
    out_dir: str | Path,
    config: DetectConfig | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> DetectRun:
    """Detect fish in each camera's video; see the module docstring for the outputs.

    Args:
        videos: one video per camera; the camera id is the file name's stem.
        out_dir: output folder (created).
        overwrite: start over instead of resuming an interrupted run in ``out_dir``.
        progress: called after each kept frame with ``(camera_id, frames done, total)``.
    """
    config = config or DetectConfig()
    cameras = _cameras(videos)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "videos": [str(v.resolve()) for v in cameras.values()],
        "every": config.every,
        "max_frames": config.max_frames,
        "detector": config_to_dict(config.detector),
    }
    write_config(config, out / "detect_config.yaml")
    with Journal(out / "detections.jsonl", settings, overwrite=overwrite) as journal:
        ended = {r["camera_id"] for r in journal.records if r.get("end")}
        if not resumable(config.detector):  # cameras cut short start over
            journal.rewrite([r for r in journal.records if r["camera_id"] in ended])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GlobalChangeWarning)  # counted per camera instead
            for camera_id, video in cameras.items():
                if camera_id not in ended:
                    _detect_camera(camera_id, video, out, config, journal, progress)
    return _write_detections(journal.path, out / "detections.json")


def _detect_camera(
    camera_id: str,
    video: Path,
    out: Path,
    config: DetectConfig,
    journal: Journal,
    progress: ProgressFn | None,
) -> None:
    """Detect in one video after its last journaled frame, journaling every kept frame."""
    mine = [r for r in journal.records if r.get("camera_id") == camera_id]
    start = mine[-1]["frame_index"] + 1 if mine else 0
    count, _ = video_info(video)
    total = count if config.max_frames is None or count < 0 else min(count, config.max_frames)
    detector = MOG2Detector(config.detector)
    video_path = str(video.resolve())
    rejections = 0
    background = out / "backgrounds" / f"{camera_id}.png"
    wrote_background = background.exists()  # from the run this one resumes
    for index, frame, detections in detect_video(
        video, camera_id=camera_id, every=config.every, detector=detector, start=start
    ):
        if config.max_frames is not None and index >= config.max_frames:
            break
        if not wrote_background and detector.background_bgr is not None:
            write_image(background, detector.background_bgr)
            wrote_background = True
        relative = f"frames/{camera_id}/{index:06d}.png"
        write_image(out / relative, frame)
        if config.overlay:
            drawn = draw_boxes(frame, [d.box_xyxy for d in detections])
            write_image(out / f"overlay/{camera_id}/{index:06d}.png", drawn)
        rejected = detector.reject_reason if detector.rejected_frames > rejections else ""
        rejections = detector.rejected_frames
        annotated = _annotated(frame, relative, camera_id, index, video_path, detections)
        record = {"camera_id": camera_id, "frame_index": index, "rejected": rejected}
        journal.append({**record, **frame_record(annotated)})
        if progress:
            progress(camera_id, index + 1, total)
    journal.append({"camera_id": camera_id, "end": True})


def _annotated(
    frame: np.ndarray,
    file_name: str,
    camera_id: str,
    index: int,
    video: str,
    detections: list[Detection],
) -> AnnotatedFrame:
    instances = tuple(
        Instance(box_xyxy=d.box_xyxy, rle=detection_rle(d), score=d.score) for d in detections
    )
    height, width = frame.shape[:2]
    return AnnotatedFrame(0, file_name, width, height, camera_id, index, video, instances)


def _write_detections(journal: Path, path: Path) -> DetectRun:
    """The journal's frames, streamed in journal order into COCO (image ids 1, 2, ...)."""
    cameras: dict[str, list[Any]] = {}  # camera_id -> [frames, detections, rejected, reason]
    with CocoWriter(path, info={"description": "AquaPose MOG2 detections"}) as writer:
        records = (r for r in iter_journal(journal) if "image" in r)
        for image_id, record in enumerate(records, start=1):
            writer.add_entries({**record["image"], "id": image_id}, record["annotations"])
            counts = cameras.setdefault(record["camera_id"], [0, 0, 0, ""])
            counts[0] += 1
            counts[1] += len(record["annotations"])
            if record["rejected"]:
                counts[2] += 1
                counts[3] = record["rejected"]
    return DetectRun(path, tuple(CameraDetections(cam, *c) for cam, c in cameras.items()))
