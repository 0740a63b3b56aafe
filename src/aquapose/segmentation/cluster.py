"""Segment a rig's videos on a Ray cluster: one Ray task per (video, chunk of frames).

Needs the optional extra ``aquapose[ray]`` (Ray Core); Ray is imported only here.

- **The unit of work** is :func:`~aquapose.segmentation.segment.segment_chunk`: frames
  ``[start, stop)`` of one video, decoded and detected inside the task (frames never
  cross the object store; only the chunk's masks come back). The detector is primed
  for the whole video, so a chunk's detections equal one pass's. A chunk seeks to its
  first frame (``CAP_PROP_POS_FRAMES``, fast but not frame-accurate on every codec) and
  its overlap frames' fingerprints must equal those the previous chunk decoded at the
  same indices; if not, it is run again decoding from frame 0 (``seek=False``: always).
- **Tracks** (re-checks of lost fish) carry from frame to frame, so every chunk but a
  video's first starts ``overlap_frames`` early with no tracks and drops those frames.
  All chunks run at once; then, video by video, a chunk whose tracks on entering its
  first frame equal the previous chunk's tracks after its last frame (and whose frames
  were checked) is exact. One that differs (e.g. a fish lost over the whole overlap) is
  run again from the previous chunk's tracks. So ``results.json`` always equals a
  single-process run's; only the work done differs.
- **Model** loaded once per worker process (cached between tasks; GPU workers are kept
  with ``max_calls=0``).
- **Failures**: a task whose worker dies, or that raises ``RuntimeError``/``OSError``
  (e.g. CUDA out of memory), is retried ``max_retries`` times.
- **Resume**: each finished chunk is written to ``out_dir/chunks/<camera>_<start>_<stop>.json``
  as it arrives; a re-run (same videos and settings) recomputes none of them.
- **Merge**: the chunks' records, in video and frame order, become the ``segments.jsonl``
  and ``results.json`` that :func:`~aquapose.segmentation.segment.segment_videos` writes.

Every node must see the videos at the same paths (a shared file system) and have
aquapose installed; the driver alone writes ``out_dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aquapose.segmentation.io.config import write_config
from aquapose.segmentation.io.files import atomic_write_json
from aquapose.segmentation.segment import (
    Chunk,
    ChunkResult,
    SegmentConfig,
    plan_chunks,
    run_settings,
    segment_chunk,
    write_chunk_results,
)

__all__ = ["RayConfig", "segment_videos_ray"]

#: a checkpoint path, or a picklable zero-argument function returning a model.
ModelSpec = str | Path | Callable[[], Any]
#: ``on_chunk(chunk, status)``: ``"done"`` (computed now), ``"cached"`` (by an earlier
#: run) once final, ``"redo"`` when a chunk's tracks differed and it runs again.
ChunkFn = Callable[[Chunk, str], None]

_MODELS: dict[str, Any] = {}  # per worker process: the model of each ModelSpec key


@dataclass(frozen=True)
class RayConfig:
    """How :func:`segment_videos_ray` uses the cluster.

    Attributes:
        address: an existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            None starts a local one for this run.
        chunk_frames: frames per task (0 = one task per video). Every chunk decodes its
            video from frame 0, so very small chunks of long videos waste decoding.
        overlap_frames: frames a chunk starts early to rebuild the fish tracks.
        gpus_per_task: GPUs per task (0.5 = two workers share a GPU).
        cpus_per_task: CPUs per task.
        num_cpus: CPUs of the local cluster (None = all); ignored with ``address``.
        max_retries: times a failed or killed task is run again.
        seek: start a chunk by seeking to its overlap (whose frames are checked against
            the previous chunk's last ones; the chunk is decoded straight through when
            they differ) instead of decoding the video from frame 0 (exact, but ~260
            frames/s at 1600x1200 for every chunk). Needs ``overlap_frames`` >= 1.
    """

    address: str | None = None
    chunk_frames: int = 1800
    overlap_frames: int = 150
    gpus_per_task: float = 0.0
    cpus_per_task: float = 1.0
    num_cpus: int | None = None
    max_retries: int = 3
    seek: bool = True

    def __post_init__(self) -> None:
        if self.chunk_frames < 0 or self.overlap_frames < 0 or self.max_retries < 0:
            raise ValueError("chunk_frames, overlap_frames and max_retries must be >= 0")
        if self.gpus_per_task < 0 or self.cpus_per_task <= 0:
            raise ValueError("gpus_per_task must be >= 0 and cpus_per_task > 0")


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ImportError(
            "--engine ray needs Ray: pip install 'ray>=2.9' (aquapose's extra named ray)"
        ) from None
    return ray


def _load_model(key: str, spec: ModelSpec) -> Any:
    model = _MODELS.get(key)
    if model is None:
        if isinstance(spec, str | Path):
            from aquapose.segmentation.model import MaskRCNNSegmentor

            model = MaskRCNNSegmentor.load(spec)
        else:
            model = spec()
        _MODELS[key] = model
    return model


def _run_chunk(
    key: str,
    spec: ModelSpec,
    chunk: Chunk,
    config: SegmentConfig,
    overlap: int,
    state: dict[str, Any] | None,
    seek: bool,
) -> ChunkResult:
    """The Ray task: one chunk, with the worker's cached model."""
    model = _load_model(key, spec)
    return segment_chunk(chunk, model, config, warmup=overlap, state=state, seek=seek)


