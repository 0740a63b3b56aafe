"""Video files: open with a clear error, and sample frames spread over a stretch."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["open_video", "sample_frames"]

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
    wanted = sorted(
        {int(i) for i in np.linspace(start, stop - 1, num=max(1, min(n, stop - start)))}
    )
    gap = (stop - start) / max(1, len(wanted))
    cap, _ = open_video(path)
    try:
        frames: list[np.ndarray] = []
        if gap <= _SEEK_GAP:
            if start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            want = set(wanted)
            for index in range(start, wanted[-1] + 1):
                if index in want:
                    ok, frame = cap.read()
                    if ok and frame is not None:
                        frames.append(frame)
                elif not cap.grab():
                    break
            return frames
        for index in wanted:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(frame)
        return frames
    finally:
        cap.release()
