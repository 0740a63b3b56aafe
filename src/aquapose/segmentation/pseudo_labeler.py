"""Box-prompted pseudo-labels: one frame-space mask per detection.

:class:`SAMPseudoLabeler` holds one of three backends behind the same
``label_frame(frame_bgr, detections) -> list[mask]`` call:

- ``classical`` (default, no weights): GrabCut in a small window around each box,
  initialised from the detector's blob (blob = probable fish, its distance-transform
  core = sure fish, the box's other pixels = probable background, the window outside
  the box = background), then holes filled and the largest connected component kept.
  Without a blob it falls back to a plain box initialisation. With
  ``ClassicalConfig(shadow_model=True)`` and the camera's background image, blob
  pixels that look like a shadow (floor darkened evenly in B, G, R) become probable
  background, pixels no shadow
  can explain become sure fish, and GrabCut models frame/background ratios instead
  of colours: fish shadows on the floor are left out of the mask.
- ``sam``: Segment Anything (``segment-anything``; ``vit_b``/``vit_l``/``vit_h``) from
  a checkpoint path or a released checkpoint's name (``vit_b``, ``sam_vit_b_01ec64.pth``).
- ``sam2``: SAM 2 (``sam2`` package) from a packaged model config and a checkpoint path
  or name (``sam2.1_hiera_tiny``).

A named checkpoint is read from torch hub's cache (``torch.hub.get_dir()/checkpoints``)
and downloaded there from Meta's release URL when missing (see
:mod:`aquapose.segmentation.weights`); offline, the error names the file, the URL and
the folder to put it in.

The SAM backends load their model on first use, compute one image embedding per
frame (``set_image``) for all of its boxes, prompt with the box only, keep the best
of the multimask outputs (``mask_choice="score"``: highest predicted IoU, or
``"area"``: largest) and the largest connected component.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from aquapose.segmentation.grabcut import ClassicalConfig, GrabCutSegmenter
from aquapose.segmentation.masks import largest_component
from aquapose.segmentation.types import Detection
from aquapose.segmentation.weights import (
    SAM2_CHECKPOINTS,
    SAM_CHECKPOINTS,
    fetch_checkpoint,
    sam2_checkpoint_url,
    sam_checkpoint_url,
)

__all__ = ["BACKENDS", "SAMPseudoLabeler", "choose_masks"]

MaskChoice = Literal["score", "area"]

#: SAM 2 checkpoint file name -> packaged hydra config (``sam2/configs/...``).
_SAM2_CONFIGS = {
    "sam2.1_hiera_tiny.pt": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small.pt": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus.pt": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large.pt": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny.pt": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small.pt": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus.pt": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large.pt": "configs/sam2/sam2_hiera_l.yaml",
}


class _Backend(Protocol):
    def predict(
        self,
        frame_bgr: np.ndarray,
        boxes_xyxy: np.ndarray,
        blob_masks: Sequence[np.ndarray | None],
    ) -> list[np.ndarray]: ...


# ----------------------------------------------------------------------------- SAM / SAM 2


def choose_masks(masks: np.ndarray, scores: np.ndarray, mode: MaskChoice = "score") -> np.ndarray:
    """Pick one of the K candidate masks of each box.

    Args:
        masks: bool (B, K, H, W) candidates.
        scores: float (B, K) predicted IoU of each candidate.
        mode: ``"score"`` keeps the highest predicted IoU, ``"area"`` the largest mask.
    Returns:
        bool (B, H, W).
    """
    masks = np.asarray(masks)
    scores = np.asarray(scores)
    if masks.ndim != 4 or scores.shape != masks.shape[:2]:
        raise ValueError(
            f"masks must be (B, K, H, W) and scores (B, K), got {masks.shape} and {scores.shape}"
        )
    if mode == "score":
        best = np.argmax(scores, axis=1)
    elif mode == "area":
        best = np.argmax(masks.reshape(masks.shape[0], masks.shape[1], -1).sum(-1), axis=1)
    else:
        raise ValueError(f"mask_choice must be 'score' or 'area', got {mode!r}")
    return masks[np.arange(masks.shape[0]), best].astype(bool)


def _released(
    checkpoint: str | Path, lookup: Callable[[str], tuple[str, str] | None]
) -> tuple[str, str] | None:
    """``lookup(name)`` when ``checkpoint`` is a bare name (no folder) of no file here."""
    path = Path(checkpoint)
    if path.is_file() or path.name != str(checkpoint):
        return None
    return lookup(path.name)


class _SamBackend:
    """segment-anything ``SamPredictor``: one ``set_image`` per frame, boxes batched."""

    def __init__(
        self,
        checkpoint: str | Path | None,
        model_type: str | None,
        device: str,
        mask_choice: MaskChoice,
        model: Any = None,
        batch_size: int = 16,
    ) -> None:
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.device = device
        self.mask_choice = mask_choice
        self.batch_size = batch_size
        self._model = model
        self._predictor: Any = None
        self.embed_calls = 0
        self.decode_calls = 0

    def _checkpoint_path(self) -> tuple[Path, str]:
        """The checkpoint file (fetched into torch hub's cache when named) and model type."""
        model_type = self.model_type or "vit_b"
        if model_type not in SAM_CHECKPOINTS:
            raise ValueError(
                f"model_type must be one of {sorted(SAM_CHECKPOINTS)} for backend 'sam', "
                f"got {model_type!r}"
            )
        if self.checkpoint is None:
            raise ValueError(
                f"backend 'sam' needs a checkpoint: pass --checkpoint with a released name "
                f"({', '.join(SAM_CHECKPOINTS)}: fetched into torch hub's cache) or the PATH of "
                f"a SAM {model_type} checkpoint ({SAM_CHECKPOINTS[model_type]})"
            )
        path = Path(self.checkpoint)
        named = _released(self.checkpoint, sam_checkpoint_url)
        if named is None:
            if not path.is_file():
                raise FileNotFoundError(
                    f"SAM checkpoint not found: {path} (expected a {model_type} checkpoint "
                    f"such as {SAM_CHECKPOINTS[model_type]}, or a released name: "
                    f"{', '.join(SAM_CHECKPOINTS)})"
                )
            return path, model_type
        named_type, url = named
        if self.model_type is not None and self.model_type != named_type:
            raise ValueError(
                f"checkpoint {self.checkpoint!r} is a {named_type} model but model_type is "
                f"{self.model_type!r}: drop model_type or make it {named_type!r}"
            )
        return fetch_checkpoint(url), named_type

    def _load(self) -> Any:
        try:
            import torch
            from segment_anything import SamPredictor, sam_model_registry
        except ImportError as err:
            raise ImportError(
                "backend 'sam' needs the segment-anything package: pip install 'aquapose[sam]' "
                f"(or pip install segment-anything); import failed: {err}"
            ) from None
        model = self._model
        if model is None:
            path, model_type = self._checkpoint_path()
            model = sam_model_registry[model_type](checkpoint=None)
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(
                    f"{path}: does not fit SAM model_type {model_type!r} "
                    f"(pass the matching --model-type): {str(err).splitlines()[0]}"
                ) from None
        model.to(self.device).eval()
        return SamPredictor(model)

    def predict(
        self,
        frame_bgr: np.ndarray,
        boxes_xyxy: np.ndarray,
        blob_masks: Sequence[np.ndarray | None],
    ) -> list[np.ndarray]:
        import torch

        if self._predictor is None:
            self._predictor = self._load()
        predictor = self._predictor
        if len(boxes_xyxy) == 0:
            return []
        with torch.inference_mode():
            predictor.set_image(np.ascontiguousarray(frame_bgr[:, :, ::-1]), image_format="RGB")
            self.embed_calls += 1
            out: list[np.ndarray] = []
            for start in range(0, len(boxes_xyxy), self.batch_size):
                chunk = torch.as_tensor(
                    boxes_xyxy[start : start + self.batch_size], dtype=torch.float32
                )
                boxes_in = predictor.transform.apply_boxes_torch(chunk, predictor.original_size)
                masks, scores, _ = predictor.predict_torch(
                    None, None, boxes=boxes_in.to(predictor.device), multimask_output=True
                )
                self.decode_calls += 1
                chosen = choose_masks(
                    masks.cpu().numpy(), scores.float().cpu().numpy(), self.mask_choice
                )
                out.extend(largest_component(m) for m in chosen)
        return out


class _Sam2Backend:
    """SAM 2 ``SAM2ImagePredictor``: one ``set_image`` per frame, boxes batched."""

    def __init__(
        self,
        checkpoint: str | Path | None,
        model_cfg: str | None,
        device: str,
        mask_choice: MaskChoice,
        model: Any = None,
        batch_size: int = 16,
    ) -> None:
        self.checkpoint = checkpoint
        self.model_cfg = model_cfg
        self.device = device
        self.mask_choice = mask_choice
        self.batch_size = batch_size
        self._model = model
        self._predictor: Any = None
        self.embed_calls = 0
        self.decode_calls = 0

    def _load(self) -> Any:
        try:
            from sam2.build_sam import build_sam2
            from sam2.sam2_image_predictor import SAM2ImagePredictor
        except ImportError as err:
            raise ImportError(
                "backend 'sam2' needs the sam2 package: pip install 'aquapose[sam2]' "
                f"(or SAM2_BUILD_CUDA=0 pip install sam2); import failed: {err}"
            ) from None
        model = self._model
        if model is None:
            released = sorted(name.removesuffix(".pt") for name in SAM2_CHECKPOINTS)
            if self.checkpoint is None:
                raise ValueError(
                    "backend 'sam2' needs a checkpoint: pass --checkpoint with a released name "
                    f"({', '.join(released)}: fetched into torch hub's cache) or the PATH of a "
                    "SAM 2 checkpoint and, unless its file name is one of the released ones, "
                    f"--model-cfg (one of {sorted(set(_SAM2_CONFIGS.values()))})"
                )
            path = Path(self.checkpoint)
            named = _released(self.checkpoint, sam2_checkpoint_url)
            if named is not None:
                path = fetch_checkpoint(named[1])
            elif not path.is_file():
                raise FileNotFoundError(
                    f"SAM 2 checkpoint not found: {path} (expected e.g. sam2.1_hiera_tiny.pt "
                    f"from the SAM 2 release, or a released name: {', '.join(released)})"
                )
            cfg = self.model_cfg or _SAM2_CONFIGS.get(path.name)
            if cfg is None:
                raise ValueError(
                    f"cannot tell the SAM 2 model config from the file name {path.name!r}: pass "
                    f"--model-cfg, one of {sorted(set(_SAM2_CONFIGS.values()))}"
                )
            try:
                model = build_sam2(cfg, str(path), device=self.device)
            except Exception as err:  # hydra raises its own types for a missing config
                raise ValueError(
                    f"could not build SAM 2 from config {cfg!r} and {path}: {err}"
                ) from None
        model.to(self.device).eval()
        return SAM2ImagePredictor(model)

    def predict(
        self,
        frame_bgr: np.ndarray,
        boxes_xyxy: np.ndarray,
        blob_masks: Sequence[np.ndarray | None],
    ) -> list[np.ndarray]:
        import torch

        if self._predictor is None:
            self._predictor = self._load()
        predictor = self._predictor
        if len(boxes_xyxy) == 0:
            return []
        h, w = frame_bgr.shape[:2]
        with torch.inference_mode():
            predictor.set_image(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
            self.embed_calls += 1
            out: list[np.ndarray] = []
            for start in range(0, len(boxes_xyxy), self.batch_size):
                chunk = np.asarray(boxes_xyxy[start : start + self.batch_size], dtype=np.float32)
                masks, scores, _ = predictor.predict(box=chunk, multimask_output=True)
                self.decode_calls += 1
                masks = np.asarray(masks).reshape(len(chunk), -1, h, w) > 0.5
                scores = np.asarray(scores).reshape(len(chunk), -1)
                out.extend(
                    largest_component(m) for m in choose_masks(masks, scores, self.mask_choice)
                )
        return out


#: Backend names -> short description (the registry behind ``SAMPseudoLabeler(backend=...)``).
BACKENDS = {
    "classical": "GrabCut seeded by the box and the detector's blob; needs no weights",
    "sam": "Segment Anything (segment-anything) from a checkpoint path or name (vit_b)",
    "sam2": "SAM 2 (sam2 package) from a checkpoint path or name (sam2.1_hiera_tiny)",
}


class SAMPseudoLabeler:
    """One mask per detection, from a box prompt (see the module docstring).

    Args:
        backend: ``"classical"`` (default, no weights), ``"sam"`` or ``"sam2"``.
        checkpoint: checkpoint file of the SAM / SAM 2 model, or a released checkpoint's
            name (``vit_b``, ``sam_vit_h_4b8939.pth``, ``sam2.1_hiera_tiny``), read from
            torch hub's cache and downloaded there when missing.
        model_type: SAM variant, ``vit_b``/``vit_l``/``vit_h`` (backend ``sam``); default:
            the named checkpoint's, else ``vit_b``.
        model_cfg: SAM 2 packaged config, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``;
            guessed from the checkpoint's released file name when omitted.
        device: torch device of the SAM models.
        mask_choice: ``"score"`` (highest predicted IoU) or ``"area"`` (largest mask).
        classical: settings of the classical backend.
        model: an already built SAM (``Sam``) or SAM 2 (``SAM2Base``) model to use
            instead of loading ``checkpoint`` (e.g. random weights in tests/benchmarks).
    """

    def __init__(
        self,
        backend: str = "classical",
        checkpoint: str | Path | None = None,
        model_type: str | None = None,
        model_cfg: str | None = None,
        device: str = "cpu",
        *,
        mask_choice: MaskChoice = "score",
        classical: ClassicalConfig | None = None,
        model: Any = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {sorted(BACKENDS)}")
        if mask_choice not in ("score", "area"):
            raise ValueError(f"mask_choice must be 'score' or 'area', got {mask_choice!r}")
        if backend == "classical" and (checkpoint is not None or model is not None):
            raise ValueError(
                "backend 'classical' takes no checkpoint or model; use 'sam' or 'sam2'"
            )
        self.backend = backend
        self._impl: _Backend
        if backend == "classical":
            self._impl = GrabCutSegmenter(classical or ClassicalConfig())
        elif backend == "sam":
            self._impl = _SamBackend(checkpoint, model_type, device, mask_choice, model)
        else:
            self._impl = _Sam2Backend(checkpoint, model_cfg, device, mask_choice, model)

    def label_frame(
        self,
        frame_bgr: np.ndarray,
        detections: Sequence[Detection],
        background_bgr: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Masks of the fish in one frame, one per detection (same order).

        Args:
            frame_bgr: uint8 (H, W, 3) BGR frame.
            detections: boxes (frame pixels) of this frame; their blob masks seed the
                classical backend and are ignored by the SAM backends.
        Returns:
            bool (H, W) frame masks; an empty mask where nothing was found.
        """
        frame = np.asarray(frame_bgr)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"frame_bgr must be a uint8 (H, W, 3) BGR image, got {frame.dtype} {frame.shape}"
            )
        for det in detections:
            if not isinstance(det, Detection):
                raise TypeError(f"detections must be Detection objects, got {type(det).__name__}")
            if det.window_mask is not None and det.frame_hw != frame.shape[:2]:
                raise ValueError(
                    f"detection frame_hw {det.frame_hw} (its blob mask's frame) does not "
                    f"match the frame's (H, W) {frame.shape[:2]}"
                )
        if not detections:
            return []
        h, w = frame.shape[:2]
        boxes = np.stack([d.box_xyxy for d in detections]).astype(np.float64)
        boxes = np.clip(boxes, 0.0, [w, h, w, h])
        degenerate = (boxes[:, 2] - boxes[:, 0] < 1.0) | (boxes[:, 3] - boxes[:, 1] < 1.0)
        if degenerate.any():
            bad = int(np.flatnonzero(degenerate)[0])
            raise ValueError(
                f"detection {bad} box {detections[bad].box_xyxy.tolist()} lies outside the "
                f"{w}x{h} frame"
            )
        if background_bgr is not None:
            background_bgr = np.asarray(background_bgr)
            if background_bgr.shape != frame.shape or background_bgr.dtype != np.uint8:
                raise ValueError(
                    f"background_bgr must be uint8 with the frame's shape {frame.shape}, got "
                    f"{background_bgr.dtype} {background_bgr.shape}"
                )
        blobs = [d.blob_mask for d in detections]
        if isinstance(self._impl, GrabCutSegmenter):
            return self._impl.predict(frame, boxes, blobs, background_bgr)
        return self._impl.predict(frame, boxes, blobs)

    @property
    def stats(self) -> dict[str, int]:
        """Counts of image embeddings and decoder calls so far (SAM backends)."""
        return {
            "embed_calls": int(getattr(self._impl, "embed_calls", 0)),
            "decode_calls": int(getattr(self._impl, "decode_calls", 0)),
        }
