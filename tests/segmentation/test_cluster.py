"""Chunked segmentation (`segment_chunk`) and the Ray engine (`segment_videos_ray`).

A 3-camera tiny synthetic rig, a contrast-threshold stand-in for the model (it finds
the fish and some specks, so tracks and re-checks carry across chunk boundaries).
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path

import _stand_ins
import numpy as np
import pytest
from _stand_ins import ContrastModel, CrashOnceModel
from _timeouts import deadline

from aquapose.segmentation.detector import detect_video
from aquapose.segmentation.io.video import find_videos
from aquapose.segmentation.segment import (
    SegmentConfig,
    plan_chunks,
    segment_chunk,
    segment_videos,
)
from aquapose.synth import generate

CONFIG = SegmentConfig(refine_pad=0)  # GrabCut off: faster, and it changes nothing here
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("rig")
    generate(out, preset="tiny", seed=3, cameras=3)  # 3 videos of 60 frames
    return find_videos([out])


@pytest.fixture(scope="module")
def single(rig, tmp_path_factory) -> Path:
    """The single-process run's output folder."""
    out = tmp_path_factory.mktemp("ref") / "single"
    segment_videos(rig, ContrastModel(), out, CONFIG)
    return out


def _journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "segments.jsonl").read_text().splitlines()][1:]


def _results(out: Path) -> dict:
    data = json.loads((out / "results.json").read_text())
    return {k: data[k] for k in ("images", "annotations", "categories")}


def test_detections_from_mid_video_equal_one_pass(rig):
    video = rig[0]
    whole = {i: d for i, _, d in detect_video(video)}
    part = {i: d for i, _, d in detect_video(video, start=23, stop=41)}
    assert sorted(part) == list(range(23, 41))
    for index, detections in part.items():
        assert len(detections) == len(whole[index])
        for a, b in zip(detections, whole[index], strict=True):
            np.testing.assert_array_equal(a.box_xyxy, b.box_xyxy)
            np.testing.assert_array_equal(a.blob_mask, b.blob_mask)


def test_detections_after_a_seek_equal_one_pass(rig):
    whole = {i: (f, d) for i, f, d in detect_video(rig[1])}
    part = {i: (f, d) for i, f, d in detect_video(rig[1], start=31, stop=45, seek=True)}
    assert sorted(part) == list(range(31, 45))
    for index, (frame, detections) in part.items():
        np.testing.assert_array_equal(frame, whole[index][0])  # this codec seeks exactly
        assert [d.box_xyxy.tolist() for d in detections] == [
            d.box_xyxy.tolist() for d in whole[index][1]
        ]


def test_plan_chunks_cover_each_video_in_order(rig):
    chunks = plan_chunks(rig, 25, CONFIG)
    assert [(c.camera_id, c.start, c.stop) for c in chunks[:3]] == [
        ("cam0", 0, 25),
        ("cam0", 25, 50),
        ("cam0", 50, None),  # the last chunk reads to the end
    ]
    assert len(chunks) == 9
    assert [c.stop for c in plan_chunks(rig, 0, CONFIG)] == [None] * 3
    unprimed = replace(CONFIG, detector=replace(CONFIG.detector, median_frames=0))
    assert len(plan_chunks(rig, 25, unprimed)) == 3  # cannot start mid-video


@pytest.mark.slow
@pytest.mark.parametrize("seek", [False, True])
def test_chunks_equal_one_pass_when_their_tracks_do(rig, single, seek):
    """Chained from the previous chunk's state, chunks give exactly one pass's records;
    started cold (with an overlap), a chunk is exact exactly when its start state
    matches, and here some do not: the check is needed. A seeking chunk's overlap
    frames are the ones the previous chunk decoded last."""
    expected = _journal(single)
    chained, checked, differing = [], 0, 0
    previous = None
    for chunk in plan_chunks(rig, 20, CONFIG):
        state = previous.end_state if previous and chunk.start else None
        exact = segment_chunk(chunk, ContrastModel(), CONFIG, warmup=5, state=state, seek=seek)
        chained += exact.records
        if chunk.start:
            cold = segment_chunk(chunk, ContrastModel(), CONFIG, warmup=5, seek=seek)
            assert cold.seeked == seek and exact.seeked == seek
            assert cold.head == exact.head == previous.tail and len(cold.head) == 5
            same_state = cold.start_state == previous.end_state
            checked += 1
            differing += not same_state
            if same_state:
                assert cold.records == exact.records
        previous = exact
    assert chained == expected
    assert checked == 6 and differing > 0


