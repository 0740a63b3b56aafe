"""Video files: the one place that opens them (OpenCV), with clear errors.

- :func:`open_video`: a capture checked to decode, and its frame count;
- :func:`iter_frames` / :func:`read_frames`: frames by index, decoded straight through
  (frame-accurate on every codec; seeking with ``CAP_PROP_POS_FRAMES`` is not);
- :func:`sample_frames` / :func:`sample_frame_pairs`: frames spread over a stretch (for
  background models, where a seek landing a frame off does not matter), alone or each
  with a frame a few frames away (what moves between the two is not the floor);
- :func:`find_videos`: the camera videos of files and folders (a rig);
- :func:`write_video`: frames to an mp4, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "VIDEO_SUFFIXES",
    "find_videos",
    "iter_frames",
    "open_video",
    "read_frames",
    "sample_frame_pairs",
    "sample_frames",
    "video_info",
    "write_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")

#: samples closer than this many frames are read by decoding through, not seeking.
_SEEK_GAP = 40


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, int]:
    """Open a video and check that it decodes; returns (capture, frame count or -1).

    Raises FileNotFoundError for a missing file and ValueError for one OpenCV cannot
    open or whose first frame does not decode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video (corrupt or unsupported format)")
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise ValueError(f"{path}: no frame could be decoded (corrupt or empty video)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return cap, count if count > 0 else -1


def sample_frames(path: Path, start: int, stop: int, n: int) -> list[np.ndarray]:
    """Up to ``n`` frames evenly spread over ``[start, stop)``.

    Close samples are read by decoding straight through (``grab``); far-apart ones by
    seeking, which costs a decode from the previous key frame each time.
    """
    wanted = _spread(start, stop, n)
    frames = _read_indices(path, wanted)
    return [frames[i] for i in wanted if i in frames]


def sample_frame_pairs(
    path: Path, start: int, stop: int, n: int, gap: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to ``n`` frames evenly spread over ``[start, stop)`` (as :func:`sample_frames`)
    and, for each, the frame ``gap`` frames later (earlier near ``stop``; in a stretch
    shorter than that, the other end of it): what moves between the two is not the
    floor."""
    wanted = _spread(start, stop, n)
    partner = {i: _partner(i, start, stop, gap) for i in wanted}
    frames = _read_indices(path, sorted(set(wanted) | set(partner.values())))
    kept = [i for i in wanted if i in frames and partner[i] in frames]
    return [frames[i] for i in kept], [frames[partner[i]] for i in kept]


def _partner(index: int, start: int, stop: int, gap: int) -> int:
    """The frame ``gap`` after ``index`` within ``[start, stop)``, else before, else the
    end of the stretch farthest from ``index``."""
    if index + gap < stop:
        return index + gap
    if index - gap >= start:
        return index - gap
    return start if index - start > stop - 1 - index else stop - 1


def _spread(start: int, stop: int, n: int) -> list[int]:
    """Up to ``n`` distinct frame indices evenly spread over ``[start, stop)``."""
    count = max(1, min(n, stop - start))
    return sorted({int(i) for i in np.linspace(start, stop - 1, num=count)})


def _read_indices(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """The frames at sorted ``indices``: decoded straight through over gaps of up to
    ``_SEEK_GAP`` frames, sought to over longer ones."""
    cap, _ = open_video(path)
    frames: dict[int, np.ndarray] = {}
    try:
        position = 0  # index of the next frame the capture returns; -1: not known
        for index in indices:
            if position < 0 or not 0 <= index - position <= _SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                position = index
            while position < index and cap.grab():
                position += 1
            if position != index:
                break  # the stream ended
            ok, frame = cap.read()
            if ok and frame is not None:
                frames[index] = frame
                position += 1
            else:
                position = -1
        return frames
    finally:
        cap.release()


def video_info(path: str | Path) -> tuple[int, float]:
    """``(frame count or -1 when unknown, frames per second or 0.0)`` of a video."""
    cap, count = open_video(path)
    try:
        return count, float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()


def iter_frames(
    path: str | Path, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame_index, frame_bgr)`` for every frame in ``[start, stop)``, in order.

    Frames before ``start`` are decoded through (``grab``), not seeked to, so the
    indices are exact on every codec.
    """
    cap, _ = open_video(path)
    try:
        index = 0
        while stop is None or index < stop:
            if index < start:
                if not cap.grab():
                    return
                index += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            yield index, frame
            index += 1
    finally:
        cap.release()


def read_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` (exact, decoded straight through); missing ones are left out."""
    wanted = set(indices)
    if not wanted:
        return {}
    frames: dict[int, np.ndarray] = {}
    cap, _ = open_video(path)
    try:
        for index in range(max(wanted) + 1):
            if index in wanted:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                frames[index] = frame
            elif not cap.grab():
                break
    finally:
        cap.release()
    return frames


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


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write BGR frames (all of one size) to an mp4 (``mp4v``), atomically; returns ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = None
    try:
        for frame in frames:
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
                if not writer.isOpened():
                    raise ValueError(f"{path}: OpenCV cannot write an mp4v video here")
            writer.write(frame)
    except BaseException:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise ValueError(f"{path}: no frames to write")
    writer.release()
    os.replace(tmp, path)
    return path
