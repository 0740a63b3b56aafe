"""Video reading: exact frame indices, rigs of files and folders, atomic writing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aquapose.segmentation.io.video import (
    find_videos,
    iter_frames,
    read_frames,
    sample_frame_pairs,
    sample_frames,
    video_info,
    write_video,
)


@pytest.fixture
def numbered(tmp_path):
    """A lossless clip whose frame i is filled with grey level 10 * i."""
    frames = (np.full((16, 24, 3), 10 * i, np.uint8) for i in range(12))
    return write_video(tmp_path / "clip.avi", frames, fps=5.0), 12


def _level(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 10)


def test_frames_come_with_their_exact_index(numbered):
    path, count = numbered
    assert video_info(path)[0] == count
    assert [(i, _level(f)) for i, f in iter_frames(path, start=4, stop=7)] == [
        (4, 4),
        (5, 5),
        (6, 6),
    ]
    picked = read_frames(path, [9, 2, 30])
    assert sorted(picked) == [2, 9] and _level(picked[9]) == 9


def test_samples_come_with_a_partner_a_few_frames_away(numbered):
    """Each sample's partner is ``gap`` frames later, or earlier where that is past the end."""
    path, count = numbered
    frames, partners = sample_frame_pairs(path, 0, count, 4, gap=2)
    assert [_level(f) for f in frames] == [0, 3, 7, 11]
    assert [_level(f) for f in partners] == [2, 5, 9, 9]
    assert [_level(f) for f in sample_frames(path, 0, count, 4)] == [0, 3, 7, 11]
    frames, partners = sample_frame_pairs(path, 4, 7, 3, gap=5)  # shorter than the gap
    assert [_level(f) for f in frames] == [4, 5, 6]
    assert [_level(f) for f in partners] == [6, 6, 4]


def test_write_video_is_atomic_and_refuses_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=5.0)
    assert list(tmp_path.iterdir()) == []
    path = write_video(tmp_path / "a.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, fps=5.0)
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_find_videos_expands_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video"):
        find_videos([tmp_path / "missing.mp4"])
    with pytest.raises(FileNotFoundError, match="holds no video files"):
        find_videos([tmp_path])
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "a.avi").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert find_videos([tmp_path]) == [tmp_path / "a.avi", tmp_path / "b.mp4"]
