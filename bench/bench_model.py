"""Mask R-CNN speed: our crop-sized ``predict``/training against naive torchvision use.

Rows (each ratio measured in the same run, on the same crops, same random weights):

- ``predict`` crops/s of the R50-FPN-v2 default and the light preset, against torchvision's
  ``maskrcnn_resnet50_fpn_v2(weights=None, num_classes=2)`` with its default settings
  (resize to 800 px, 1000 proposals, 100 detections) run one crop at a time (aim >= 10x);
- the same ``predict`` against its own backbone + FPN alone, the floor no head tuning can
  beat (aim: within 2x, ratio >= 0.5). Random weights score every proposal ~0.5, so
  ``predict`` runs the mask head on the full detection cap (20): the worst case. The
  ``typical`` rows cap detections at 3 per crop, what a trained model returns on crops
  holding a few fish;
- training images/s of our loop (crop-sized settings) against a plain torchvision
  training loop with default settings on the same batches (aim >= 2x).

Crops come from a small synthetic clip (``aquapose.synth``) cut with ``CropDataset``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import BenchRow, timed  # noqa: E402


def _crops_and_batches(folder: Path, crop_size: int, count: int):
    from aquapose.segmentation.dataset import CropDataset
    from aquapose.synth import generate

    generate(
        folder, preset="tiny", seed=0, write_frames=True, width=640, height=480, frames=12, fish=5
    )
    dataset = CropDataset(folder / "cam0_gt.json", crop_size=crop_size, augment=False)
    if len(dataset) < count:
        raise RuntimeError(f"synthetic clip gave {len(dataset)} crops, need {count}")
    samples = [dataset.crop(i) for i in range(count)]
    return [s.image_bgr for s in samples], [dataset[i] for i in range(count)]


def _log(message: str) -> None:
    print(f"[bench_model] {message}", file=sys.stderr, flush=True)


def _predict_rows(arch: str, label: str, crops, naive, quick: bool) -> list[BenchRow]:
    import torch

    from aquapose.segmentation.model import MaskRCNNSegmentor

    torch.manual_seed(0)
    seg = MaskRCNNSegmentor(arch, crop_size=crops[0].shape[0], device="cpu")
    repeat = 1 if quick else 2
    seg.predict(crops[:2])  # warm-up
    ours_s = timed(lambda: seg.predict(crops, batch_size=8), repeat)
    cap = seg.model.roi_heads.detections_per_img
    seg.model.roi_heads.detections_per_img = 3
    typical_s = timed(lambda: seg.predict(crops, batch_size=8), repeat)
    seg.model.roi_heads.detections_per_img = cap
    batch = torch.stack([seg.to_tensor(c) for c in crops])
    backbone = seg.model.backbone.eval()
    normalized = seg.model.transform.normalize(batch)
    with torch.inference_mode():
        backbone(normalized[:2])
    with torch.inference_mode():
        floor_s = timed(
            lambda: [backbone(normalized[i : i + 8]) for i in range(0, len(crops), 8)], repeat
        )
    n = len(crops)
    rows = [
        BenchRow(
            f"predict {label} (20 dets cap)",
            n / ours_s,
            "crops/s",
            "naive tv R50-FPN-v2 1-by-1",
            naive,
        ),
        BenchRow(
            f"predict {label} (20 dets cap)",
            n / ours_s,
            "crops/s",
            f"{label} backbone+FPN only",
            n / floor_s,
        ),
        BenchRow(
            f"predict {label} (typical 3 dets)",
            n / typical_s,
            "crops/s",
            "naive tv R50-FPN-v2 1-by-1",
            naive,
        ),
        BenchRow(
            f"predict {label} (typical 3 dets)",
            n / typical_s,
            "crops/s",
            f"{label} backbone+FPN only",
            n / floor_s,
        ),
    ]
    return rows


def _train_images_per_s(model, batches, steps: int) -> float:
    import torch

    model.train()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9, weight_decay=5e-4
    )

    def step(images, targets):
        loss = sum(model(list(images), list(targets)).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(*batches[0])  # warm-up
    seconds = timed(lambda: [step(*b) for b in batches[1 : 1 + steps]])
    return sum(len(b[0]) for b in batches[1 : 1 + steps]) / seconds


def run(quick: bool = False) -> list[BenchRow]:
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    from aquapose.segmentation.dataset import collate_fn
    from aquapose.segmentation.model import DEFAULT_ARCH, LIGHT_ARCH, build_model

    crop_size = 256
    n_crops = 8 if quick else 16
    naive_n = 2 if quick else 4  # about 5 s per crop on 2 idle cores
    batch_size = 2
    train_steps = 2 if quick else 4
    with tempfile.TemporaryDirectory() as tmp:
        crops, samples = _crops_and_batches(
            Path(tmp), crop_size, max(n_crops, batch_size * (train_steps + 1))
        )
    crops = crops[:n_crops]
    batches = [
        collate_fn(samples[i : i + batch_size])
        for i in range(0, batch_size * (train_steps + 1), batch_size)
    ]

    # naive: torchvision defaults, one crop at a time, same random weights as ours
    torch.manual_seed(0)
    ours_r50 = build_model(DEFAULT_ARCH, crop_size=crop_size)
    naive_model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=2)
    naive_model.load_state_dict(ours_r50.state_dict())
    naive_model.eval()

    def naive_predict(count: int) -> None:
        with torch.no_grad():
            for crop in crops[:count]:
                naive_model(
                    [torch.from_numpy(crop[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255]
                )

    naive_predict(1)  # warm-up
    naive_rate = naive_n / timed(lambda: naive_predict(naive_n))
    _log(f"naive predict {naive_rate:.3f} crops/s")

    rows = _predict_rows(DEFAULT_ARCH, "R50-FPN-v2", crops, naive_rate, quick)
    rows += _predict_rows(LIGHT_ARCH, "light MNv3-FPN", crops, naive_rate, quick)

    _log("predict rows done")
    naive_train = _train_images_per_s(naive_model, batches, train_steps)
    _log(f"naive train {naive_train:.3f} images/s")
    ours_train = _train_images_per_s(ours_r50, batches, train_steps)
    torch.manual_seed(0)
    light_train = _train_images_per_s(
        build_model(LIGHT_ARCH, crop_size=crop_size), batches, train_steps
    )
    rows += [
        BenchRow(
            "train R50-FPN-v2 crop settings",
            ours_train,
            "images/s",
            "plain tv R50-FPN-v2 defaults",
            naive_train,
        ),
        BenchRow(
            "train light MNv3-FPN crop settings",
            light_train,
            "images/s",
            "plain tv R50-FPN-v2 defaults",
            naive_train,
        ),
    ]
    return rows


if __name__ == "__main__":
    from _common import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
