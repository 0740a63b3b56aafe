"""``aquapose pseudolabel``: detections -> mask pseudo-labels -> COCO train/val sets.

Output layout (``--out DIR``):

- ``pseudolabels.json``: COCO, every detection's mask, accepted or not. Each
  annotation carries ``accepted`` (bool), ``reject_reason`` (one of
  ``low_score``/``small_area``/``low_fill``/``high_fill``/``low_contrast``, or null),
  ``detection_box_xyxy``, ``fill`` and ``contrast`` (mean change from the camera's
  median background, when ``--background``); ``score`` is the detection's score and ``bbox``
  the mask's tight box (the detection box for an empty mask). ``info.pseudolabel``
  holds the settings. Written atomically every ``--save-every`` frames: an
  interrupted run leaves a valid file, and a re-run skips the frames it holds.
- ``train.json`` / ``val.json``: accepted masks plus negatives (frames without
  detections, background crops in ``negatives/``), split 80/20 per camera.
- ``contact_sheet.png``: crops with mask outlines (green accepted, red rejected).
- ``pseudolabel_config.json``: the resolved settings.

Every ``file_name`` is relative to DIR (absolute when on another drive).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import typer

from aquapose.cli._app import app, console, progress_bar


@app.command()
def pseudolabel(
    detections: Path = typer.Argument(..., help="detections.json written by `aquapose detect`."),
    out: Path = typer.Option(..., "--out", help="Output folder (created)."),
    backend: str = typer.Option("classical", help="classical (no weights), sam or sam2."),
    checkpoint: str | None = typer.Option(
        None,
        help="SAM / SAM 2 checkpoint file, or a released name (vit_b, sam2.1_hiera_tiny) "
        "fetched into torch hub's cache.",
    ),
    model_type: str | None = typer.Option(
        None, help="SAM variant: vit_b, vit_l or vit_h (default: the named checkpoint's, vit_b)."
    ),
    model_cfg: str | None = typer.Option(
        None,
        help="SAM 2 config, e.g. configs/sam2.1/sam2.1_hiera_t.yaml (guessed from a "
        "released checkpoint's file name).",
    ),
    device: str = typer.Option("cpu", help="Torch device of the SAM backends."),
    mask_choice: str = typer.Option(
        "score",
        help="SAM: keep the candidate with the best predicted IoU (score) or the largest (area).",
    ),
    background: bool = typer.Option(
        True,
        "--background/--no-background",
        help="classical: compare with each camera's median background to drop fish shadows.",
    ),
    min_score: float = typer.Option(0.6, help="Filter: minimum detection score."),
    min_area: int = typer.Option(100, help="Filter: minimum mask area (pixels)."),
    min_fill: float = typer.Option(0.05, help="Filter: minimum mask area / box area."),
    max_fill: float = typer.Option(0.6, help="Filter: maximum mask area / box area."),
    min_contrast: float = typer.Option(
        0.2, help="Filter (with --background): minimum mean change from the background."
    ),
    negative_fraction: float = typer.Option(0.1, help="Share of negative images in train/val."),
    crop_size: int = typer.Option(256, help="Side of the negative background crops (pixels)."),
    val_fraction: float = typer.Option(0.2, help="Share of each camera's frames in val."),
    split_block: int = typer.Option(1, help="Keep runs of this many frames on one side."),
    seed: int = typer.Option(0, help="Seeds negatives, split and contact sheet."),
    save_every: int = typer.Option(20, min=1, help="Write pseudolabels.json every N frames."),
    sheet_tiles: int = typer.Option(48, min=1, help="Tiles in contact_sheet.png."),
    overwrite: bool = typer.Option(False, help="Start over instead of resuming."),
) -> None:
    """Label every detection with a mask, filter them and build COCO train/val sets.

    Re-running resumes: frames already in DIR/pseudolabels.json are skipped (the
    filter is re-applied to all of them, so changing its thresholds is cheap).
    """
    import numpy as np

    from aquapose.segmentation.io.coco import read_coco, write_coco
    from aquapose.segmentation.io.files import atomic_write_json, read_image, write_image
    from aquapose.segmentation.labels import (
        REJECT_REASONS,
        FilterConfig,
        SheetItem,
        background_contrast,
        contact_sheet,
        relative_path,
        stratified_split,
        to_coco_dataset,
    )
    from aquapose.segmentation.pseudo_labeler import ClassicalConfig, SAMPseudoLabeler
    from aquapose.segmentation.types import AnnotatedFrame

    filter_cfg = FilterConfig(min_score, min_area, min_fill, max_fill, min_contrast)
    labeler = SAMPseudoLabeler(
        backend,
        checkpoint,
        model_type,
        model_cfg,
        device,
        mask_choice=mask_choice,  # type: ignore[arg-type]
    )
    frames = read_coco(detections)
    if not frames:
        raise ValueError(f"{detections}: no images, nothing to label")
    det_root = detections.parent
    out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "detections": str(detections.resolve()),
        "backend": backend,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "model_type": model_type if backend == "sam" else None,
        "model_cfg": model_cfg,
        "mask_choice": mask_choice if backend != "classical" else None,
        "background": bool(background and backend == "classical"),
        "classical": asdict(ClassicalConfig()) if backend == "classical" else None,
        "filter": asdict(filter_cfg),
        "negative_fraction": negative_fraction,
        "crop_size": crop_size,
        "val_fraction": val_fraction,
        "split_block": split_block,
        "seed": seed,
    }
    atomic_write_json(out / "pseudolabel_config.json", settings, indent=2)

    labels_path = out / "pseudolabels.json"
    done: dict[tuple[str, str, int], AnnotatedFrame] = {}
    if labels_path.exists() and not overwrite:
        done = {_key(f): f for f in read_coco(labels_path)}
        from aquapose.segmentation.io.files import read_json

        info = read_json(labels_path).get("info", {}).get("pseudolabel", {})
        for name in ("backend", "detections"):
            if info.get(name) not in (None, settings[name]):
                raise ValueError(
                    f"{labels_path} was made with {name}={info.get(name)!r}, this run has "
                    f"{settings[name]!r}: pass --overwrite or another --out"
                )
        console.print(f"resuming: {len(done)} of {len(frames)} frames already labelled")

    backgrounds: dict[str, np.ndarray] = {}
    if settings["background"]:
        backgrounds = _median_backgrounds(frames, det_root)

    todo = [f for f in frames if _key(f) not in done]
    missing_scores = 0

    def save(complete: bool) -> None:
        ordered = [done[_key(f)] for f in frames if _key(f) in done]
        info = {
            "description": "AquaPose pseudo-labels",
            "pseudolabel": {**settings, "complete": complete},
        }
        write_coco(ordered, labels_path, info=info)

    with progress_bar() as progress:
        task = progress.add_task(f"pseudolabel ({backend})", total=len(todo))
        for n, frame in enumerate(todo, 1):
            image = read_image(frame.resolve_image(det_root))
            if image.shape[:2] != (frame.height, frame.width):
                raise ValueError(
                    f"{frame.resolve_image(det_root)}: image is {image.shape[1]}x{image.shape[0]}, "
                    f"{detections} says {frame.width}x{frame.height}"
                )
            dets = []
            for inst in frame.instances:
                if inst.score is None:
                    missing_scores += 1
                dets.append(_detection(frame, inst))
            masks = labeler.label_frame(image, dets, backgrounds.get(frame.camera_id))
            contrast = None
            if frame.camera_id in backgrounds:
                contrast = background_contrast(image, backgrounds[frame.camera_id])
            done[_key(frame)] = _labelled_frame(frame, dets, masks, out, det_root, contrast)
            progress.advance(task)
            if n % save_every == 0:
                save(complete=False)

    # (Re-)apply the filter to every frame: thresholds may have changed since a resumed run.
    labelled = [_refilter(done[_key(f)], filter_cfg) for f in frames]
    done = {_key(f): f for f in labelled}
    save(complete=True)
    if missing_scores:
        console.print(f"[yellow]{missing_scores} detections had no score: treated as 1.0[/]")

    dataset = to_coco_dataset(
        labelled, out, out, negative_fraction=negative_fraction, crop_size=crop_size, seed=seed
    )
    train, val = stratified_split(dataset, val_fraction, seed, block_frames=split_block)
    info = {
        "description": "AquaPose pseudo-label training set",
        "source": relative_path(labels_path, out),
    }
    write_coco(train, out / "train.json", info={**info, "split": "train"})
    write_coco(val, out / "val.json", info={**info, "split": "val"})
    write_image(
        out / "contact_sheet.png",
        contact_sheet(_sheet_items(labelled, out, sheet_tiles, seed, read_image, SheetItem)),
    )

    reasons = Counter(
        inst.extra.get("reject_reason") or "accepted" for f in labelled for inst in f.instances
    )
    total = sum(reasons.values())
    console.print(f"{total} masks in {len(labelled)} frames: {reasons['accepted']} accepted")
    for reason in REJECT_REASONS:
        console.print(f"  rejected {reason:10} {reasons.get(reason, 0)}")
    for name, part in (("train", train), ("val", val)):
        negatives = sum(1 for f in part if f.extra.get("negative"))
        fish = sum(len(f.instances) for f in part)
        console.print(f"{name}: {len(part)} images ({negatives} negative), {fish} fish")
    typer.echo(str(labels_path))


def _key(frame: Any) -> tuple[str, str, int]:
    return (frame.camera_id, frame.video, frame.frame_index)


def _detection(frame: Any, inst: Any) -> Any:
    from aquapose.segmentation.types import Detection

    return Detection(
        box_xyxy=inst.box_xyxy,
        score=1.0 if inst.score is None else inst.score,
        camera_id=frame.camera_id,
        frame_index=frame.frame_index,
        blob_mask=inst.mask() if inst.rle is not None else None,
    )


def _labelled_frame(
    frame: Any, dets: list[Any], masks: list[Any], out: Path, det_root: Path, contrast: Any = None
) -> Any:
    """One frame of pseudolabels.json (filter fields filled in later by ``_refilter``)."""
    import numpy as np

    from aquapose.segmentation.labels import relative_path
    from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
    from aquapose.segmentation.types import Instance

    instances = []
    for inst, det, mask in zip(frame.instances, dets, masks, strict=True):
        box = mask_to_box_xyxy(mask) if mask.any() else det.box_xyxy
        x0, y0, x1, y1 = det.box_xyxy
        extra = {
            **inst.extra,
            "detection_box_xyxy": [float(v) for v in det.box_xyxy],
            "fill": float(np.count_nonzero(mask) / max((x1 - x0) * (y1 - y0), 1e-9)),
        }
        if contrast is not None:
            extra["contrast"] = float(contrast[mask].mean()) if mask.any() else 0.0
        instances.append(Instance(box, encode_rle(mask), score=det.score, extra=extra))
    return replace(
        frame,
        image_path=relative_path(frame.resolve_image(det_root), out),
        instances=tuple(instances),
    )


def _refilter(frame: Any, filter_cfg: Any) -> Any:
    from aquapose.segmentation.labels import filter_mask
    from aquapose.segmentation.types import Detection

    instances = []
    for inst in frame.instances:
        box = inst.extra.get("detection_box_xyxy", inst.box_xyxy)
        det = Detection(
            box, inst.score if inst.score is not None else 1.0, frame.camera_id, frame.frame_index
        )
        reason = filter_mask(inst.mask(), det, filter_cfg, inst.extra.get("contrast"))
        instances.append(
            replace(inst, extra={**inst.extra, "accepted": reason is None, "reject_reason": reason})
        )
    return replace(frame, instances=tuple(instances))


def _median_backgrounds(frames: list[Any], root: Path, samples: int = 25) -> dict[str, Any]:
    """Per camera: the per-pixel median of up to ``samples`` frames spread over its frames."""
    from aquapose.segmentation.detector import median_background
    from aquapose.segmentation.io.files import read_image

    by_camera: dict[str, list[Any]] = {}
    for frame in frames:
        by_camera.setdefault(frame.camera_id, []).append(frame)
    out = {}
    for camera, cam_frames in by_camera.items():
        step = max(1, len(cam_frames) // samples)
        picked = cam_frames[::step][:samples]
        images = [read_image(f.resolve_image(root)) for f in picked]
        if len({im.shape for im in images}) == 1 and len(images) >= 3:
            out[camera] = median_background(images)
    return out


def _sheet_items(
    frames: list[Any], out: Path, tiles: int, seed: int, read_image: Any, item: Any
) -> list[Any]:
    """Up to ``tiles`` masks, seeded: rejected ones get up to a third of the tiles."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool = [(f, i) for f in frames for i in f.instances]
    rejected = [p for p in pool if not p[1].extra.get("accepted", True)]
    accepted = [p for p in pool if p[1].extra.get("accepted", True)]
    n_rej = min(len(rejected), tiles // 3)
    pick = [rejected[k] for k in rng.permutation(len(rejected))[:n_rej]]
    pick += [accepted[k] for k in rng.permutation(len(accepted))[: tiles - n_rej]]
    pick.sort(key=lambda p: (p[0].camera_id, p[0].frame_index))
    cache: dict[str, Any] = {}
    items = []
    for frame, inst in pick:
        path = str(frame.resolve_image(out))
        if path not in cache:
            cache = {path: read_image(path)}  # frames come sorted: keep one in memory
        caption = f"{frame.camera_id}:{frame.frame_index} " + (
            inst.extra.get("reject_reason") or "ok"
        )
        box = np.asarray(inst.extra.get("detection_box_xyxy", inst.box_xyxy), dtype=float)
        items.append(
            item(cache[path], inst.mask(), box, caption, bool(inst.extra.get("accepted", True)))
        )
    return items
