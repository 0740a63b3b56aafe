"""AquaPose segmentation: detect, pseudo-label, review, train and segment fish.

The public API is flat: import what you need from here.
"""

from aquapose.segmentation.crops import compute_crop_region, extract_crop, paste_mask
from aquapose.segmentation.io.coco import CocoFormatError, read_coco, write_coco
from aquapose.segmentation.masks import (
    decode_rle,
    encode_rle,
    largest_component,
    mask_iou,
    mask_to_box_xyxy,
)
from aquapose.segmentation.metrics import Match, match_masks
from aquapose.segmentation.types import (
    AnnotatedFrame,
    CropRegion,
    Detection,
    Instance,
    SegmentationResult,
)

# Stage imports (one line per stage, kept in chain order).
# -- stages --

__all__ = [
    "AnnotatedFrame",
    "CocoFormatError",
    "CropRegion",
    "Detection",
    "Instance",
    "Match",
    "SegmentationResult",
    "compute_crop_region",
    "decode_rle",
    "encode_rle",
    "extract_crop",
    "largest_component",
    "mask_iou",
    "mask_to_box_xyxy",
    "match_masks",
    "paste_mask",
    "read_coco",
    "write_coco",
    # -- stage names --
]
