"""``aquapose demo``: the whole chain on built-in synthetic data, with a report.

Each stage calls the library function behind a command and prints the ``aquapose``
command that does the same, so the demo doubles as a worked example of the
real-data workflow:

    synth -> detect -> eval-detections -> pseudolabel -> ls export -> train
          -> evaluate (against ground truth) -> segment a held-out clip
          -> simulated review of the first K frames of the review queue -> report

The review stage is a *simulation*: the ground truth stands in for a person. It
takes the first ``review_frames`` tasks of the uncertain-first queue (``ls export
--order uncertain``), writes the Label Studio JSON export a reviewer who painted
each frame's true masks would produce, imports it through ``ls import --onto``
(the reviewed frames replace their pseudo-labels in train.json), and fine-tunes the
demo's model for ``review_epochs`` on those labels and, as the control at equal
cost, on the unreviewed labels; the report's "what review buys" table compares them.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aquapose.report import Figure, Metric, Report, Table, write_report
from aquapose.segmentation.detect import DetectConfig, detect_videos
from aquapose.segmentation.draw import overlay_masks
from aquapose.segmentation.io.coco import read_coco
from aquapose.segmentation.io.files import atomic_write_json, read_image, write_image
from aquapose.segmentation.io.labelstudio import export_to_label_studio
from aquapose.segmentation.io.video import read_frames
from aquapose.segmentation.pseudolabel import pseudolabel_detections
from aquapose.segmentation.segment import SegmentConfig, segment_videos
from aquapose.synth import generate

#: The light architecture the demo trains (``aquapose.segmentation.model.LIGHT_ARCH``;
#: repeated here so that importing the demo does not import torch).
LIGHT_ARCH = "maskrcnn_mobilenet_v3_fpn"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run. ``quick`` shrinks everything for tests (~1-2 minutes).

    Attributes:
        seed: seed of the training clip; the held-out clip uses ``seed + 1``.
        preset: synthetic preset of the training clip.
        detect_every: keep every N-th frame for labelling.
        epochs, crop_size, batch_size, lr, arch: the training run (the light
            architecture from scratch; ~6 minutes on 2 CPU cores).
        heldout_frames: frames of the held-out clip segmented at the end.
        background_input: the model also sees the background the detector wrote for
            each camera (``train --backgrounds``; 6 input channels).
        review_frames: frames of the review queue the simulated reviewer (ground truth
            standing in for a person) labels; 0 skips the review stage.
        review_epochs, review_lr: the two fine-tuning runs of the review stage (from
            the demo's model, on labels with and without the reviewed frames). A
            second training from scratch would cost as much as the first (~5 of the
            demo's 10 minutes); fine-tuning both arms keeps their cost equal and small.
    """

    seed: int = 0
    preset: str = "demo"
    detect_every: int = 10
    arch: str = LIGHT_ARCH
    epochs: int = 14
    crop_size: int = 128
    batch_size: int = 8
    lr: float = 0.04
    heldout_frames: int = 300
    heldout_cameras: int = 1
    segment_every: int = 3
    background_input: bool = True
    review_frames: int = 20
    review_epochs: int = 3
    review_lr: float = 0.01

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        return cls(
            seed=seed,
            preset="tiny",
            detect_every=3,
            epochs=1,
            crop_size=64,
            batch_size=4,
            lr=0.01,
            heldout_frames=60,
            segment_every=5,
            review_frames=3,
            review_epochs=1,
        )


def _say(args: list[object], log: Callable[[str], None]) -> None:
    """Print the ``aquapose`` command that does what the next stage does."""
    log("$ aquapose " + " ".join(shlex.quote(str(a)) for a in args))


