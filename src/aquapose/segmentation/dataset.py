"""Crops around annotated fish, in torchvision's detection format, with augmentation.

One sample per annotated fish (a square crop centred on it, see
:func:`~aquapose.segmentation.crops.compute_crop_region`) plus one per image without
fish (a random window of it, a *negative*). Every other fish whose visible part in the
window has at least ``min_visible_area`` crop pixels is a target too, clipped to the
crop. A sample is ``(image, target)``:

- ``image``: float32 ``[3, H, W]`` RGB in ``0..1`` (``H = W = crop_size``);
- ``target``: ``boxes`` float32 ``[N, 4]`` crop-space ``xyxy`` (tight around the
  masks), ``labels`` int64 ``[N]`` (1 = fish), ``masks`` uint8 ``[N, H, W]``,
  ``image_id`` int (the sample index). Negatives have ``N = 0`` and are kept: the
  model must learn to say "no fish".

Partial labels: a fish without a mask (box-only annotation) or whose annotation says
``"mask_trusted": false`` is a target for the box and class heads only, and an image field
``ignore_regions_xyxy`` (frame-space boxes, e.g. a blob holding several fish) marks regions
without loss. When the data set has either, every target also carries ``masks_trusted``
(bool ``[N]``; a box-only fish's ``masks`` row is its filled box) and ``ignore_boxes``
(float ``[K, 4]``, crop space), which :mod:`aquapose.segmentation.partial_loss` reads;
otherwise the targets are exactly torchvision's.

Augmentation (``augment=True``) uses ``torchvision.transforms.v2`` on ``tv_tensors``
so image, masks and boxes move together: a small random shift of the window,
horizontal/vertical flips, 90-degree rotations and brightness/contrast jitter;
degenerate boxes are dropped after every geometric transform. It is seeded per
sample from ``(seed, epoch, index)``: the same epoch gives the same crops in any
process (DataLoader workers included) and the global torch RNG is left untouched.
Optional copy-paste (:class:`CopyPaste`, ``copy_paste_prob > 0``; off by default) pastes
other frames' fish, with their exact masks and pixels, into the crop first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from aquapose.segmentation.crops import compute_crop_region, extract_crop
from aquapose.segmentation.io.coco import read_coco
from aquapose.segmentation.io.files import read_image
from aquapose.segmentation.masks import decode_rle, mask_to_box_xyxy
from aquapose.segmentation.model import bgr_to_tensor
from aquapose.segmentation.types import AnnotatedFrame, CropRegion, Instance

Target = dict[str, Any]


@dataclass(frozen=True, eq=False)
class CropSample:
    """One un-augmented crop and its ground truth (numpy, for evaluation and inspection).

    Attributes:
        image_bgr: uint8 ``(crop_size, crop_size, 3)`` BGR crop.
        crop_masks: bool ``(N, crop_size, crop_size)`` masks of the fish in the crop.
        region: the crop's window in its frame.
        frame: the annotated frame the crop comes from.
        instance_index: index in ``frame.instances`` of the fish the crop is centred on,
            or -1 for a negative crop.
        crop_boxes_only: float ``(M, 4)`` crop-space ``xyxy`` of the fish without a trusted
            mask (box-only), rounded out to whole pixels and clipped to the crop.
        crop_ignore_xyxy: float ``(K, 4)`` crop-space ignore regions (same rounding).
        background_bgr: uint8 ``(crop_size, crop_size, 3)`` the same crop of the camera's
            background (None when the data set has no backgrounds).
    """

    image_bgr: np.ndarray
    crop_masks: np.ndarray
    region: CropRegion
    frame: AnnotatedFrame
    instance_index: int
    crop_boxes_only: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    crop_ignore_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    background_bgr: np.ndarray | None = None


class RandomRot90(v2.Transform):
    """Rotate image, masks and boxes together by a random multiple of 90 degrees (exact)."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"angle": 90.0 * int(torch.randint(0, 4, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["angle"] == 0.0 or not isinstance(inpt, torch.Tensor):
            return inpt
        return F.rotate(inpt, angle=params["angle"], expand=True)


def _row_tensors(inputs: Any) -> tuple[torch.Tensor, ...]:
    """The per-box tensors ``SanitizeBoundingBoxes`` filters with the boxes: ``labels``,
    and ``kinds`` when the target has it."""
    target = inputs[1] if len(inputs) == 2 else inputs[0][1]
    return tuple(target[k] for k in ("labels", "kinds") if k in target)


