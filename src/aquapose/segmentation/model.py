"""Mask R-CNN for fish crops: an architecture registry and ``MaskRCNNSegmentor``.

Architectures (``ARCHITECTURES``; ``build_model`` raises a ``KeyError`` listing them):

- ``maskrcnn_resnet50_fpn_v2`` (``DEFAULT_ARCH``): torchvision's improved Mask R-CNN, box
  and mask predictors replaced for ``num_classes`` (background + fish).
- ``maskrcnn_mobilenet_v3_fpn`` (``LIGHT_ARCH``, for CPU users and the demo) and
  ``maskrcnn_resnet18_fpn``: a MobileNetV3-Large / ResNet-18 body under a 64-channel FPN
  with batch norm, a one-conv RPN head, a 2-FC box head and a 4-conv mask head with batch
  norm, in torchvision's ``MaskRCNN``; they train from scratch on a CPU.

All are sized for crops, not COCO photos: the internal resize is the crop size (no
800-pixel upsampling) and the RPN/RoI settings (``HeadSettings``) keep a few dozen
proposals and at most 20 detections, plenty for crops holding a few fish and several
times faster than torchvision's defaults (``TORCHVISION_DEFAULTS``). ``predict`` pastes
the masks with :func:`paste_masks_exact`, the exact inverse of the mask targets, instead
of torchvision's integer-box pasting (worth ~0.1 mask IoU on thin fish). Every model is
partially supervised (:mod:`aquapose.segmentation.partial_loss`): a training target may
carry ``masks_trusted`` (box-only fish) and ``ignore_boxes`` (regions without loss).

Weights: ``None`` (random), ``"DEFAULT"`` (torchvision's pretrained weights: COCO for the
R50 default, ImageNet backbones for the light presets; loaded through torchvision's own
``Weights.get_state_dict``, i.e. from torch hub's cache ``torch.hub.get_dir()/checkpoints``,
downloaded there when missing; offline, the error names the file, its URL and the folder)
or the path of a checkpoint written by :meth:`MaskRCNNSegmentor.save` or by training.

The background as input (``background_input=True``): for a fixed camera the detector
knows the empty floor. The model then takes 6 channels, the crop's RGB and the crop minus
the same crop of the background (RGB, -1..1, normalised by ``BACKGROUND_DIFF_STD``), so a
faint fish stands out as clearly as a dark one and a wall or stone that is part of the floor
does not. The first convolution gets 3 more input channels (zero-initialised over
pretrained weights). Such a model needs the background of every crop: ``predict`` refuses
to run without it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import (
    MobileNet_V3_Large_Weights,
    ResNet18_Weights,
    mobilenet_v3_large,
    resnet18,
    resnet50,
)
from torchvision.models.detection import MaskRCNN, MaskRCNN_ResNet50_FPN_V2_Weights
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from aquapose.segmentation.io.files import atomic_write_bytes
from aquapose.segmentation.masks import encode_rle
from aquapose.segmentation.partial_loss import partial_supervision
from aquapose.segmentation.types import CropRegion, SegmentationResult
from aquapose.segmentation.weights import load_torchvision_weights

DEFAULT_ARCH = "maskrcnn_resnet50_fpn_v2"
LIGHT_ARCH = "maskrcnn_mobilenet_v3_fpn"
CHECKPOINT_FORMAT = "aquapose.maskrcnn"
CHECKPOINT_VERSION = 1
#: The scale of the frame-minus-background channels: a difference of this much (in 0..1
#: units, ~13 grey levels) is one unit after normalisation.
BACKGROUND_DIFF_STD = 0.05


@dataclass(frozen=True)
class HeadSettings:
    """RPN/RoI settings sized for crops that hold a few fish (torchvision names).

    ``rpn_pre_nms_top_n_*`` are per FPN level; ``rpn_post_nms_top_n_*`` are the
    proposals the box head sees per image; ``box_batch_size_per_image`` the RoIs
    sampled per image in training; ``box_detections_per_img`` the most detections
    (and mask-head runs) per crop.
    """

    rpn_pre_nms_top_n_train: int = 300
    rpn_pre_nms_top_n_test: int = 200
    rpn_post_nms_top_n_train: int = 100
    rpn_post_nms_top_n_test: int = 30
    box_batch_size_per_image: int = 32
    box_detections_per_img: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HeadSettings.{f.name} must be an int >= 1, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSettings:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown HeadSettings keys {sorted(unknown)}")
        return cls(**data)


#: torchvision's MaskRCNN defaults (sized for 800-pixel COCO photos), for comparisons.
TORCHVISION_DEFAULTS = HeadSettings(
    rpn_pre_nms_top_n_train=2000,
    rpn_pre_nms_top_n_test=1000,
    rpn_post_nms_top_n_train=2000,
    rpn_post_nms_top_n_test=1000,
    box_batch_size_per_image=512,
    box_detections_per_img=100,
)


def _maskrcnn_kwargs(crop_size: int, settings: HeadSettings) -> dict[str, Any]:
    return {"min_size": crop_size, "max_size": crop_size, **asdict(settings)}


def _build_resnet50_fpn_v2(
    num_classes: int, pretrained: bool, crop_size: int, settings: HeadSettings
) -> MaskRCNN:
    backbone = _resnet_fpn_extractor(resnet50(weights=None), 5, norm_layer=nn.BatchNorm2d)
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    model = MaskRCNN(
        backbone,
        num_classes=91,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(backbone.out_channels, 3, conv_depth=2),
        box_head=FastRCNNConvFCHead(
            (backbone.out_channels, 7, 7), [256, 256, 256, 256], [1024], norm_layer=nn.BatchNorm2d
        ),
        mask_head=MaskRCNNHeads(
            backbone.out_channels, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d
        ),
        **_maskrcnn_kwargs(crop_size, settings),
    )
    if pretrained:  # COCO weights for the whole network, then new 2-class predictors
        model.load_state_dict(load_torchvision_weights(MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT))
    model.roi_heads.box_predictor = FastRCNNPredictor(1024, num_classes)
    model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
    return model


def _light_maskrcnn(
    body: nn.Module,
    return_layers: dict[str, str],
    in_channels: list[int],
    num_classes: int,
    crop_size: int,
    settings: HeadSettings,
) -> MaskRCNN:
    """A Mask R-CNN sized for CPUs and small crops around a small body.

    A 64-channel FPN (batch norm, which lets it train from scratch), anchors from 16 to
    256 px, a one-conv RPN head, a 2-FC (256) box head and a 4-conv 64-channel mask head
    with batch norm.
    """
    channels = 64
    backbone = BackboneWithFPN(
        body,
        return_layers=return_layers,
        in_channels_list=in_channels,
        out_channels=channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=nn.BatchNorm2d,
    )
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, 3, conv_depth=1),
        box_head=TwoMLPHead(channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        mask_head=MaskRCNNHeads(channels, [channels] * 4, 1, norm_layer=nn.BatchNorm2d),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes),
        **_maskrcnn_kwargs(crop_size, settings),
    )


def _build_resnet18_fpn(
    num_classes: int, pretrained: bool, crop_size: int, settings: HeadSettings
) -> MaskRCNN:
    body = resnet18(weights=None)
    if pretrained:  # ImageNet backbone
        body.load_state_dict(load_torchvision_weights(ResNet18_Weights.DEFAULT))
    return _light_maskrcnn(
        body,
        {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        [64, 128, 256, 512],
        num_classes,
        crop_size,
        settings,
    )


def _build_mobilenet_v3_fpn(
    num_classes: int, pretrained: bool, crop_size: int, settings: HeadSettings
) -> MaskRCNN:
    # torchvision's BN momentum for MobileNetV3 is 0.01: running statistics that lag far
    # behind a short from-scratch training; 0.1 (PyTorch's default) keeps up.
    net = mobilenet_v3_large(
        weights=None, norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.1)
    )
    if pretrained:  # ImageNet backbone
        net.load_state_dict(load_torchvision_weights(MobileNet_V3_Large_Weights.DEFAULT))
    # stages ending at strides 4, 8, 16 and 32 (24, 40, 112 and 960 channels)
    return _light_maskrcnn(
        net.features,
        {"3": "0", "6": "1", "12": "2", "16": "3"},
        [24, 40, 112, 960],
        num_classes,
        crop_size,
        settings,
    )


Builder = Callable[[int, bool, int, HeadSettings], MaskRCNN]

#: name -> builder(num_classes, pretrained, crop_size, settings)
ARCHITECTURES: dict[str, Builder] = {
    DEFAULT_ARCH: _build_resnet50_fpn_v2,
    "maskrcnn_resnet18_fpn": _build_resnet18_fpn,
    "maskrcnn_mobilenet_v3_fpn": _build_mobilenet_v3_fpn,
}


def build_model(
    arch: str = DEFAULT_ARCH,
    *,
    weights: str | Path | None = None,
    num_classes: int = 2,
    crop_size: int = 256,
    settings: HeadSettings | None = None,
    background_input: bool = False,
) -> MaskRCNN:
    """Build a torchvision ``MaskRCNN`` of a registered architecture.

    Args:
        arch: a name in ``ARCHITECTURES``.
        weights: None (random), ``"DEFAULT"`` (torchvision's pretrained weights, from torch
            hub's cache, downloaded when missing; ``WeightsUnavailableError`` offline) or
            a checkpoint path (``MaskRCNNSegmentor.save`` / training output, or a bare
            state dict), loaded with ``torch.load(weights_only=True)``.
        num_classes: including background (2 = background + fish).
        crop_size: side of the square crops the model sees (its internal resize).
        settings: RPN/RoI settings; default ``HeadSettings()``.
        background_input: take 6 channels, RGB and RGB minus the background (module
            docstring).
    """
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; valid names: {', '.join(ARCHITECTURES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an int >= 2 (background + fish), got {num_classes!r}"
        )
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 32:
        raise ValueError(f"crop_size must be an int >= 32, got {crop_size!r}")
    settings = settings or HeadSettings()
    pretrained = isinstance(weights, str) and weights == "DEFAULT"
    # partial supervision: targets may carry masks_trusted / ignore_boxes (partial_loss.py);
    # without them the model trains exactly as torchvision's
    model = partial_supervision(ARCHITECTURES[arch](num_classes, pretrained, crop_size, settings))
    if background_input:
        _take_background(model, zero_init=pretrained)
    if weights is not None and not pretrained:
        checkpoint = read_checkpoint(weights)
        state = checkpoint.get("model", checkpoint)
        if "arch" in checkpoint and checkpoint["arch"] != arch:
            raise ValueError(
                f"{weights}: checkpoint is a {checkpoint['arch']!r} model, not {arch!r}; "
                "use MaskRCNNSegmentor.load(path) to rebuild it as saved"
            )
        if bool(checkpoint.get("background_input", False)) != background_input:
            saved = "with" if checkpoint.get("background_input") else "without"
            raise ValueError(
                f"{weights}: checkpoint is a model {saved} the background as input; train "
                f"from it {saved} backgrounds (--backgrounds)"
            )
        model.load_state_dict(state)
    return model


def _take_background(model: MaskRCNN, zero_init: bool) -> None:
    """Widen the backbone's first convolution from 3 to 6 input channels (RGB, then RGB
    minus background) and extend the input normalisation to match. The new channels'
    weights start at zero over pretrained weights (the network starts as it was trained)."""
    body = model.backbone.body
    parent, name, old = next(
        (mod, child_name, child)
        for mod in body.modules()
        for child_name, child in mod.named_children()
        if isinstance(child, nn.Conv2d)
    )
    if old.in_channels != 3:
        raise ValueError(f"expected a first convolution over 3 channels, got {old.in_channels}")
    new = nn.Conv2d(
        6,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        old.stride,  # type: ignore[arg-type]
        old.padding,  # type: ignore[arg-type]
        bias=old.bias is not None,
    )
    with torch.no_grad():
        new.weight[:, :3] = old.weight
        if zero_init:
            new.weight[:, 3:] = 0.0
        if old.bias is not None:
            new.bias.copy_(old.bias)  # type: ignore[union-attr]
    setattr(parent, name, new)
    model.transform.image_mean = [*model.transform.image_mean, 0.0, 0.0, 0.0]
    model.transform.image_std = [*model.transform.image_std, *[BACKGROUND_DIFF_STD] * 3]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict with ``torch.load(weights_only=True)`` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unreadable/corrupt/unsafe file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, got {type(data).__name__}")
    return data


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class MaskRCNNSegmentor:
    """A Mask R-CNN that segments the fish in square crops.

    Args:
        arch: architecture name (``ARCHITECTURES``).
        weights: None, ``"DEFAULT"`` or a checkpoint path, see :func:`build_model`.
        num_classes: including background.
        crop_size: side of the crops it takes (use the same ``crop_size`` in
            ``compute_crop_region``).
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        settings: RPN/RoI settings (``HeadSettings``).
        background_input: the model also takes the background of each crop (see the
            module docstring); ``predict`` then needs ``backgrounds``.
    """

    def __init__(
        self,
        arch: str = DEFAULT_ARCH,
        weights: str | Path | None = None,
        num_classes: int = 2,
        crop_size: int = 256,
        device: str | torch.device | None = None,
        settings: HeadSettings | None = None,
        background_input: bool = False,
    ) -> None:
        self.arch = arch
        self.background_input = bool(background_input)
        self.num_classes = num_classes
        self.crop_size = crop_size
        self.settings = settings or HeadSettings()
        self.device = _pick_device(device)
        self.model = build_model(
            arch,
            weights=weights,
            num_classes=num_classes,
            crop_size=crop_size,
            settings=self.settings,
            background_input=self.background_input,
        ).to(self.device)
        self.model.eval()
        self.extra: dict[str, Any] = {}

    def __repr__(self) -> str:
        background = ", background_input=True" if self.background_input else ""
        return (
            f"MaskRCNNSegmentor(arch={self.arch!r}, crop_size={self.crop_size}, "
            f"device={str(self.device)!r}{background})"
        )

    def to_tensor(
        self, crop_bgr: np.ndarray, background_bgr: np.ndarray | None = None
    ) -> torch.Tensor:
        """uint8 BGR ``(H, W, 3)`` -> float32 RGB ``[3, H, W]`` in 0..1 on the model's device;
        with the crop's background (same shape), ``[6, H, W]``: RGB, then RGB minus the
        background's RGB."""
        rgb = bgr_to_tensor(crop_bgr, self.device)
        if background_bgr is None:
            return rgb
        return torch.cat([rgb, rgb - bgr_to_tensor(background_bgr, self.device)])

    def _check_crops(
        self, crops: Sequence[np.ndarray], regions: Sequence[CropRegion] | None
    ) -> list[CropRegion]:
        if isinstance(crops, np.ndarray):
            raise TypeError("crops must be a list of (H, W, 3) uint8 arrays, got one array")
        expected = (self.crop_size, self.crop_size, 3)
        for n, crop in enumerate(crops):
            if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.shape != expected:
                got = (
                    f"{crop.dtype} {crop.shape}"
                    if isinstance(crop, np.ndarray)
                    else type(crop).__name__
                )
                raise ValueError(
                    f"crops[{n}] must be a uint8 BGR array of shape {expected} (this model's "
                    f"crop_size; cut it with compute_crop_region(..., crop_size="
                    f"{self.crop_size})), got {got}"
                )
        if regions is None:
            c = self.crop_size
            return [CropRegion(0, 0, c, c, c, crop_size=c) for _ in crops]
        if len(regions) != len(crops):
            raise ValueError(f"got {len(crops)} crops but {len(regions)} regions")
        for n, region in enumerate(regions):
            if not isinstance(region, CropRegion) or region.crop_size != self.crop_size:
                raise ValueError(
                    f"regions[{n}] must be a CropRegion with crop_size={self.crop_size}, "
                    f"got {region!r}"
                )
        return list(regions)

    def predict(
        self,
        crops: Sequence[np.ndarray],
        regions: Sequence[CropRegion] | None = None,
        score_threshold: float = 0.1,
        batch_size: int = 8,
        backgrounds: Sequence[np.ndarray] | None = None,
    ) -> list[list[SegmentationResult]]:
        """Segment the fish in each crop.

        Args:
            crops: uint8 BGR ``(crop_size, crop_size, 3)`` arrays.
            regions: the crop region of each crop (kept on the results for
                ``paste_mask``); default a region equal to the crop itself.
            score_threshold: detections below this confidence are dropped (the mask
                head only runs on the ones above it).
            batch_size: crops per forward pass.
            backgrounds: the same crop of the camera's background for each crop (uint8
                BGR, like the crops); needed by a model with ``background_input``,
                refused by one without.
        Returns:
            One list per crop, highest confidence first; masks (probability >= 0.5) as
            crop-space COCO RLE. Detections whose mask is empty are dropped.
        """
        checked = self._check_crops(crops, regions)
        per_crop = self._check_backgrounds(crops, backgrounds)
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        results: list[list[SegmentationResult]] = []
        model = self.model
        was_training, old_thresh = model.training, model.roi_heads.score_thresh
        model.eval()
        model.roi_heads.score_thresh = score_threshold
        try:
            with torch.inference_mode():
                for start in range(0, len(crops), batch_size):
                    stop = start + batch_size
                    batch = [
                        self.to_tensor(c, b)
                        for c, b in zip(crops[start:stop], per_crop[start:stop], strict=True)
                    ]
                    outputs = _detect(model, batch)
                    for out, region in zip(
                        outputs, checked[start : start + batch_size], strict=True
                    ):
                        results.append(_to_results(out, region))
        finally:
            model.roi_heads.score_thresh = old_thresh
            model.train(was_training)
        return results

    def _check_backgrounds(
        self, crops: Sequence[np.ndarray], backgrounds: Sequence[np.ndarray] | None
    ) -> list[np.ndarray | None]:
        if not self.background_input:
            if backgrounds is not None:
                raise ValueError(
                    "this model was trained without the background as input: pass no backgrounds"
                )
            return [None] * len(crops)
        if backgrounds is None:
            raise ValueError(
                "this model was trained with the background as input: pass the background "
                "crop of every crop (backgrounds=...; segment passes the detector's "
                "background, train/evaluate read --backgrounds)"
            )
        if len(backgrounds) != len(crops):
            raise ValueError(f"got {len(crops)} crops but {len(backgrounds)} backgrounds")
        for n, (crop, background) in enumerate(zip(crops, backgrounds, strict=True)):
            if (
                not isinstance(background, np.ndarray)
                or background.dtype != np.uint8
                or background.shape != crop.shape
            ):
                raise ValueError(
                    f"backgrounds[{n}] must be a uint8 BGR array shaped like its crop "
                    f"{crop.shape}, got {getattr(background, 'shape', type(background).__name__)}"
                )
        return list(backgrounds)

    def checkpoint(self) -> dict[str, Any]:
        """The dict :meth:`save` writes (``torch.load(weights_only=True)``-safe)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "crop_size": self.crop_size,
            "settings": asdict(self.settings),
            "background_input": self.background_input,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            **self.extra,
        }

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write weights + architecture + config atomically; ``extra`` entries are added."""
        buffer = io.BytesIO()
        torch.save({**self.checkpoint(), **extra}, buffer)
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        settings: HeadSettings | None = None,
    ) -> MaskRCNNSegmentor:
        """Rebuild a saved segmentor (architecture, crop size, settings, weights).

        ``settings`` overrides the saved RPN/RoI settings (e.g. ``TORCHVISION_DEFAULTS``).
        """
        data = read_checkpoint(path)
        if data.get("format") != CHECKPOINT_FORMAT or "model" not in data:
            raise ValueError(
                f"{path}: not an AquaPose Mask R-CNN checkpoint (expected format "
                f"{CHECKPOINT_FORMAT!r} with 'arch' and 'model'); to load a bare state dict "
                "use MaskRCNNSegmentor(arch=..., weights=path)"
            )
        seg = cls(
            arch=data["arch"],
            num_classes=int(data["num_classes"]),
            crop_size=int(data["crop_size"]),
            device=device,
            settings=settings or HeadSettings.from_dict(data["settings"]),
            background_input=bool(data.get("background_input", False)),
        )
        seg.model.load_state_dict(data["model"])
        seg.extra = {k: data[k] for k in ("config", "metrics") if k in data}
        return seg