def _gt_for_frames(frames_json: Path, gt_paths: list[Path], out_path: Path) -> Path:
    """Ground truth for the frames of ``frames_json`` (joined on camera_id, frame_index).

    The result keeps ``frames_json``'s image paths (rebased to ``out_path``'s folder),
    so a model can be evaluated on exactly those frames against the *true* masks.
    """
    import os

    from aquapose.segmentation.io.coco import write_coco
    from aquapose.segmentation.types import AnnotatedFrame

    truth = {(f.camera_id, f.frame_index): f for p in gt_paths for f in read_coco(p)}
    frames = []
    for frame in read_coco(frames_json):
        gt = truth.get((frame.camera_id, frame.frame_index))
        if gt is None or frame.extra.get("negative"):
            continue  # negative crops have no ground-truth frame of their own size
        image = Path(os.path.relpath(frame.resolve_image(frames_json.parent), out_path.parent))
        frames.append(
            AnnotatedFrame(
                image_id=frame.image_id,
                image_path=image.as_posix(),
                width=gt.width,
                height=gt.height,
                camera_id=gt.camera_id,
                frame_index=gt.frame_index,
                video=gt.video,
                instances=gt.instances,
            )
        )
    if not frames:
        raise ValueError(f"{frames_json}: no frame has ground truth in {gt_paths}")
    return write_coco(frames, out_path)


