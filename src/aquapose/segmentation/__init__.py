"""AquaPose segmentation: detect, pseudo-label, review, train and segment fish.

The public API is flat: import what you need from here. Names are loaded on first
use (module ``__getattr__``), so ``import aquapose.segmentation.detector`` does not
pay for torch; each name lives in the module :data:`_EXPORTS` gives.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it (chain order).
_EXPORTS = {
    # hand-off types and helpers
    "AnnotatedFrame": "types",
    "CropRegion": "types",
    "Detection": "types",
    "Instance": "types",
    "SegmentationResult": "types",
    "compute_crop_region": "crops",
    "extract_crop": "crops",
    "paste_mask": "crops",
    "decode_rle": "masks",
    "encode_rle": "masks",
    "largest_component": "masks",
    "mask_iou": "masks",
    "mask_to_box_xyxy": "masks",
    "window_rle": "masks",
    "Match": "metrics",
    "match_masks": "metrics",
    "CocoFormatError": "io.coco",
    "read_coco": "io.coco",
    "write_coco": "io.coco",
    # 1. detect
    "DetectorConfig": "detector",
    "MOG2Detector": "detector",
    "detect_video": "detector",
    "DetectConfig": "detect",
    "DetectRun": "detect",
    "detect_videos": "detect",
    # 2. pseudo-label
    "ClassicalConfig": "grabcut",
    "SAMPseudoLabeler": "pseudo_labeler",
    "FilterConfig": "labels",
    "filter_mask": "labels",
    "stratified_split": "labels",
    "to_coco_dataset": "labels",
    "PseudolabelConfig": "pseudolabel",
    "PseudolabelRun": "pseudolabel",
    "pseudolabel_detections": "pseudolabel",
    # 3. review
    "ImportReport": "io.labelstudio",
    "LabelStudioFormatError": "io.labelstudio",
    "export_to_label_studio": "io.labelstudio",
    "import_from_label_studio": "io.labelstudio",
    # 4.-5. dataset, model, training, evaluation
    "CropDataset": "dataset",
    "collate_fn": "dataset",
    "MaskRCNNSegmentor": "model",
    "TrainConfig": "training",
    "train": "training",
    "EvalReport": "evaluation",
    "evaluate": "evaluation",
    # 6. segment
    "SegmentConfig": "segment",
    "segment_videos": "segment",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aquapose.segmentation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"aquapose.segmentation.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