def build_augmentation(brightness: float = 0.25, contrast: float = 0.25) -> v2.Compose:
    """The training augmentation: flips, 90-degree rotations, brightness/contrast jitter.

    Takes and returns ``(tv_tensors.Image, {"boxes": BoundingBoxes, "masks": Mask,
    "labels": Tensor, ...})``; ``SanitizeBoundingBoxes`` after every geometric step
    drops degenerate boxes with their masks, labels and (if present) ``kinds``.
    """
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.SanitizeBoundingBoxes(labels_getter=_row_tensors),
            v2.RandomVerticalFlip(p=0.5),
            v2.SanitizeBoundingBoxes(labels_getter=_row_tensors),
            RandomRot90(),
            v2.SanitizeBoundingBoxes(labels_getter=_row_tensors),
            v2.ColorJitter(brightness=brightness, contrast=contrast),
        ]
    )


#: A source of fish to paste: ``() -> (rgb, mask)`` with float32 ``[3, h, w]`` RGB in 0..1 and
#: bool ``[h, w]`` (the fish's tight box), drawn with torch's global RNG.
FishSource = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """float32 ``[N, 4]`` tight xyxy boxes (x1/y1 exclusive) of non-empty ``[N, H, W]`` masks."""
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    for n, mask in enumerate(masks):
        ys = torch.nonzero(mask.any(dim=1)).flatten()
        xs = torch.nonzero(mask.any(dim=0)).flatten()
        boxes[n] = torch.stack([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]).float()
    return boxes