def test_verify_accepts_matching_chunks_and_reruns_the_first_that_differs():
    from aquapose.segmentation.cluster import _INITIAL, _verify
    from aquapose.segmentation.segment import Chunk

    chunks = [Chunk("v.mp4", "cam", 0, 10), Chunk("v.mp4", "cam", 10, 20)]
    chunks += [Chunk("v.mp4", "cam", 20, None)]
    mid = {"processed": 10, "tracks": [[1.0, 2.0, 3.0, 4.0, 9, 0]]}
    tail = [[8, "aa"], [9, "bb"]]

    def summary(start, end, head=(), seeked=True):
        return {
            "start_state": start,
            "end_state": end,
            "head": list(head),
            "tail": tail,
            "seeked": seeked,
        }

    def run(second, third):
        states = {chunks[0]: summary(_INITIAL, mid, seeked=False), chunks[1]: second}
        states[chunks[2]] = third
        final, events, redo = set(), [], []
        _verify(
            chunks,
            states,
            final,
            set(),
            lambda c, s: events.append((c.start, s)),
            lambda c, st, sk: redo.append((c.start, st, sk)),
        )
        return events, redo

    good = summary(mid, mid, tail)
    events, redo = run(good, good)
    assert events == [(0, "done"), (10, "done"), (20, "done")] and redo == []
    # tracks differ: run again from the previous end, seeking (its frames were right)
    events, redo = run(summary({"processed": 10, "tracks": []}, mid, tail), good)
    assert events == [(0, "done"), (10, "redo")] and redo == [(10, mid, True)]
    # frames differ (a seek landed elsewhere): run again decoding from frame 0
    events, redo = run(summary(mid, mid, [[8, "aa"], [9, "XX"]]), good)
    assert redo == [(10, mid, False)]


@pytest.mark.slow
def test_ray_engine_equals_one_process_survives_a_killed_task_and_resumes(
    rig, single, tmp_path, monkeypatch
):
    ray = pytest.importorskip("ray")
    from aquapose.segmentation.cluster import RayConfig, segment_videos_ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # Ray >= 2.5x: token auth by default
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.cloudpickle.register_pickle_by_value(_stand_ins)  # workers cannot import tests/
    marker, raised = tmp_path / "crashed", tmp_path / "raised"
    # The first predict call of the run kills its worker process (os._exit), the next raises.
    model = functools.partial(CrashOnceModel, str(marker), str(raised))
    cluster = RayConfig(chunk_frames=20, overlap_frames=5, num_cpus=2, max_retries=2)
    out = tmp_path / "ray"
    statuses: list[str] = []
    with deadline(TIMEOUT_S):
        segment_videos_ray(
            rig, model, out, CONFIG, cluster, on_chunk=lambda c, s: statuses.append(s)
        )
    assert marker.exists() and raised.exists()  # a task was killed, one raised: retried
    assert not ray.is_initialized()  # the local cluster it started is gone
    assert statuses.count("done") == 9 and "cached" not in statuses
    assert "redo" in statuses  # some chunks' tracks differed: run again from the previous end
    assert _journal(out) == _journal(single)
    assert _results(out) == _results(single)

    files = sorted((out / "chunks").glob("*.json"))
    assert len(files) == 9
    stamps = [f.stat().st_mtime_ns for f in files]
    statuses.clear()
    with deadline(TIMEOUT_S):
        segment_videos_ray(
            rig, model, out, CONFIG, cluster, on_chunk=lambda c, s: statuses.append(s)
        )
    assert statuses == ["cached"] * 9  # nothing recomputed (Ray not even started)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert _results(out) == _results(single)
    with pytest.raises(ValueError, match="other videos or settings"):
        segment_videos_ray(rig, model, out, replace(CONFIG, every=2), cluster)
