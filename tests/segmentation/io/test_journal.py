"""The resumable-run journal: header, torn tail, refusal of other settings, overwrite."""

from __future__ import annotations

import json

import pytest

from aquapose.segmentation.io.journal import Journal, iter_journal


def test_journal_resumes_after_a_torn_line_and_refuses_other_settings(tmp_path):
    path = tmp_path / "run.jsonl"
    with Journal(path, {"every": 2, "videos": ["a.mp4"]}) as journal:
        assert journal.records == []
        for i in range(3):
            journal.append({"frame_index": i})
    # A kill mid-write leaves half a line: it is cut off, the rest resumes.
    path.write_bytes(path.read_bytes() + b'{"frame_ind')
    with Journal(path, {"videos": ["a.mp4"], "every": 2}) as journal:
        assert [r["frame_index"] for r in journal.records] == [0, 1, 2]
        journal.append({"frame_index": 3})
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"run": {"every": 2, "videos": ["a.mp4"]}}
    assert [r["frame_index"] for r in iter_journal(path)] == [0, 1, 2, 3]

    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"holds results made with other every, videos") as info:
        Journal(path, {"every": 3, "videos": ["b.mp4"]})
    assert "--overwrite" in str(info.value) and path.read_bytes() == before
    with Journal(path, {"every": 3}, overwrite=True) as journal:
        assert journal.records == []
        journal.append({"frame_index": 0})
    assert len(path.read_text().splitlines()) == 2


def test_rewrite_keeps_the_header_and_a_file_of_another_tool_is_refused(tmp_path):
    path = tmp_path / "run.jsonl"
    with Journal(path, {"k": 1}) as journal:
        journal.append({"camera_id": "a", "end": True})
        journal.append({"camera_id": "b"})
        journal.rewrite([{"camera_id": "a", "end": True}])
        journal.append({"camera_id": "c"})
    assert [r["camera_id"] for r in iter_journal(path)] == ["a", "c"]
    other = tmp_path / "other.jsonl"
    other.write_text('{"camera_id": "a"}\n')
    with pytest.raises(ValueError, match="first line is not a run header"):
        Journal(other, {"k": 1})