def _heldout_figures(
    results_json: Path, gt_json: Path, video: Path, out_dir: Path, n: int = 4
) -> tuple[list[Figure], list[Figure], list[float]]:
    """Overlays of typical and worst held-out frames (ground truth vs segment results)."""
    from aquapose.segmentation.evaluation import image_mask_iou

    truth = {f.frame_index: f for f in read_coco(gt_json)}
    scored = []
    for frame in read_coco(results_json):
        gt = truth.get(frame.frame_index)
        if gt is None:
            continue
        gt_rles = [i.rle for i in gt.instances if i.rle is not None]
        pred_rles = [i.rle for i in frame.instances if i.rle is not None]
        scored.append((image_mask_iou(gt_rles, pred_rles), frame.frame_index, gt, frame))
    if not scored:
        return [], [], []
    scored.sort(key=lambda s: s[0])
    worst = scored[:n]
    # Typical examples: the median to the best of the frames that hold fish (an empty
    # frame scores 1.0 and shows nothing).
    with_fish = [s for s in scored if s[2].instances] or scored
    spread = [with_fish[int(i)] for i in np.linspace(len(with_fish) // 2, len(with_fish) - 1, n)]
    images = read_frames(video, {s[1] for s in worst + spread})

    def figure(entry: tuple[float, int, Any, Any], kind: str) -> Figure:
        iou, frame_index, gt, pred = entry
        drawn = overlay_masks(
            images[frame_index],
            [i.mask() for i in gt.instances if i.rle is not None],
            [i.mask() for i in pred.instances if i.rle is not None],
        )
        name = f"{kind}_{frame_index:06d}.png"
        write_image(out_dir / name, drawn)
        caption = f"frame {frame_index}: {len(gt.instances)} fish, {len(pred.instances)} found, IoU {iou:.2f}"
        return Figure(f"{gt.camera_id} #{frame_index}", name, caption)

    typical = [figure(s, "overlay") for s in spread if s[1] in images]
    failures = [figure(s, "worst") for s in worst if s[1] in images]
    return typical, failures, [s[0] for s in scored]


def run_demo(
    out_dir: str | Path, config: DemoConfig | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the whole chain into ``out_dir``; returns the key numbers (also in summary.json)."""
    cfg = config or DemoConfig()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    metrics: list[Metric] = []
    tables: list[Table] = []
    stage_count = 9 if cfg.review_frames > 0 else 8

    def stage(number: int, name: str) -> Callable[[], None]:
        log(f"\n[{number}/{stage_count}] {name}")
        start = time.perf_counter()

        def done() -> None:
            timings[name] = time.perf_counter() - start

        return done

    done = stage(1, "synthesise a multi-camera clip")
    videos, gt_paths = _synth_stage(out / "data", cfg, log)
    done()

    done = stage(2, "detect fish (MOG2)")
    det_metrics, det_table = _detect_stage(videos, gt_paths, out / "detect", cfg, log)
    metrics += det_metrics
    tables.append(det_table)
    done()

    done = stage(3, "pseudo-label masks (classical backend)")
    labels = out / "labels"
    metrics.append(_label_stage(out / "detect", labels, gt_paths, log))
    done()

    # 4. Label Studio review package (files only)
    done = stage(4, "export Label Studio tasks for review")
    _say(
        ["ls", "export", labels / "train.json", "--out", out / "labelstudio"]
        + ["--order", "uncertain"],
        log,
    )
    ls_export = export_to_label_studio(
        labels / "train.json", out / "labelstudio", order="uncertain"
    )
    done()

    done = stage(5, f"train {cfg.arch} ({cfg.epochs} epochs, {cfg.crop_size}px crops)")
    run = out / "run"
    _train_stage(labels, run, cfg, log)
    done()

    done = stage(6, "evaluate the model against ground truth")
    metrics += _evaluate_stage(labels, gt_paths, run / "best.pt", out / "eval")
    done()

    done = stage(7, "segment a held-out clip (another seed)")
    figures_dir = out / "report"
    seg_metrics, typical, failures, frame_ious = _segment_stage(
        out, run / "best.pt", figures_dir, cfg, log
    )
    metrics += seg_metrics
    done()

    if cfg.review_frames > 0:
        done = stage(8, f"simulated review of {cfg.review_frames} frames (truth stands in)")
        review_metrics, review_table = _review_stage(
            out, labels, gt_paths, run / "best.pt", ls_export.image_root, cfg, log
        )
        metrics += review_metrics
        tables.append(review_table)
        done()

    done = stage(stage_count, "write the report")
    report = _report(
        cfg, len(videos), run, figures_dir, metrics, tables, typical, failures, timings
    )
    done()
    report_path = write_report(report, figures_dir / "index.html")
    return _write_summary(out, report_path, cfg, metrics, timings, frame_ious)


def _write_summary(
    out: Path,
    report_path: Path,
    cfg: DemoConfig,
    metrics: list[Metric],
    timings: dict[str, float],
    frame_ious: list[float],
) -> dict[str, Any]:
    """Write and return ``out/summary.json``: report path, config, metrics, timings, IoUs."""
    summary = {
        "report": str(report_path),
        "config": asdict(cfg),
        "metrics": [asdict(m) for m in metrics],
        "timings_s": timings,
        "heldout_frame_ious": frame_ious,
    }
    atomic_write_json(out / "summary.json", summary, indent=2)
    return summary


def _synth_stage(
    data: Path, cfg: DemoConfig, log: Callable[[str], None]
) -> tuple[list[Path], list[Path]]:
    """Stage 1: a synthetic clip with exact ground truth; its videos and truth files."""
    manifest = json.loads(Path(generate(data, preset=cfg.preset, seed=cfg.seed)).read_text())
    videos = [data / cam["video"] for cam in manifest["cameras"]]
    gt_paths = [data / cam["ground_truth"] for cam in manifest["cameras"]]
    log(f"  {len(videos)} cameras x {manifest['cameras'][0]['num_frames']} frames in {data}")
    return videos, gt_paths


def _detect_stage(
    videos: list[Path], gt_paths: list[Path], det: Path, cfg: DemoConfig, log: Callable[[str], None]
) -> tuple[list[Metric], Table]:
    """Stage 2: detection and its scores against the ground truth."""
    from aquapose.segmentation.detection_eval import evaluate_detections

    _say(["detect", *videos, "--out", det, "--every", cfg.detect_every], log)
    detect_videos(videos, det, DetectConfig(every=cfg.detect_every))
    det_report = evaluate_detections(det / "detections.json", gt_paths)
    total = det_report.total
    metrics = [
        Metric("detect", "recall", total.recall, 0.95),
        Metric("detect", "precision", total.precision, 0.95),
        Metric("detect", "recall, stationary fish", total.flag_recall("stationary"), 0.95),
        Metric("detect", "recall, low-contrast fish", total.flag_recall("low_contrast"), 0.95),
    ]
    table = Table(
        "Detection per camera",
        [
            "camera",
            "frames",
            "fish",
            "recall",
            "precision",
            "stationary recall",
            "low-contrast recall",
        ],
        [
            [
                c.camera_id,
                c.frames,
                c.gt,
                c.recall,
                c.precision,
                c.flag_recall("stationary"),
                c.flag_recall("low_contrast"),
            ]
            for c in (*det_report.cameras, total)
        ],
    )
    return metrics, table


def _label_stage(
    det: Path, labels: Path, gt_paths: list[Path], log: Callable[[str], None]
) -> Metric:
    """Stage 3: pseudo-labels (weight-free classical backend) and their quality."""
    from aquapose.segmentation.detection_eval import evaluate_detections

    _say(["pseudolabel", det / "detections.json", "--out", labels], log)
    pseudolabel_detections(det / "detections.json", labels)
    accepted = [
        replace(f, instances=tuple(i for i in f.instances if i.extra.get("accepted")))
        for f in read_coco(labels / "pseudolabels.json")
    ]
    label_report = evaluate_detections(accepted, gt_paths, iou_threshold=0.3)
    return Metric(
        "pseudo-label",
        "mean mask IoU of accepted masks vs truth",
        label_report.total.mean_iou,
        0.85,
    )


def _train_stage(labels: Path, run: Path, cfg: DemoConfig, log: Callable[[str], None]) -> None:
    """Stage 5: train the light model on the pseudo-labels into ``run``."""
    from aquapose.segmentation.training import TrainConfig, train

    backgrounds = labels.parent / "detect" / "backgrounds" if cfg.background_input else None
    train_config = TrainConfig(
        train_json=labels / "train.json",
        val_json=labels / "val.json",
        out_dir=run,
        arch=cfg.arch,
        epochs=cfg.epochs,
        crop_size=cfg.crop_size,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        val_every=max(1, cfg.epochs // 2),
        backgrounds=backgrounds,
    )
    _say(
        ["train", "--train", train_config.train_json, "--val", train_config.val_json]
        + ["--out", run, "--arch", cfg.arch, "--epochs", cfg.epochs, "--crop-size", cfg.crop_size]
        + ["--batch-size", cfg.batch_size, "--lr", cfg.lr, "--val-every", train_config.val_every]
        + (["--backgrounds", backgrounds] if backgrounds else []),
        log,
    )
    train(train_config)


def _evaluate_stage(
    labels: Path, gt_paths: list[Path], model_path: Path, eval_dir: Path
) -> list[Metric]:
    """Stage 6: the model against the ground truth of the validation frames."""
    from aquapose.segmentation.evaluation import evaluate
    from aquapose.segmentation.model import MaskRCNNSegmentor

    val_gt = _gt_for_frames(labels / "val.json", gt_paths, eval_dir / "val_truth.json")
    model = MaskRCNNSegmentor.load(model_path)
    # read only by a model trained with the background as input
    model_report = evaluate(model, val_gt, backgrounds=labels.parent / "detect" / "backgrounds")
    return [
        Metric("model", "val mean mask IoU vs truth", model_report.mean_mask_iou, 0.90),
        Metric("model", "COCO segm AP", model_report.segm_ap),
        Metric("model", "COCO segm AP50", model_report.segm_ap50),
    ]


def _segment_stage(
    out: Path, model_path: Path, figures_dir: Path, cfg: DemoConfig, log: Callable[[str], None]
) -> tuple[list[Metric], list[Figure], list[Figure], list[float]]:
    """Stage 7: segment a held-out clip (another seed); its scores, overlays and IoUs."""
    from aquapose.segmentation.detection_eval import evaluate_detections
    from aquapose.segmentation.model import MaskRCNNSegmentor

    heldout = out / "heldout"
    held_manifest = json.loads(
        Path(
            generate(
                heldout,
                preset=cfg.preset,
                seed=cfg.seed + 1,
                cameras=cfg.heldout_cameras,
                frames=cfg.heldout_frames,
            )
        ).read_text()
    )
    held_videos = [heldout / cam["video"] for cam in held_manifest["cameras"]]
    held_gt = [heldout / cam["ground_truth"] for cam in held_manifest["cameras"]]
    seg_dir = out / "segment"
    _say(
        [
            "segment",
            *held_videos,
            "--model",
            model_path,
            "--out",
            seg_dir,
            "--every",
            cfg.segment_every,
        ],
        log,
    )
    segment_videos(
        held_videos,
        MaskRCNNSegmentor.load(model_path),
        seg_dir,
        SegmentConfig(every=cfg.segment_every),
    )
    seg_report = evaluate_detections(seg_dir / "results.json", held_gt, iou_threshold=0.5)
    seg_total = seg_report.total
    static = sum(f.extra.get("static_dropped", 0) for f in read_coco(seg_dir / "results.json"))
    metrics = [
        Metric("segment", "recall (mask IoU >= 0.5)", seg_total.recall, 0.90),
        Metric("segment", "recall, low-contrast fish", seg_total.flag_recall("low_contrast"), 0.80),
        Metric("segment", "recall, touching fish", seg_total.flag_recall("touching"), 0.80),
        Metric("segment", "recall, stationary fish", seg_total.flag_recall("stationary"), 0.90),
        Metric("segment", "precision", seg_total.precision, 0.95),
        Metric("segment", "mean mask IoU of matched fish", seg_total.mean_iou, 0.85),
        Metric("segment", "masks dropped as static structures", float(static), fmt="{:.0f}"),
    ]
    typical, failures, frame_ious = _heldout_figures(
        seg_dir / "results.json", held_gt[0], held_videos[0], figures_dir
    )
    return metrics, typical, failures, frame_ious


def simulate_review(tasks_json: Path, truth_paths: list[Path], k: int, out_json: Path) -> int:
    """The simulated reviewer: ground truth stands in for a person (a demo device, not
    a review). Writes ``out_json``, the Label Studio JSON export of a project that
    imported ``tasks_json`` (task ids 1, 2, ... in file order) after a reviewer went
    through the first ``k`` tasks that have a ground-truth frame, painting each frame's
    true masks (a true mask that overlaps a prediction keeps its region, as a
    correction would); the other tasks stay unannotated. Returns the frames reviewed.
    """
    from aquapose.segmentation.io.files import read_json
    from aquapose.segmentation.io.labelstudio import exported_task

    truth = {(f.camera_id, f.frame_index): f for p in truth_paths for f in read_coco(p)}
    exported, reviewed = [], 0
    for n, task in enumerate(read_json(tasks_json), 1):
        data = task["data"]
        gt = truth.get((data["camera_id"], data["frame_index"]))
        masks = None
        if (
            reviewed < k
            and gt is not None
            and (gt.width, gt.height) == (data["width"], data["height"])
        ):
            masks = [inst.mask() for inst in gt.instances if inst.rle is not None]
            reviewed += 1  # negative crops (another size) have no true frame: skipped
        exported.append(exported_task(task, masks, task_id=n))
    atomic_write_json(out_json, exported)
    return reviewed


def _review_stage(
    out: Path,
    labels: Path,
    gt_paths: list[Path],
    model_path: Path,
    image_root: Path,
    cfg: DemoConfig,
    log: Callable[[str], None],
) -> tuple[list[Metric], Table]:
    """Stage 8: simulated review of the queue's first frames, then what it buys: the
    demo's model fine-tuned on labels with and without the reviewed frames, each scored
    on the validation frames' truth and on the held-out clip."""
    from aquapose.segmentation.io.labelstudio import import_from_label_studio
    from aquapose.segmentation.labels import write_reviewed

    review = out / "review"
    export_json = review / "project-export.json"
    reviewed = simulate_review(
        out / "labelstudio" / "tasks.json", gt_paths, cfg.review_frames, export_json
    )
    log(
        f"  simulated reviewer (ground truth stands in for a person): the first {reviewed} "
        "frames of the review queue, written as Label Studio's JSON export"
    )
    train_json = review / "train.json"
    _say(
        ["ls", "import", export_json, "--out", train_json, "--image-root", image_root]
        + ["--onto", labels / "train.json"],
        log,
    )
    imported = import_from_label_studio(export_json, image_root=image_root)
    merged = write_reviewed(labels / "train.json", imported.frames, image_root, train_json)
    log(f"  {imported.summary()}; {merged.replaced} pseudo-labelled frames replaced")
    arms = [(0, labels / "train.json"), (reviewed, train_json)]
    rows: list[list[object]] = []
    metrics: list[Metric] = []
    for count, arm_train in arms:
        start = time.perf_counter()
        row = _fine_tune_and_score(out, labels, gt_paths, model_path, arm_train, count, cfg, log)
        rows.append([f"{count} reviewed", *row, round(time.perf_counter() - start, 1)])
        name = f"{count} reviewed frames"
        metrics += [
            Metric("review", f"val mask IoU vs truth, {name}", row[0]),
            Metric("review", f"segment recall, {name}", row[1]),
        ]
    headers = ["labels", "val mask IoU vs truth", "segment recall", "precision"]
    headers += ["matched mask IoU", "low-contrast recall", "touching recall", "seconds"]
    title = (
        f"What review buys: the demo's model fine-tuned {cfg.review_epochs} epochs on the "
        f"pseudo-labels with 0 and with {reviewed} frames reviewed (simulated reviewer: "
        "ground truth stands in for a person)"
    )
    for line in rows:
        cells = (f"{h} {v:.3f}" for h, v in zip(headers[1:], line[1:], strict=True))
        log(f"  {line[0]}: " + ", ".join(cells))
    return metrics, Table(title, headers, rows)


def _fine_tune_and_score(
    out: Path,
    labels: Path,
    gt_paths: list[Path],
    model_path: Path,
    train_json: Path,
    reviewed: int,
    cfg: DemoConfig,
    log: Callable[[str], None],
) -> list[float]:
    """One arm of the review stage: fine-tune, then val IoU vs truth and held-out scores."""
    from aquapose.segmentation.detection_eval import evaluate_detections
    from aquapose.segmentation.evaluation import evaluate
    from aquapose.segmentation.model import MaskRCNNSegmentor
    from aquapose.segmentation.training import TrainConfig, train

    run = out / "review" / f"run_{reviewed}"
    backgrounds = out / "detect" / "backgrounds" if cfg.background_input else None
    config = TrainConfig(
        train_json=train_json,
        val_json=labels / "val.json",
        out_dir=run,
        arch=cfg.arch,
        weights=str(model_path),
        epochs=cfg.review_epochs,
        crop_size=cfg.crop_size,
        batch_size=cfg.batch_size,
        lr=cfg.review_lr,
        val_every=cfg.review_epochs,
        backgrounds=backgrounds,
        progress=False,
    )
    _say(
        ["train", "--train", train_json, "--val", config.val_json, "--out", run]
        + ["--arch", cfg.arch, "--weights", model_path, "--epochs", cfg.review_epochs]
        + ["--crop-size", cfg.crop_size, "--batch-size", cfg.batch_size, "--lr", cfg.review_lr]
        + ["--val-every", cfg.review_epochs]
        + (["--backgrounds", backgrounds] if backgrounds else []),
        log,
    )
    train(config)
    model = MaskRCNNSegmentor.load(run / "best.pt")
    val_gt = out / "eval" / "val_truth.json"
    if not val_gt.is_file():
        _gt_for_frames(labels / "val.json", gt_paths, val_gt)
    val_iou = evaluate(model, val_gt, backgrounds=backgrounds).mean_mask_iou
    heldout = out / "heldout"
    cameras = json.loads((heldout / "manifest.json").read_text())["cameras"]
    videos = [heldout / cam["video"] for cam in cameras]
    seg_dir = out / "review" / f"segment_{reviewed}"
    _say(
        ["segment", *videos, "--model", run / "best.pt", "--out", seg_dir]
        + ["--every", cfg.segment_every],
        log,
    )
    segment_videos(videos, model, seg_dir, SegmentConfig(every=cfg.segment_every))
    total = evaluate_detections(
        seg_dir / "results.json",
        [heldout / cam["ground_truth"] for cam in cameras],
        iou_threshold=0.5,
    ).total
    return [
        val_iou,
        total.recall,
        total.precision,
        total.mean_iou,
        total.flag_recall("low_contrast"),
        total.flag_recall("touching"),
    ]


def _report(
    cfg: DemoConfig,
    num_cameras: int,
    run: Path,
    figures_dir: Path,
    metrics: list[Metric],
    tables: list[Table],
    typical: list[Figure],
    failures: list[Figure],
    timings: dict[str, float],
) -> Report:
    """Stage 8: the report (copies the training curves next to it)."""
    curves = []
    if (run / "curves.png").exists():
        write_image(figures_dir / "curves.png", read_image(run / "curves.png"))
        curves.append(
            Figure("training", "curves.png", "loss and validation mean mask IoU per epoch")
        )
    return Report(
        title="AquaPose demo report",
        summary=(
            f"synthetic '{cfg.preset}' clip, seed {cfg.seed}: {num_cameras} cameras; held-out clip seed "
            f"{cfg.seed + 1}; model {cfg.arch}, {cfg.epochs} epochs on {cfg.crop_size}px crops"
        ),
        metrics=metrics,
        tables=tables,
        overlays=typical,
        curves=curves,
        failures=failures,
        timings_s=timings,
    )