def _model_key(spec: ModelSpec, ray: Any) -> str:
    if isinstance(spec, str | Path):
        path = Path(spec).resolve()
        stat = path.stat()
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha1(ray.cloudpickle.dumps(spec)).hexdigest()


def _chunk_path(out: Path, chunk: Chunk) -> Path:
    return out / "chunks" / f"{chunk.name}.json"


def _read_chunk(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A finished chunk's file (None when absent or unreadable); refuses other settings."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("run") != settings:
        raise ValueError(
            f"{path}: made with other videos or settings; use the same settings to resume, "
            "--overwrite to start over, or a new output folder"
        )
    return data


_SUMMARY = ("start_state", "end_state", "head", "tail", "seeked")


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the check of a chunk against its neighbours needs (not its records)."""
    return {k: data[k] for k in _SUMMARY}


def segment_videos_ray(
    videos: Sequence[str | Path],
    model: ModelSpec,
    out_dir: str | Path,
    config: SegmentConfig | None = None,
    cluster: RayConfig | None = None,
    *,
    overwrite: bool = False,
    on_chunk: ChunkFn | None = None,
) -> Path:
    """:func:`~aquapose.segmentation.segment.segment_videos` on a Ray cluster; returns the
    path of ``out_dir/results.json``, equal to a single-process run's.

    ``model`` is a checkpoint path (loaded by each worker) or a picklable function
    returning a model.
    """
    config = config or SegmentConfig()
    cluster = cluster or RayConfig()
    ray = _import_ray()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: output path exists and is not a folder")
    camera_ids = [Path(v).stem for v in videos]
    if len(set(camera_ids)) != len(camera_ids):
        raise ValueError(f"video file names must be unique per camera, got {camera_ids}")
    if overwrite:
        shutil.rmtree(out / "chunks", ignore_errors=True)
        (out / "segments.jsonl").unlink(missing_ok=True)
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    write_config(config, out / "segment_config.yaml")
    settings = json.loads(json.dumps(run_settings(videos, config), default=str))
    chunks = plan_chunks(videos, cluster.chunk_frames, config)
    states: dict[Chunk, dict[str, Any]] = {}
    for chunk in chunks:
        data = _read_chunk(_chunk_path(out, chunk), settings)
        if data is not None:
            states[chunk] = _summary(data)
    cached, final = set(states), set[Chunk]()
    redo: dict[Chunk, tuple[dict[str, Any] | None, bool]] = {}
    _verify(chunks, states, final, cached, on_chunk, lambda c, st, sk: redo.update({c: (st, sk)}))
    seek = cluster.seek and cluster.overlap_frames > 0  # the overlap is what it is checked on
    todo = {c: redo.get(c, (None, seek)) for c in chunks if c not in states}
    if todo:
        _run_on_ray(
            ray,
            todo,
            chunks,
            states,
            final,
            cached,
            model,
            out,
            settings,
            config,
            cluster,
            on_chunk,
        )
    return write_chunk_results(out, settings, _iter_records(out, chunks))


def _run_on_ray(
    ray: Any,
    todo: dict[Chunk, tuple[dict[str, Any] | None, bool]],
    chunks: list[Chunk],
    states: dict[Chunk, dict[str, Any]],
    final: set[Chunk],
    cached: set[Chunk],
    model: ModelSpec,
    out: Path,
    settings: dict[str, Any],
    config: SegmentConfig,
    cluster: RayConfig,
    on_chunk: ChunkFn | None,
) -> None:
    started = not ray.is_initialized()
    if started:
        if cluster.address is None:
            ray.init(
                num_cpus=cluster.num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=128 * 1024**2,
                log_to_driver=False,
            )
        else:
            ray.init(address=cluster.address, log_to_driver=False)
    try:
        task = ray.remote(
            num_cpus=cluster.cpus_per_task,
            num_gpus=cluster.gpus_per_task,
            max_retries=cluster.max_retries,
            retry_exceptions=[RuntimeError, OSError],
            max_calls=0,  # keep workers (and their model) alive, GPU ones too
        )(_run_chunk)
        key = _model_key(model, ray)
        spec = ray.put(model)
        pending: dict[Any, Chunk] = {}

        def submit(chunk: Chunk, state: dict[str, Any] | None, seek: bool) -> None:
            ref = task.remote(key, spec, chunk, config, cluster.overlap_frames, state, seek)
            pending[ref] = chunk

        for chunk, (state, seek) in todo.items():
            submit(chunk, state, seek)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(ready[0])
            try:
                result: ChunkResult = ray.get(ready[0])
            except Exception as err:
                cause = getattr(err, "cause", None) or err  # a RayTaskError's own error
                why = (str(cause).strip().splitlines() or [""])[0] or type(cause).__name__
                stop = "end" if chunk.stop is None else chunk.stop
                raise RuntimeError(
                    f"{chunk.camera_id} frames [{chunk.start}, {stop}): {why}"
                ) from err
            summary = {k: getattr(result, k) for k in _SUMMARY}
            record = {"run": settings, **summary, "records": result.records}
            atomic_write_json(_chunk_path(out, chunk), record)
            states[chunk] = json.loads(json.dumps(summary))  # as a cached one reads back
            _verify(chunks, states, final, cached, on_chunk, submit)
    finally:
        if started:
            ray.shutdown()


_INITIAL: dict[str, Any] = {"processed": 0, "tracks": []}  # a video's first frame


def _verify(
    chunks: list[Chunk],
    states: dict[Chunk, dict[str, Any]],
    final: set[Chunk],
    cached: set[Chunk],
    on_chunk: ChunkFn | None,
    submit: Callable[[Chunk, dict[str, Any], bool], None],
) -> None:
    """Mark the chunks that are exact, video by video from its first chunk: a chunk whose
    start state equals the (exact) previous chunk's end state and, when it seeked, whose
    warm-up frames are the previous chunk's last ones. One that differs is run again
    from that end state (``submit``; decoding straight through if its frames differed);
    the chunks after it wait."""
    previous: Chunk | None = None
    blocked = False
    before: dict[str, Any] = {"end_state": _INITIAL, "tail": []}
    for chunk in chunks:
        if previous is None or previous.camera_id != chunk.camera_id:
            before, blocked = {"end_state": _INITIAL, "tail": []}, False
        previous = chunk
        if blocked:
            continue
        if chunk in final:
            before = states[chunk]
            continue
        if chunk not in states:  # still running
            blocked = True
            continue
        mine = states[chunk]
        same_frames = not mine["seeked"] or mine["head"] == before["tail"]
        if same_frames and mine["start_state"] == before["end_state"]:
            final.add(chunk)
            if on_chunk:
                on_chunk(chunk, "cached" if chunk in cached else "done")
            before = mine
        else:
            del states[chunk]
            cached.discard(chunk)
            if on_chunk:
                on_chunk(chunk, "redo")
            submit(chunk, before["end_state"], same_frames and mine["seeked"])
            blocked = True


def _iter_records(out: Path, chunks: list[Chunk]) -> Iterator[dict[str, Any]]:
    for chunk in chunks:
        data = json.loads(_chunk_path(out, chunk).read_text(encoding="utf-8"))
        yield from data["records"]