def bgr_to_tensor(image_bgr: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 BGR ``(H, W, 3)`` -> float32 RGB ``[3, H, W]`` in 0..1 on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    return tensor.to(device).permute(2, 0, 1).float().div_(255.0)


def _detect(model: MaskRCNN, batch: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """``model(batch)`` in eval mode, but with masks pasted by :func:`paste_masks_exact`.

    torchvision pastes the ``M x M`` mask of each detection into the image after rounding
    its box to integers with an inclusive-edge convention: up to a pixel of error, which
    caps the mask IoU of thin fish near 0.85 even for a perfect mask head.
    """
    sizes = [tuple(img.shape[-2:]) for img in batch]
    images, _ = model.transform(batch)
    if [tuple(s) for s in images.image_sizes] != sizes:
        raise RuntimeError(f"the model resized {sizes} to {images.image_sizes}: crop size mismatch")
    features = model.backbone(images.tensors)
    proposals, _ = model.rpn(images, features)
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    for det, (height, width) in zip(detections, sizes, strict=True):
        det["masks"] = paste_masks_exact(det["masks"][:, 0], det["boxes"], height, width)[:, None]
    return detections


def paste_masks_exact(
    masks: torch.Tensor, boxes_xyxy: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Paste ``M x M`` RoI masks into ``height x width`` images, the exact inverse of how
    torchvision made their training targets (``roi_align(..., aligned=False)`` over the box).

    Args:
        masks: float ``[N, M, M]`` probabilities.
        boxes_xyxy: float ``[N, 4]`` image-space boxes.
    Returns:
        float ``[N, height, width]`` probabilities (bilinear, 0 outside the box).
    """
    n, m = masks.shape[0], masks.shape[-1]
    if n == 0:
        return masks.new_zeros((0, height, width))
    boxes = boxes_xyxy.to(masks.dtype)
    # roi_align(aligned=False) puts bin j of a box at x0 + (j + 0.5) * bin_w (pixel centres at
    # integers), with the box side clamped to >= 1; invert that for every pixel centre.
    bin_w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0) / m
    bin_h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0) / m
    xs = torch.arange(width, dtype=masks.dtype, device=masks.device)
    ys = torch.arange(height, dtype=masks.dtype, device=masks.device)
    # grid_sample(align_corners=False) maps bin-centre coordinate u to (2u + 1) / M - 1
    gx = 2.0 * (xs[None, :] - boxes[:, 0:1]) / (bin_w[:, None] * m) - 1.0
    gy = 2.0 * (ys[None, :] - boxes[:, 1:2]) / (bin_h[:, None] * m) - 1.0
    grid = torch.stack(
        (gx[:, None, :].expand(n, height, width), gy[:, :, None].expand(n, height, width)), dim=-1
    )
    pasted = torch.nn.functional.grid_sample(
        masks[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return pasted[:, 0]


def _to_results(out: dict[str, torch.Tensor], region: CropRegion) -> list[SegmentationResult]:
    boxes: list[np.ndarray] = list(out["boxes"].float().cpu().numpy().astype(np.float64))
    scores = out["scores"].float().cpu().numpy().tolist()
    masks: list[np.ndarray] = list((out["masks"][:, 0] >= 0.5).cpu().numpy())
    results = []
    for box, score, mask in zip(boxes, scores, masks, strict=True):
        if not mask.any() or box[2] <= box[0] or box[3] <= box[1]:
            continue
        results.append(
            SegmentationResult(
                crop_box_xyxy=box,
                crop_rle=encode_rle(mask),
                confidence=float(np.clip(score, 0.0, 1.0)),
                region=region,
            )
        )
    return results
