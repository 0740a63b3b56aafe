"""Write a synthetic rig to disk: videos, COCO ground truth per camera, a manifest.

Layout of ``out_dir`` (see CONTRACTS.md)::

    manifest.json            preset, seed, fps, frame size, cameras, events, fish, config
    cam0.mp4                 BGR video (lossy mp4v; ``.avi`` lossless FFV1 without compression)
    cam0_gt.json             COCO: one image per frame, one annotation per visible fish
    frames/cam0/000000.png   the decoded video frames (only with ``write_frames=True``)

The same seed gives byte-identical ground truth and manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.io.files import atomic_write_json, write_image
from aquapose.segmentation.io.video import iter_frames
from aquapose.segmentation.types import AnnotatedFrame, Instance
from aquapose.synth.config import SynthConfig, resolve_config
from aquapose.synth.fish import make_population
from aquapose.synth.motion import CameraPlan
from aquapose.synth.render import CameraRenderer, FishInView

#: ``progress(camera_id, frames_done, frames_total)`` after every frame.
ProgressFn = Callable[[str, int, int], None]


def generate(
    out_dir: str | Path,
    preset: str | SynthConfig = "tiny",
    seed: int = 0,
    write_frames: bool = False,
    preview: bool = False,
    progress: ProgressFn | None = None,
    **overrides: Any,
) -> Path:
    """Generate a synthetic multi-camera clip set in ``out_dir``; returns the manifest's path.

    Long on purpose: the steps of writing a rig (plan, render each camera, ground truth,
    manifest, preview) in their order, each a few lines.

    Args:
        out_dir: output folder (created; existing files of the same names are replaced).
        preset: ``"tiny"``, ``"demo"``, ``"rig"``, ``"crowd"``, ``"resting"``, ``"random"``
            (drawn from ``seed``) or a :class:`SynthConfig`.
        seed: everything (tracks, looks, noise) follows from it.
        write_frames: also write each decoded video frame as ``frames/<camera>/<index>.png``.
        preview: also write ``preview.png``, a contact sheet with the ground truth drawn.
        progress: called after each frame (for progress bars).
        **overrides: SynthConfig fields or the short names ``cameras``, ``fish``, ``frames``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    config = resolve_config(preset, seed=int(seed), **overrides)
    preset_name = preset if isinstance(preset, str) else "custom"
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    population = make_population(config, int(seed))
    cameras: list[dict[str, Any]] = []
    gt_frames: dict[str, list[AnnotatedFrame]] = {}
    plans: list[CameraPlan] = []
    for index in range(config.num_cameras):
        renderer = CameraRenderer(config, int(seed), index, population)
        plans.append(renderer.plan)
        cam = renderer.camera_id
        video = f"{cam}{config.video_suffix}"
        frames = _write_camera(renderer, out / video, progress)
        gt_name = f"{cam}_gt.json"
        info = {
            "description": f"AquaPose synthetic aquarium, preset {preset_name}, seed {seed}",
            "date_created": None,
            "camera_id": cam,
        }
        write_coco(frames, out / gt_name, info=info)
        gt_frames[cam] = frames
        entry: dict[str, Any] = {
            "camera_id": cam,
            "video": video,
            "ground_truth": gt_name,
            "num_frames": config.num_frames,
            "tank_center_xy": [round(v, 2) for v in renderer.plan.tank.center_xy],
            "tank_radius": None
            if renderer.plan.tank.radius is None
            else round(renderer.plan.tank.radius, 2),
            "light_dir": [round(v, 4) for v in renderer.plan.light_dir],
            "floor_grey": round(renderer.scene.floor_grey_mean, 2),
        }
        if write_frames:
            count = write_decoded_frames(out / video, out / "frames" / cam)
            if count != config.num_frames:
                raise RuntimeError(
                    f"{out / video}: decoded {count} frames, wrote {config.num_frames}; "
                    "the video backend dropped frames"
                )
            entry["frames_dir"] = f"frames/{cam}"
        cameras.append(entry)
    manifest = {
        "preset": preset_name,
        "seed": int(seed),
        "fps": config.fps,
        "frame_width": config.width,
        "frame_height": config.height,
        "num_frames": config.num_frames,
        "cameras": cameras,
        "events": summarize_events(gt_frames, config),
        "planned_events": [e.to_dict() for plan in plans for e in plan.events],
        "fish": [f.to_dict() for f in population],
        "fish_id_note": "fish_id names the same animal (size, looks) in every camera; "
        "each camera sees its own part of the tank, so tracks differ between cameras",
        "config": config.to_dict(),
    }
    path = atomic_write_json(out / "manifest.json", manifest, indent=2)
    if preview:
        from aquapose.synth.preview import write_preview

        write_preview(path)
    return path