class CopyPaste(v2.Transform):
    """Simple copy-paste (Ghiasi et al., CVPR 2021) of whole fish into a crop.

    With probability ``prob`` a sample gets 1 to ``max_fish`` fish from ``source`` (exact
    masks with their pixels, e.g. other frames' fish), each randomly flipped and rotated by
    a multiple of 90 degrees. With probability ``touch_prob`` a fish is placed against a fish
    already in the crop (touching or overlapping it, the case background subtraction cannot
    split), else anywhere. A pasted fish hides what lies under it: the masks below are cut,
    fish left with fewer than ``min_area`` visible pixels are dropped and every box is
    recomputed as its mask's tight box. With probability ``fade_prob`` a pasted fish is a
    *faded* copy instead: alpha-blended (alpha in ``fade_alpha``) over the crop's floor,
    clear of the other fish, to teach faint, low-contrast fish.

    Takes and returns ``(tv_tensors.Image, {"boxes": BoundingBoxes, "masks": Mask, "labels":
    Tensor, ...})`` like :func:`build_augmentation`; an image ``[2, 3, H, W]`` is a frame and
    its background, and fish are pasted into the frame only. Pasted fish get label 1 and,
    when the target has ``masks_trusted``, a trusted mask; they are never put over an
    untrusted (box-only) fish or an ``ignore_boxes`` region, whose masks cannot be cut. Random numbers
    come from torch's global RNG (seeded per sample by :class:`CropDataset`); with
    ``prob == 0`` none is drawn and the inputs come back untouched.
    """

    def __init__(
        self,
        source: FishSource,
        prob: float = 0.5,
        max_fish: int = 2,
        fade_prob: float = 0.0,
        fade_alpha: tuple[float, float] = (0.25, 0.6),
        touch_prob: float = 0.5,
        min_area: int = 20,
        tries: int = 10,
    ) -> None:
        super().__init__()
        for name, value in (("prob", prob), ("fade_prob", fade_prob), ("touch_prob", touch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CopyPaste {name} must be in [0, 1], got {value}")
        if isinstance(max_fish, bool) or not isinstance(max_fish, int) or max_fish < 1:
            raise ValueError(f"CopyPaste max_fish must be an int >= 1, got {max_fish!r}")
        if not 0.0 < fade_alpha[0] <= fade_alpha[1] <= 1.0:
            raise ValueError(f"CopyPaste fade_alpha must be 0 < low <= high <= 1, got {fade_alpha}")
        self.source = source
        self.prob = float(prob)
        self.max_fish = max_fish
        self.fade_prob = float(fade_prob)
        self.fade_alpha = (float(fade_alpha[0]), float(fade_alpha[1]))
        self.touch_prob = float(touch_prob)
        self.min_area = int(min_area)
        self.tries = int(tries)

    def forward(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) == 2 else inputs[0]
        if self.prob == 0.0 or float(torch.rand(())) >= self.prob:
            return image, target
        masks = target["masks"].as_subclass(torch.Tensor).bool()
        original_areas = masks.flatten(1).sum(dim=1)
        labels = target["labels"]
        height, width = image.shape[-2:]
        trusted = target.get("masks_trusted")
        # where nothing may be pasted: fish without a trusted mask, ignore regions
        blocked = torch.zeros((height, width), dtype=torch.bool)
        boxes = target["boxes"].as_subclass(torch.Tensor)
        keep_out = [boxes[~trusted]] if trusted is not None else []
        if "ignore_boxes" in target:
            keep_out.append(target["ignore_boxes"].as_subclass(torch.Tensor))
        for box in torch.cat(keep_out) if keep_out else []:
            x0, y0 = (int(v) for v in box[:2].floor().clamp(min=0))
            x1, y1 = (int(v) for v in box[2:].ceil())
            blocked[y0:y1, x0:x1] = True
        out = image.as_subclass(torch.Tensor).clone()
        new_masks: list[torch.Tensor] = []
        areas: list[int] = []  # of the pasted fish, whole
        for _ in range(int(torch.randint(1, self.max_fish + 1, ()))):
            rgb, fish = self._random_fish()
            fade = self.fade_prob > 0.0 and float(torch.rand(())) < self.fade_prob
            occupied = masks.any(dim=0) | blocked
            if new_masks:
                occupied |= torch.stack(new_masks).any(dim=0)
            touchable = masks if trusted is None else masks[trusted]
            spot = self._place(fish, touchable, occupied if fade else blocked, touch=not fade)
            if spot is None:
                continue
            y, x = spot
            h, w = fish.shape
            full = torch.zeros((height, width), dtype=torch.bool)
            full[y : y + h, x : x + w] = fish
            region = (out[0] if out.ndim == 4 else out)[:, y : y + h, x : x + w]
            if fade:
                low, high = self.fade_alpha
                alpha = low + (high - low) * float(torch.rand(()))
                blended = alpha * rgb + (1.0 - alpha) * region
                region[:, fish] = blended[:, fish]
            else:
                region[:, fish] = rgb[:, fish]
            masks = masks & ~full  # the pasted fish hides what is under it
            new_masks = [m & ~full for m in new_masks] + [full]
            areas.append(int(fish.sum()))
        if not new_masks:
            return image, target
        areas_before = torch.cat([original_areas, torch.tensor(areas)])
        masks = torch.cat([masks, torch.stack(new_masks)])
        labels = torch.cat([labels, torch.ones(len(new_masks), dtype=labels.dtype)])
        # a fish that lost pixels under a pasted one is dropped when fewer than min_area are
        # left (hidden, or nearly); an empty mask always is
        area = masks.flatten(1).sum(dim=1)
        keep = (area >= self.min_area) | ((area == areas_before) & (area > 0))
        out_target = {**target}
        out_target["masks"] = tv_tensors.Mask(masks[keep].to(torch.uint8))
        out_target["labels"] = labels[keep]
        out_target["boxes"] = tv_tensors.BoundingBoxes(
            _tight_boxes(masks[keep]), format="XYXY", canvas_size=(height, width)
        )
        if trusted is not None:
            out_target["masks_trusted"] = torch.cat(
                [trusted, torch.ones(len(new_masks), dtype=torch.bool)]
            )[keep]
        if isinstance(image, tv_tensors.TVTensor):
            out = tv_tensors.wrap(out, like=image)
        return out, out_target

    def _random_fish(self) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, fish = self.source()
        k = int(torch.randint(0, 4, ()))
        flip = bool(torch.randint(0, 2, ()))
        rgb, fish = torch.rot90(rgb, k, dims=(1, 2)), torch.rot90(fish, k, dims=(0, 1))
        if flip:
            rgb, fish = rgb.flip(2), fish.flip(1)
        return rgb, fish

    def _place(
        self, fish: torch.Tensor, masks: torch.Tensor, forbidden: torch.Tensor, touch: bool
    ) -> tuple[int, int] | None:
        """Top-left ``(y, x)`` of the fish's box, inside the crop, its mask clear of
        ``forbidden`` (with ``touch``, sometimes against one of ``masks``); None when no try
        fits."""
        h, w = fish.shape
        height, width = forbidden.shape
        if h > height or w > width:
            return None
        present = [m for m in masks if m.any()]
        for _ in range(self.tries):
            if touch and present and float(torch.rand(())) < self.touch_prob:
                # against a random fish: its box's centre moved by up to the fish's half sizes
                other = present[int(torch.randint(len(present), ()))]
                ys, xs = torch.nonzero(other, as_tuple=True)
                cy, cx = float(ys.float().mean()), float(xs.float().mean())
                dy, dx = (torch.rand(2) * 2.0 - 1.0).tolist()
                y = round(cy + dy * h * 0.75 - h / 2.0)
                x = round(cx + dx * w * 0.75 - w / 2.0)
                y, x = min(max(y, 0), height - h), min(max(x, 0), width - w)
            else:
                y = int(torch.randint(0, height - h + 1, ()))
                x = int(torch.randint(0, width - w + 1, ()))
            if not (forbidden[y : y + h, x : x + w] & fish).any():
                return y, x
        return None


class CropDataset(torch.utils.data.Dataset):
    """Crops around every annotated fish of a COCO file, plus negative crops.

    Args:
        coco_json: COCO file (``read_coco`` format; masks as RLE or polygons).
        image_root: folder that ``file_name`` is relative to; default the COCO file's folder.
        crop_size: side of the square crops in pixels.
        augment: apply the random shift, flips, rotations and colour jitter.
        seed: seeds the augmentation and the negative windows.
        margin: crop margin around the centred fish (fraction of its longer side).
        max_shift: largest random shift of the window when augmenting, as a fraction of
            the window (never so far that the centred fish leaves the crop).
        min_visible_area: fish with fewer visible pixels in a crop are not targets.
        brightness, contrast: colour jitter strengths when augmenting.
        ignore_boxes_key: image field listing frame-space ``xyxy`` boxes of fish that may
            be unlabelled (``aquapose pseudolabel`` writes the detections it rejected as
            ``rejected_boxes_xyxy``). No crop may overlap one of them (area >=
            ``min_visible_area``), or it would teach the model that a fish is background:
            a fish's window slides off them (the fish stays inside it, at least
            ``min_border`` pixels from its edge); a fish with no such window is skipped,
            and so is an image without fish that has one.
        min_border: see ``ignore_boxes_key``.
        rejected_as: what the ``ignore_boxes_key`` boxes do: ``"avoid"`` (default, above),
            ``"ignore"``: they become ignore regions (no loss inside, see
            ``ignore_regions_key``) and no crop is moved or skipped for them, or ``"box"``:
            they become box-only fish (the box and class heads learn them, the mask head
            does not) with crops of their own.
        ignore_regions_key: image field listing frame-space ``xyxy`` regions where the
            model takes no loss (e.g. a blob holding several fish): they reach the model
            as the target's crop-space ``ignore_boxes`` (see ``partial_loss``).
        cache_mb: decoded frames kept in memory (least recently used dropped first); a
            frame holds several fish, and decoding it is most of a sample's cost.
        copy_paste_prob: when augmenting, the probability that a crop gets fish pasted in
            from the data set's frames (:class:`CopyPaste`: exact masks with their pixels,
            touching or over the crop's fish); 0 (default) = off, the samples are then
            exactly those without it.
        copy_paste_max: at most this many fish pasted into one crop.
        copy_paste_fade_prob: the probability that a pasted fish is a faded copy
            (alpha-blended over the floor, a faint fish).
        backgrounds: folder of each camera's background, ``<camera_id>.png`` (``aquapose
            detect`` writes ``backgrounds/``): samples are then 6-channel images, RGB and
            RGB minus the background (``model.MaskRCNNSegmentor(background_input=True)``),
            augmented alike. None: 3-channel RGB.
    """

    def __init__(
        self,
        coco_json: str | Path,
        image_root: str | Path | None = None,
        crop_size: int = 256,
        augment: bool = False,
        seed: int = 0,
        *,
        margin: float = 0.15,
        max_shift: float = 0.1,
        min_visible_area: int = 20,
        brightness: float = 0.25,
        contrast: float = 0.25,
        ignore_boxes_key: str | None = "rejected_boxes_xyxy",
        min_border: int = 4,
        rejected_as: str = "avoid",
        ignore_regions_key: str | None = "ignore_regions_xyxy",
        cache_mb: float = 512.0,
        copy_paste_prob: float = 0.0,
        copy_paste_max: int = 2,
        copy_paste_fade_prob: float = 0.0,
        backgrounds: str | Path | None = None,
    ) -> None:
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 32:
            raise ValueError(f"crop_size must be an int >= 32, got {crop_size!r}")
        if not 0.0 <= max_shift < 0.5:
            raise ValueError(f"max_shift must be in [0, 0.5), got {max_shift}")
        if min_visible_area < 1:
            raise ValueError(f"min_visible_area must be >= 1, got {min_visible_area}")
        self.coco_json = Path(coco_json)
        self.image_root = Path(image_root) if image_root is not None else self.coco_json.parent
        self.crop_size = crop_size
        self.augment = augment
        self.seed = int(seed)
        self.margin = margin
        self.max_shift = max_shift
        self.min_visible_area = int(min_visible_area)
        self.min_border = int(min_border)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.frames = read_coco(self.coco_json)
        self.backgrounds = Path(backgrounds) if backgrounds is not None else None
        self._background_cache: dict[str, np.ndarray] = {}
        if self.backgrounds is not None and not self.backgrounds.is_dir():
            raise FileNotFoundError(f"backgrounds: {self.backgrounds} is not a folder")
        self.epoch = 0
        self._transform = build_augmentation(brightness, contrast) if augment else None
        # (frame index, instance index or -1 for a negative)
        self.samples: list[tuple[int, int]] = []
        #: per sample, the frame-pixel (dx, dy) moving its window off the ignore boxes
        self._clear_shift: list[np.ndarray] = []
        if rejected_as not in ("avoid", "ignore", "box"):
            raise ValueError(f"rejected_as must be 'avoid', 'ignore' or 'box', got {rejected_as!r}")
        rejected = [self._ignore_boxes(f, ignore_boxes_key) for f in self.frames]
        #: per frame, the regions without loss (frame-space xyxy)
        self._regions = [self._ignore_boxes(f, ignore_regions_key) for f in self.frames]
        if rejected_as == "ignore":
            self._regions = [
                np.concatenate([r, b]) for r, b in zip(self._regions, rejected, strict=True)
            ]
            rejected = [np.zeros((0, 4)) for _ in self.frames]
        elif rejected_as == "box":
            self.frames = [
                _with_box_only_fish(frame, boxes)
                for frame, boxes in zip(self.frames, rejected, strict=True)
            ]
            rejected = [np.zeros((0, 4)) for _ in self.frames]
        #: per frame, the boxes no crop may overlap (frame-space xyxy)
        self._ignore = rejected
        self.num_skipped = 0
        self._index_samples()
        if not self.samples:
            raise ValueError(f"{self.coco_json}: no usable images, nothing to train or evaluate on")
        #: targets carry ``masks_trusted`` and ``ignore_boxes`` (the data set has box-only
        #: fish or ignore regions); otherwise they are torchvision's plain targets
        self.partial = any(len(r) for r in self._regions) or any(
            not _mask_trusted(inst) for frame in self.frames for inst in frame.instances
        )
        #: (frame index, instance index) of every fish with a trusted mask, to paste
        self._paste_sources = [
            (f_idx, i_idx)
            for f_idx, frame in enumerate(self.frames)
            for i_idx, inst in enumerate(frame.instances)
            if _mask_trusted(inst)
        ]
        self._copy_paste = (
            CopyPaste(
                self._random_fish,
                prob=copy_paste_prob,
                max_fish=copy_paste_max,
                fade_prob=copy_paste_fade_prob,
                min_area=self.min_visible_area,
            )
            if augment and copy_paste_prob > 0.0 and self._paste_sources
            else None
        )

    def _index_samples(self) -> None:
        """One sample per fish and per image without fish, each with the shift that moves
        its window off the ignore boxes; those that cannot move off are skipped (counted)."""
        for f_idx, frame in enumerate(self.frames):
            ignore = self._ignore[f_idx]
            if not frame.instances:
                if ignore.size:
                    self.num_skipped += 1
                else:
                    self.samples.append((f_idx, -1))
                    self._clear_shift.append(np.zeros(2))
                continue
            for i_idx, inst in enumerate(frame.instances):
                shift = self._find_clear_shift(frame, inst.box_xyxy, ignore)
                if shift is None:
                    self.num_skipped += 1
                else:
                    self.samples.append((f_idx, i_idx))
                    self._clear_shift.append(shift)

    def _random_fish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A random fish of the data set: float32 RGB ``[3, h, w]`` and bool mask ``[h, w]``
        over its tight box (drawn with torch's RNG; a :data:`FishSource`)."""
        f_idx, i_idx = self._paste_sources[int(torch.randint(len(self._paste_sources), ()))]
        mask = decode_rle(self.frames[f_idx].instances[i_idx].rle)  # type: ignore[arg-type]
        x0, y0, x1, y1 = (int(v) for v in mask_to_box_xyxy(mask))
        patch = cv2.cvtColor(self._image(f_idx)[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
        rgb = torch.from_numpy(patch).permute(2, 0, 1).float().div_(255.0)
        return rgb, torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1]))

    def _ignore_boxes(self, frame: AnnotatedFrame, key: str | None) -> np.ndarray:
        boxes = np.asarray(frame.extra.get(key) or [] if key else [], dtype=np.float64)
        if boxes.size == 0:
            return np.zeros((0, 4))
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"{self.coco_json}: image {frame.image_id}: '{key}' must be a list of "
                f"[x0, y0, x1, y1] boxes, got shape {boxes.shape}"
            )
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[areas >= self.min_visible_area]

    def _window_of(self, frame: AnnotatedFrame, box: np.ndarray, shift: np.ndarray) -> CropRegion:
        """The crop region of ``box`` with its centre moved by ``shift`` (frame pixels)."""
        moved = np.clip(box + np.tile(shift, 2), 0.0, [frame.width, frame.height] * 2)
        if moved[2] - moved[0] < 1.0 or moved[3] - moved[1] < 1.0:
            moved = box
        return compute_crop_region(moved, (frame.width, frame.height), self.crop_size, self.margin)

    def _fits(self, region: CropRegion, box: np.ndarray, ignore: np.ndarray) -> bool:
        """Whether ``region`` holds all of ``box`` and overlaps none of ``ignore``."""
        w = region.box_xyxy
        if box[0] < w[0] or box[1] < w[1] or box[2] > w[2] or box[3] > w[3]:
            return False
        hits = (ignore[:, 0] < w[2]) & (ignore[:, 2] > w[0])
        hits &= (ignore[:, 1] < w[3]) & (ignore[:, 3] > w[1])
        return not bool(hits.any())

    def _find_clear_shift(
        self, frame: AnnotatedFrame, box: np.ndarray, ignore: np.ndarray, step: float = 4.0
    ) -> np.ndarray | None:
        """The smallest window shift (dx, dy) that clears every ignore box, or None."""
        centred = self._window_of(frame, box, np.zeros(2))
        if not ignore.size or self._fits(centred, box, ignore):
            return np.zeros(2)
        reach = (centred.size - (box[2:] - box[:2])) / 2.0 - self.min_border
        axes = [np.arange(-r, r + 1e-9, step) if r > 0 else np.zeros(1) for r in reach]
        grid = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
        for shift in grid[np.argsort(np.hypot(grid[:, 0], grid[:, 1]), kind="stable")]:
            if self._fits(self._window_of(frame, box, shift), box, ignore):
                return shift
        return None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_negatives(self) -> int:
        """Number of negative (no-fish) samples."""
        return sum(1 for _, i in self.samples if i < 0)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation used for plain integer keys (see ``__getitem__``)."""
        self.epoch = int(epoch)

    def _region(self, index: int, rng: np.random.Generator, shift: bool) -> CropRegion:
        f_idx, i_idx = self.samples[index]
        frame = self.frames[f_idx]
        size_wh = (frame.width, frame.height)
        if i_idx < 0:  # negative: a random window
            x = rng.uniform(0, max(frame.width - self.crop_size, 0))
            y = rng.uniform(0, max(frame.height - self.crop_size, 0))
            window = (
                x,
                y,
                x + min(self.crop_size, frame.width),
                y + min(self.crop_size, frame.height),
            )
            return compute_crop_region(window, size_wh, self.crop_size, margin=0.0)
        box = frame.instances[i_idx].box_xyxy
        base = self._clear_shift[index]
        region = self._window_of(frame, box, base)
        if shift and self.max_shift > 0.0:
            slack = (region.size - max(box[2] - box[0], box[3] - box[1])) / 2.0
            limit = max(0.0, min(self.max_shift * region.size, slack))
            ignore = self._ignore[f_idx]
            for _ in range(4):  # a shift that keeps the window off the ignore boxes
                moved = self._window_of(frame, box, base + rng.uniform(-limit, limit, size=2))
                if not ignore.size or self._fits(moved, box, ignore):
                    return moved
        return region

    def _load(self, index: int, rng: np.random.Generator, shift: bool) -> CropSample:
        f_idx, i_idx = self.samples[index]
        frame = self.frames[f_idx]
        region = self._region(index, rng, shift)
        image = self._image(f_idx)
        if image.shape[:2] != (frame.height, frame.width):
            raise ValueError(
                f"{frame.resolve_image(self.image_root)}: image is {image.shape[1]}x"
                f"{image.shape[0]}, but {self.coco_json} says {frame.width}x{frame.height}"
            )
        crop_bgr = extract_crop(image, region)
        background = self._background(f_idx)
        crop_background = extract_crop(background, region) if background is not None else None
        window = region.box_xyxy
        masks: list[np.ndarray] = []
        boxes_only: list[np.ndarray] = []
        for inst in frame.instances:
            box = inst.box_xyxy
            if (
                box[0] >= window[2]
                or box[2] <= window[0]
                or box[1] >= window[3]
                or box[3] <= window[1]
            ):
                continue
            if not _mask_trusted(inst):
                crop_box = self._crop_box(region, box)
                if crop_box is not None:
                    boxes_only.append(crop_box)
                continue
            crop_mask = extract_crop(decode_rle(inst.rle), region)  # type: ignore[arg-type]
            if np.count_nonzero(crop_mask) >= self.min_visible_area:
                masks.append(crop_mask)
        shape = (len(masks), self.crop_size, self.crop_size)
        stacked = np.stack(masks) if masks else np.zeros(shape, dtype=bool)
        regions = [self._crop_box(region, r) for r in self._regions[f_idx]]
        return CropSample(
            crop_bgr,
            stacked,
            region,
            frame,
            i_idx,
            np.array(boxes_only).reshape(-1, 4),
            np.array([r for r in regions if r is not None]).reshape(-1, 4),
            crop_background,
        )

    def _background(self, f_idx: int) -> np.ndarray | None:
        """The background under frame ``f_idx`` (uint8 BGR, the frame's size), or None.

        A negative crop image (``crop_box_xyxy``) gets that window of its camera's.
        """
        if self.backgrounds is None:
            return None
        frame = self.frames[f_idx]
        camera = frame.camera_id
        if camera not in self._background_cache:
            path = self.backgrounds / f"{camera}.png"
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no background for camera {camera!r} of {self.coco_json} "
                    "(aquapose detect writes backgrounds/<camera_id>.png)"
                )
            self._background_cache[camera] = read_image(path)
        background = self._background_cache[camera]
        if "crop_box_xyxy" in frame.extra:
            x0, y0, x1, y1 = (int(round(v)) for v in frame.extra["crop_box_xyxy"])
            background = background[y0:y1, x0:x1]
        if background.shape[:2] != (frame.height, frame.width):
            raise ValueError(
                f"{self.backgrounds / (camera + '.png')}: background is {background.shape[1]}x"
                f"{background.shape[0]}, but {self.coco_json} image {frame.image_path} is "
                f"{frame.width}x{frame.height}"
            )
        return background

    def _crop_box(self, region: CropRegion, box_xyxy: np.ndarray) -> np.ndarray | None:
        """Crop-space box rounded out to whole pixels and clipped to the crop; None when
        fewer than ``min_visible_area`` pixels of it are in the crop."""
        crop = region.frame_to_crop_xyxy(box_xyxy)
        x0, y0 = np.floor(np.clip(crop[:2], 0, self.crop_size))
        x1, y1 = np.ceil(np.clip(crop[2:], 0, self.crop_size))
        if (x1 - x0) * (y1 - y0) < self.min_visible_area:
            return None
        return np.array([x0, y0, x1, y1])

    def _image(self, f_idx: int) -> np.ndarray:
        """Frame ``f_idx`` as uint8 BGR, through the LRU cache."""
        if f_idx in self._cache:
            self._cache.move_to_end(f_idx)
            return self._cache[f_idx]
        image = read_image(self.frames[f_idx].resolve_image(self.image_root))
        if image.nbytes <= self.cache_bytes:
            self._cache[f_idx] = image
            self._cached_bytes += image.nbytes
            while self._cached_bytes > self.cache_bytes:
                self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return image

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the dataset pickled: without the cache
        return {
            **self.__dict__,
            "_cache": OrderedDict(),
            "_cached_bytes": 0,
            "_background_cache": {},
        }

    def crop(self, index: int) -> CropSample:
        """The un-augmented crop of sample ``index`` (numpy), as used for evaluation."""
        if not 0 <= index < len(self.samples):
            raise IndexError(f"sample index {index} out of range [0, {len(self.samples)})")
        return self._load(index, np.random.default_rng([self.seed, 0, index]), shift=False)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, Target]:
        """Sample ``key``: an index (augmented as in ``self.epoch``) or ``(epoch, index)``."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < len(self.samples):
            raise IndexError(f"sample index {index} out of range [0, {len(self.samples)})")
        rng = np.random.default_rng([self.seed, epoch if self.augment else 0, index])
        sample = self._load(index, rng, shift=self.augment)
        image = tv_tensors.Image(bgr_to_tensor(sample.image_bgr))
        if sample.background_bgr is not None:  # [2, 3, H, W]: augmented alike
            image = tv_tensors.Image(torch.stack([image, bgr_to_tensor(sample.background_bgr)]))
        crop_masks = sample.crop_masks
        if self.partial:  # box-only fish: their box, filled, stands in for the mask
            crop_masks = np.concatenate([crop_masks, self._box_masks(sample.crop_boxes_only)])
        masks = tv_tensors.Mask(torch.from_numpy(crop_masks.astype(np.uint8)))
        boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
        for n, m in enumerate(crop_masks):
            boxes[n] = torch.from_numpy(mask_to_box_xyxy(m))
        target: Target = {
            "boxes": tv_tensors.BoundingBoxes(
                boxes, format="XYXY", canvas_size=(self.crop_size, self.crop_size)
            ),
            "labels": torch.ones(len(masks), dtype=torch.int64),
            "masks": masks,
        }
        if self.partial:
            trusted = torch.arange(len(masks)) < len(sample.crop_masks)
            target["masks_trusted"] = trusted
            target["ignore_boxes"] = torch.from_numpy(sample.crop_ignore_xyxy).float()
        if self._transform is not None:
            seed = int(rng.integers(0, 2**63 - 1))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                if self._copy_paste is not None:
                    image, target = self._copy_paste(image, target)
                if self.partial:
                    target = self._as_rows(target)
                image, target = self._transform(image, target)
        elif self.partial:
            target = self._as_rows(target)
        image, target = _plain(image, target, index)
        if image.ndim == 4:  # RGB, then RGB minus the background
            image = torch.cat([image[0], image[0] - image[1]])
        return image, target

    def _box_masks(self, boxes: np.ndarray) -> np.ndarray:
        """bool ``(N, crop_size, crop_size)``: each whole-pixel box filled."""
        out = np.zeros((len(boxes), self.crop_size, self.crop_size), dtype=bool)
        for n, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            out[n, y0:y1, x0:x1] = True
        return out

    def _as_rows(self, target: Target) -> Target:
        """The partial target as rows that move through the geometric augmentation: the
        ignore regions appended to boxes/masks (filled boxes), ``kinds`` per row
        (0 = fish with a trusted mask, 1 = box-only fish, 2 = ignore region)."""
        trusted = target.pop("masks_trusted")
        ignore = target.pop("ignore_boxes").numpy()
        size = (self.crop_size, self.crop_size)
        masks = torch.cat(
            [target["masks"].as_subclass(torch.Tensor), torch.from_numpy(self._box_masks(ignore))]
        ).to(torch.uint8)
        boxes = torch.cat(
            [target["boxes"].as_subclass(torch.Tensor), torch.from_numpy(ignore).float()]
        )
        return {
            **target,
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
            "masks": tv_tensors.Mask(masks),
            "labels": torch.cat([target["labels"], torch.ones(len(ignore), dtype=torch.int64)]),
            "kinds": torch.cat(
                [(~trusted).long(), torch.full((len(ignore),), 2, dtype=torch.int64)]
            ),
        }


def _plain(image: torch.Tensor, target: Target, index: int) -> tuple[torch.Tensor, Target]:
    """Strip the tv_tensor wrappers and fix dtypes for the model."""
    masks = target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    boxes = target["boxes"].as_subclass(torch.Tensor).to(torch.float64).reshape(-1, 4)
    # rotations compute boxes with trigonometry: snap the 1e-15 noise back to the pixel edges
    boxes = (torch.round(boxes * 1e4) / 1e4).to(torch.float32)
    keep = masks.flatten(1).amax(dim=1) > 0 if len(masks) else torch.zeros(0, dtype=torch.bool)
    image = image.as_subclass(torch.Tensor).clamp_(0.0, 1.0).contiguous()
    if "kinds" not in target:
        return image, {
            "boxes": boxes[keep],
            "labels": target["labels"][keep],
            "masks": masks[keep].contiguous(),
            "image_id": index,
        }
    kinds = target["kinds"]
    fish = keep & (kinds < 2)
    return image, {
        "boxes": boxes[fish],
        "labels": target["labels"][fish],
        "masks": masks[fish].contiguous(),
        "masks_trusted": kinds[fish] == 0,
        "ignore_boxes": boxes[keep & (kinds == 2)],
        "image_id": index,
    }


def _with_box_only_fish(frame: AnnotatedFrame, boxes_xyxy: np.ndarray) -> AnnotatedFrame:
    """``frame`` with a box-only fish (no mask, ``mask_trusted: false``) at each box."""
    if not len(boxes_xyxy):
        return frame
    fish = tuple(Instance(box, extra={"mask_trusted": False}) for box in boxes_xyxy)
    return replace(frame, instances=frame.instances + fish)


def _mask_trusted(inst: Instance) -> bool:
    """Whether a fish's mask may be learned: it has one and it is not marked
    ``"mask_trusted": false`` (box-only fish)."""
    return inst.rle is not None and inst.extra.get("mask_trusted", True) is not False


def collate_fn(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[tuple[Any, ...], ...]:
    """``[(image, target), ...] -> ((image, ...), (target, ...))`` for torchvision detection."""
    return tuple(zip(*batch, strict=True))
