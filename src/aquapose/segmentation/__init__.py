"""AquaPose segmentation: detect, pseudo-label, review, train and segment fish.

The public API is flat: import what you need from here.
"""

from aquapose.segmentation.crops import compute_crop_region, extract_crop, paste_mask
from aquapose.segmentation.dataset import CropDataset, collate_fn  # noqa: E402

# Stage imports (one line per stage, kept in chain order).
# -- stages --
from aquapose.segmentation.detector import DetectorConfig, MOG2Detector, detect_video  # noqa: E402
from aquapose.segmentation.evaluation import EvalReport, evaluate  # noqa: E402
from aquapose.segmentation.io.coco import CocoFormatError, read_coco, write_coco
from aquapose.segmentation.io.labelstudio import (  # noqa: E402
    ImportReport,
    LabelStudioFormatError,
    export_to_label_studio,
    import_from_label_studio,
)
from aquapose.segmentation.labels import (  # noqa: E402
    FilterConfig,
    filter_mask,
    stratified_split,
    to_coco_dataset,
)
from aquapose.segmentation.masks import (
    decode_rle,
    encode_rle,
    largest_component,
    mask_iou,
    mask_to_box_xyxy,
)
from aquapose.segmentation.metrics import Match, match_masks
from aquapose.segmentation.model import MaskRCNNSegmentor  # noqa: E402
from aquapose.segmentation.pseudo_labeler import ClassicalConfig, SAMPseudoLabeler  # noqa: E402
from aquapose.segmentation.training import TrainConfig, train  # noqa: E402
from aquapose.segmentation.types import (
    AnnotatedFrame,
    CropRegion,
    Detection,
    Instance,
    SegmentationResult,
)

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
    "DetectorConfig",
    "MOG2Detector",
    "detect_video",
    "ClassicalConfig",
    "FilterConfig",
    "SAMPseudoLabeler",
    "filter_mask",
    "stratified_split",
    "to_coco_dataset",
    "ImportReport",
    "LabelStudioFormatError",
    "export_to_label_studio",
    "import_from_label_studio",
    "CropDataset",
    "collate_fn",
    "MaskRCNNSegmentor",
    "TrainConfig",
    "train",
    "EvalReport",
    "evaluate",
]