def _write_camera(
    renderer: CameraRenderer, video_path: Path, progress: ProgressFn | None
) -> list[AnnotatedFrame]:
    """Render every frame into ``video_path`` (atomically) and return the ground truth."""
    cfg = renderer.config
    cam = renderer.camera_id
    tmp = video_path.with_name(f".{video_path.stem}.partial{video_path.suffix}")
    fourcc = cv2.VideoWriter.fourcc(*("mp4v" if cfg.compression else "FFV1"))
    writer = cv2.VideoWriter(str(tmp), fourcc, float(cfg.fps), (cfg.width, cfg.height))
    if not writer.isOpened():
        raise RuntimeError(f"{video_path}: OpenCV cannot open a video writer for this format")
    frames: list[AnnotatedFrame] = []
    try:
        for i in range(cfg.num_frames):
            rendered = renderer.render(i)
            writer.write(rendered.image)
            frames.append(
                AnnotatedFrame(
                    image_id=renderer.camera_index * 1_000_000 + i + 1,
                    image_path=f"frames/{cam}/{i:06d}.png",
                    width=cfg.width,
                    height=cfg.height,
                    camera_id=cam,
                    frame_index=i,
                    video=video_path.name,
                    instances=tuple(_instance(f) for f in rendered.fish),
                )
            )
            if progress is not None:
                progress(cam, i + 1, cfg.num_frames)
        writer.release()
        os.replace(tmp, video_path)
    except BaseException:
        writer.release()
        tmp.unlink(missing_ok=True)
        raise
    return frames


def _instance(fish: FishInView) -> Instance:
    return Instance(
        box_xyxy=fish.box_xyxy,
        rle=fish.rle,
        fish_id=fish.fish_id,
        extra={
            "stationary": fish.stationary,
            "low_contrast": fish.low_contrast,
            "touching": fish.touching,
            "touching_fish_ids": list(fish.touching_ids),
            "occluded_fraction": round(fish.occluded_fraction, 4),
            "truncated": fish.truncated,
            "contrast": round(fish.contrast, 2),
        },
    )


def write_decoded_frames(video_path: str | Path, frames_dir: str | Path) -> int:
    """Decode ``video_path`` and write every frame as ``frames_dir/<index:06d>.png``; returns the count."""
    frames_dir = Path(frames_dir)
    count = 0
    for index, frame in iter_frames(video_path):
        write_image(frames_dir / f"{index:06d}.png", frame)
        count += 1
    return count


def summarize_events(
    gt_frames: dict[str, list[AnnotatedFrame]], config: SynthConfig
) -> dict[str, Any]:
    """Count the difficulties actually present in the ground truth (totals and per camera).

    - ``stationary_episodes``: runs of frames in which a fish is flagged ``stationary``;
      ``stationary_episodes_10s``: those where the fish is still for >= 10 s in all;
    - ``low_contrast_fish``: (camera, fish) pairs ever flagged ``low_contrast``;
    - ``touching_events``: runs of frames in which a given pair of fish touch;
    - ``entering`` / ``leaving``: a fish comes into / goes out of view mid-clip;
    - ``empty_frames``: frames with no fish; ``*_annotations``: flagged fish-frames.
    """
    per_camera: dict[str, dict[str, int]] = {}
    for cam, frames in gt_frames.items():
        per_camera[cam] = _camera_events(frames, config)
    totals: dict[str, Any] = {}
    for counts in per_camera.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    totals["per_camera"] = per_camera
    return totals


def _runs(indices: list[int]) -> list[int]:
    """Lengths of the runs of consecutive integers in a sorted list."""
    runs: list[int] = []
    previous = None
    for i in indices:
        if previous is not None and i == previous + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        previous = i
    return runs


def _camera_events(frames: list[AnnotatedFrame], config: SynthConfig) -> dict[str, int]:
    still: dict[int, list[int]] = {}
    faint: dict[int, list[int]] = {}
    seen: dict[int, list[int]] = {}
    pairs: dict[tuple[int, int], list[int]] = {}
    touching_frames = occluded = 0
    empty = 0
    flags = {"stationary": 0, "low_contrast": 0, "touching": 0}
    last = config.num_frames - 1
    for frame in frames:
        if not frame.instances:
            empty += 1
        touching_here = False
        for inst in frame.instances:
            fid = int(inst.fish_id or 0)
            seen.setdefault(fid, []).append(frame.frame_index)
            for key in flags:
                flags[key] += bool(inst.extra.get(key))
            if inst.extra.get("stationary"):
                still.setdefault(fid, []).append(frame.frame_index)
            if inst.extra.get("low_contrast"):
                faint.setdefault(fid, []).append(frame.frame_index)
            if inst.extra.get("occluded_fraction", 0) > 0:
                occluded += 1
            for other in inst.extra.get("touching_fish_ids", []):
                touching_here = True
                if fid < other:
                    pairs.setdefault((fid, other), []).append(frame.frame_index)
        touching_frames += touching_here
    flag_frames = config.stationary_flag_seconds * config.fps
    still_runs = [r for v in still.values() for r in _runs(v)]
    entering = leaving = 0
    for indices in seen.values():
        start = indices[0]
        for i, j in zip(indices, indices[1:] + [None], strict=True):
            if j is None or j != i + 1:
                entering += start > 0
                leaving += i < last
                start = j if j is not None else start
    return {
        "stationary_episodes": len(still_runs),
        "stationary_episodes_10s": sum(r + flag_frames >= 10.0 * config.fps for r in still_runs),
        "stationary_annotations": flags["stationary"],
        "low_contrast_fish": len(faint),
        "low_contrast_annotations": flags["low_contrast"],
        "touching_events": sum(len(_runs(v)) for v in pairs.values()),
        "touching_frames": touching_frames,
        "touching_annotations": flags["touching"],
        "occluded_annotations": occluded,
        "entering": entering,
        "leaving": leaving,
        "empty_frames": empty,
        "frames": len(frames),
        "annotations": sum(len(f.instances) for f in frames),
    }
