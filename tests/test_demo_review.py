"""The demo's simulated reviewer: ground truth through the real Label Studio import path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aquapose.demo import simulate_review
from aquapose.segmentation.io.coco import write_coco
from aquapose.segmentation.io.files import write_image
from aquapose.segmentation.io.labelstudio import export_to_label_studio, import_from_label_studio
from aquapose.segmentation.masks import encode_rle, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance


def _inst(mask: np.ndarray, **extra: object) -> Instance:
    return Instance(mask_to_box_xyxy(mask), encode_rle(mask), score=0.95, extra=dict(extra))


def _rect(top: int, left: int, height: int, width: int, shape=(30, 40)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_simulated_review_brings_the_true_masks_of_the_queue_head_through_import(
    tmp_path: Path,
) -> None:
    # pseudo-labels: frame 0 clean, frame 1 with a rejected fish, frame 2 with two;
    # a negative crop (another size, no true frame of its own) last
    frames, truth = [], []
    for n in range(3):
        write_image(tmp_path / "frames" / f"{n}.png", np.zeros((30, 40, 3), np.uint8))
        rejected = {"rejected_boxes_xyxy": [[0, 0, 5, 5]] * n} if n else {}
        pseudo = (_inst(_rect(5, 5, 6, 12)),)
        frames.append(
            AnnotatedFrame(n + 1, f"frames/{n}.png", 40, 30, "c", n, "v", pseudo, rejected)
        )
        true = (_inst(_rect(4, 4, 8, 14)), *(_inst(_rect(15 + 5 * k, 20, 4, 10)) for k in range(n)))
        truth.append(AnnotatedFrame(n + 1, f"{n}.png", 40, 30, "c", n, "v", true))
    write_image(tmp_path / "frames" / "neg.png", np.zeros((16, 16, 3), np.uint8))
    negative = {"negative": True, "rejected_boxes_xyxy": [[0, 0, 5, 5]] * 5}  # first in queue
    frames.append(AnnotatedFrame(9, "frames/neg.png", 16, 16, "c", 1, "v", (), negative))
    export = export_to_label_studio(
        write_coco(frames, tmp_path / "train.json"), tmp_path / "ls", order="uncertain"
    )
    truth_json = write_coco(truth, tmp_path / "truth" / "gt.json")

    out = tmp_path / "review" / "export.json"
    assert simulate_review(export.tasks_json, [truth_json], 2, out) == 2
    exported = json.loads(out.read_text())
    assert [t["id"] for t in exported] == [1, 2, 3, 4]  # Label Studio's ids, queue order
    report = import_from_label_studio(out, image_root=export.image_root)
    assert (report.imported, report.unreviewed) == (2, 2)  # the crop is skipped, not reviewed
    assert [f.frame_index for f in report.frames] == [2, 1]  # the two least trusted frames
    for frame in report.frames:
        expected = truth[frame.frame_index].instances
        assert len(frame.instances) == len(expected)
        for got, want in zip(frame.instances, expected, strict=True):
            assert np.array_equal(got.mask(), want.mask())
        assert "rejected_boxes_xyxy" not in frame.extra
