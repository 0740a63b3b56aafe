"""SAMPseudoLabeler: classical quality on synthetic fish and real pixels, SAM plumbing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aquapose.segmentation.masks import mask_iou, mask_to_box_xyxy
from aquapose.segmentation.pseudo_labeler import (
    ClassicalConfig,
    SAMPseudoLabeler,
    choose_masks,
)
from aquapose.segmentation.types import Detection

SUIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "suim-fish"


def _scene(seed: int = 0, h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray, list]:
    """Textured floor, two fish (ellipses of other colours), each with a soft shadow."""
    rng = np.random.default_rng(seed)
    floor = rng.normal(150, 6, (h, w, 3)).clip(0, 255)
    background = cv2.GaussianBlur(floor, (5, 5), 0).astype(np.uint8)
    frame = background.astype(np.float32)
    fish = []
    for (cx, cy, ax, ay, ang), colour in (
        ((45, 50, 22, 7, 20), (60, 90, 70)),
        ((115, 80, 18, 6, -35), (210, 215, 220)),
    ):
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (cx, cy), (ax, ay), ang, 0, 360, 1, -1)
        shadow = np.zeros((h, w), np.float32)
        cv2.ellipse(shadow, (cx + 5, cy + 5), (ax, ay + 2), ang, 0, 360, 1.0, -1)
        shadow = cv2.GaussianBlur(shadow, (7, 7), 0)
        frame *= (1.0 - 0.3 * shadow)[..., None]
        fish.append(mask.astype(bool))
        frame[mask.astype(bool)] = colour
    frame_u8 = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
    return frame_u8, background, fish


def _detections(fish: list[np.ndarray], shadow_blob: bool = True) -> list[Detection]:
    dets = []
    for mask in fish:
        blob = mask.copy()
        if shadow_blob:  # MOG2 sees fish and shadow: blob = fish U shifted fish, a bit grown
            blob |= np.roll(np.roll(mask, 5, axis=0), 5, axis=1)
            blob = cv2.dilate(blob.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        box = mask_to_box_xyxy(blob) + np.array([-4, -4, 4, 4])
        box = np.clip(box, 0, [160, 120, 160, 120])
        dets.append(Detection.from_frame_mask(box, 0.95, "cam0", 3, blob))
    return dets


def test_classical_masks_are_frame_masks_in_detection_order() -> None:
    frame, _, fish = _scene()
    dets = _detections(fish)
    masks = SAMPseudoLabeler().label_frame(frame, dets)
    assert len(masks) == 2
    for mask, gt, other in zip(masks, fish, fish[::-1], strict=True):
        assert mask.shape == frame.shape[:2] and mask.dtype == bool
        # Without a background the soft shadow (in the blob) partly stays in the mask.
        assert mask_iou(mask, gt) > 0.45
        assert (mask & gt).sum() > 0.9 * gt.sum() and not (mask & other).any()


def test_classical_with_background_drops_the_shadow() -> None:
    frame, background, fish = _scene()
    dets = _detections(fish)
    # The shadow model (opt-in) also gives clean masks; with the old, larger sure-fish
    # core (0.5) and no background the shadow stays in the mask.
    labeler = SAMPseudoLabeler(classical=ClassicalConfig(shadow_model=True))
    with_bg = labeler.label_frame(frame, dets, background_bgr=background)
    ious_bg = [mask_iou(m, g) for m, g in zip(with_bg, fish, strict=True)]
    assert min(ious_bg) > 0.85, ious_bg
    old = SAMPseudoLabeler(classical=ClassicalConfig(core_fraction=0.5)).label_frame(frame, dets)
    ious_old = [mask_iou(m, g) for m, g in zip(old, fish, strict=True)]
    assert np.mean(ious_bg) >= np.mean(ious_old) - 0.02


def test_classical_default_ignores_the_background_in_seeding() -> None:
    frame, background, fish = _scene()
    dets = _detections(fish)
    labeler = SAMPseudoLabeler()
    plain = labeler.label_frame(frame, dets)
    with_bg = labeler.label_frame(frame, dets, background_bgr=background)
    for a, b in zip(plain, with_bg, strict=True):
        assert np.array_equal(a, b)


def test_classical_without_blob_uses_the_box() -> None:
    frame, _, fish = _scene(seed=1)
    box = mask_to_box_xyxy(fish[1]) + np.array([-3, -3, 3, 3])
    (mask,) = SAMPseudoLabeler().label_frame(frame, [Detection(box, 1.0, "cam0", 0)])
    assert mask_iou(mask, fish[1]) > 0.75
    ys, xs = np.nonzero(mask)
    assert xs.min() >= box[0] and xs.max() < box[2] and ys.min() >= box[1] and ys.max() < box[3]


def test_classical_downscaled_window_maps_back_to_the_frame() -> None:
    # A big fish in a big window: the window is downscaled (max_side) and mapped back.
    frame = np.full((300, 400, 3), 150, np.uint8)
    gt = np.zeros((300, 400), np.uint8)
    cv2.ellipse(gt, (210, 160), (120, 40), 10, 0, 360, 1, -1)
    frame[gt.astype(bool)] = (40, 60, 50)
    det = Detection.from_frame_mask(
        mask_to_box_xyxy(gt.astype(bool)) + [-6, -6, 6, 6], 1.0, "c", 0, gt.astype(bool)
    )
    (mask,) = SAMPseudoLabeler(classical=ClassicalConfig(max_side=64)).label_frame(frame, [det])
    assert mask_iou(mask, gt.astype(bool)) > 0.9


def test_label_frame_validates_inputs() -> None:
    frame, _, fish = _scene()
    dets = _detections(fish)
    labeler = SAMPseudoLabeler()
    assert labeler.label_frame(frame, []) == []
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        labeler.label_frame(frame[..., 0], dets)
    with pytest.raises(ValueError, match="frame_hw"):
        labeler.label_frame(frame[:60], dets)
    with pytest.raises(ValueError, match="background_bgr"):
        labeler.label_frame(frame, dets, background_bgr=frame[:10])
    with pytest.raises(ValueError, match="outside the"):
        labeler.label_frame(frame, [Detection([500, 500, 520, 520], 1.0, "c", 0)])
    with pytest.raises(TypeError, match="Detection"):
        labeler.label_frame(frame, [(0, 0, 5, 5)])  # type: ignore[list-item]


def test_backend_registry_and_config_errors() -> None:
    with pytest.raises(ValueError, match="valid backends: \\['classical', 'sam', 'sam2'\\]"):
        SAMPseudoLabeler(backend="grabcut")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        SAMPseudoLabeler(backend="classical", checkpoint="x.pth")
    with pytest.raises(ValueError, match="mask_choice"):
        SAMPseudoLabeler(backend="sam", mask_choice="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_side"):
        ClassicalConfig(max_side=4)


def test_sam_missing_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    frame, _, fish = _scene()
    dets = _detections(fish)
    # Lazy: constructing never loads anything; the first frame does.
    labeler = SAMPseudoLabeler(backend="sam")
    with pytest.raises(ValueError, match="needs a checkpoint.*--checkpoint.*sam_vit_b_01ec64.pth"):
        labeler.label_frame(frame, dets)
    missing = tmp_path / "sam_vit_b.pth"
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found: .*sam_vit_b.pth"):
        SAMPseudoLabeler(backend="sam", checkpoint=missing).label_frame(frame, dets)
    with pytest.raises(ValueError, match="model_type must be one of"):
        SAMPseudoLabeler(backend="sam", checkpoint=missing, model_type="vit_x").label_frame(
            frame, dets
        )
    with pytest.raises(ValueError, match="sam2.*needs a checkpoint"):
        SAMPseudoLabeler(backend="sam2").label_frame(frame, dets)
    with pytest.raises(FileNotFoundError, match="SAM 2 checkpoint not found"):
        SAMPseudoLabeler(backend="sam2", checkpoint=missing).label_frame(frame, dets)


def test_sam2_missing_package_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sam2", None)  # import sam2 now raises ImportError
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)
    frame, _, fish = _scene()
    with pytest.raises(ImportError, match="pip install 'aquapose\\[sam2\\]'"):
        SAMPseudoLabeler(backend="sam2", checkpoint="x.pt").label_frame(frame, _detections(fish))


def test_choose_masks_by_score_or_area() -> None:
    masks = np.zeros((2, 3, 4, 4), bool)
    masks[0, 0, :1] = True  # small, best score
    masks[0, 2] = True  # largest
    masks[1, 1, :2] = True
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    by_score = choose_masks(masks, scores, "score")
    by_area = choose_masks(masks, scores, "area")
    assert by_score.shape == (2, 4, 4)
    assert np.array_equal(by_score[0], masks[0, 0]) and np.array_equal(by_score[1], masks[1, 2])
    assert np.array_equal(by_area[0], masks[0, 2]) and np.array_equal(by_area[1], masks[1, 1])
    with pytest.raises(ValueError, match="\\(B, K, H, W\\)"):
        choose_masks(masks[0], scores)


def _tiny_sam() -> object:
    """A small SAM (random weights) built from segment-anything's own modules, 256 px input."""
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(0)
    size, patch, dim = 256, 16, 32
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=size,
            patch_size=patch,
            embed_dim=64,
            depth=2,
            num_heads=2,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            out_chans=dim,
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )


@pytest.mark.slow
def test_sam_backend_plumbing_with_random_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not quality: one embedding per frame, boxes mapped to SAM's input frame, shapes."""
    from segment_anything import SamPredictor

    frame, _, fish = _scene(h=90, w=200)  # non-square: exercises the resize + padding
    dets = [
        Detection([10, 20, 60, 50], 0.9, "cam0", 0),
        Detection([150, 10, 200, 80], 0.9, "cam0", 0),
        Detection([80, 40, 120, 89], 0.9, "cam0", 0),
    ]
    seen: dict[str, list] = {"boxes": [], "images": []}
    real_predict, real_set = SamPredictor.predict_torch, SamPredictor.set_image

    def spy_predict(self, point_coords, point_labels, boxes=None, **kw):  # type: ignore[no-untyped-def]
        seen["boxes"].append(boxes.clone())
        return real_predict(self, point_coords, point_labels, boxes=boxes, **kw)

    def spy_set(self, image, image_format="RGB"):  # type: ignore[no-untyped-def]
        seen["images"].append((image.copy(), image_format))
        return real_set(self, image, image_format)

    monkeypatch.setattr(SamPredictor, "predict_torch", spy_predict)
    monkeypatch.setattr(SamPredictor, "set_image", spy_set)
    labeler = SAMPseudoLabeler(backend="sam", model=_tiny_sam())
    masks = labeler.label_frame(frame, dets)
    assert len(masks) == 3 and all(m.shape == (90, 200) and m.dtype == bool for m in masks)
    assert labeler.stats == {"embed_calls": 1, "decode_calls": 1}  # one embedding, one batch
    image, fmt = seen["images"][0]
    assert fmt == "RGB" and np.array_equal(image, frame[:, :, ::-1])  # BGR frame -> RGB
    # SAM resizes the longest side (200) to 256: boxes scale by 1.28, no offset.
    sent = seen["boxes"][0].numpy()
    expected = np.stack([d.box_xyxy for d in dets]) * (256 / 200)
    np.testing.assert_allclose(sent, expected, atol=0.51)
    for mask in masks:  # largest component only
        assert cv2.connectedComponents(mask.astype(np.uint8))[0] <= 2
    labeler.label_frame(frame, dets[:1])
    assert labeler.stats["embed_calls"] == 2  # the model loaded once, one embedding per frame


@pytest.mark.slow
def test_sam2_backend_random_weights() -> None:
    """SAM 2 built from its packaged config without a checkpoint: plumbing and shapes."""
    pytest.importorskip("sam2", reason="the sam2 extra is not installed")
    from sam2.build_sam import build_sam2

    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    frame, _, fish = _scene()
    dets = _detections(fish)
    labeler = SAMPseudoLabeler(backend="sam2", model=model)
    masks = labeler.label_frame(frame, dets)
    assert [m.shape for m in masks] == [(120, 160), (120, 160)]
    assert all(m.dtype == bool for m in masks)
    one = labeler.label_frame(frame, dets[:1])  # a single box: SAM 2 squeezes its batch axis
    assert len(one) == 1 and one[0].shape == (120, 160)
    assert labeler.stats == {"embed_calls": 2, "decode_calls": 2}


def _suim_instances() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for image_path in sorted((SUIM / "images").glob("*.jpg")):
        image = cv2.imread(str(image_path))
        semantic = cv2.imread(str(SUIM / "masks" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        n, labels = cv2.connectedComponents((semantic > 127).astype(np.uint8))
        for k in range(1, n):
            gt = labels == k
            box = mask_to_box_xyxy(gt)
            pad = max(2.0, 0.05 * max(box[2] - box[0], box[3] - box[1]))
            h, w = gt.shape
            box = np.clip(box + [-pad, -pad, pad, pad], 0, [w, h, w, h])
            out.append((image, gt, box))
    return out


@pytest.mark.slow
def test_classical_on_real_fish_pixels_suim() -> None:
    """Box around each ground-truth blob of the SUIM photos, no blob: classical mean IoU."""
    if not SUIM.is_dir():
        pytest.skip(f"shared data not found at {SUIM}")
    instances = _suim_instances()
    assert len(instances) == 30
    labeler = SAMPseudoLabeler()
    ious = [
        mask_iou(labeler.label_frame(img, [Detection(box, 1.0, "suim", 0)])[0], gt)
        for img, gt, box in instances
    ]
    # Measured 0.74 mean over the 30 blobs (box-only GrabCut on natural underwater photos).
    assert np.mean(ious) > 0.65


@pytest.fixture
def hub_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    import torch

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def test_named_sam_checkpoint_loads_from_the_torch_cache(hub_dir, monkeypatch) -> None:
    """``checkpoint="vit_b"``: the released file in torch hub's cache, no download."""
    import segment_anything
    import torch

    def no_download(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("unexpected download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    # a tiny SAM stands in for vit_b: the registry builds it, the cached file fills it
    monkeypatch.setitem(
        segment_anything.sam_model_registry, "vit_b", lambda checkpoint: _tiny_sam()
    )
    saved = _tiny_sam().state_dict()
    saved = {k: v + 1.0 if v.is_floating_point() else v for k, v in saved.items()}
    hub_dir.mkdir(parents=True)
    torch.save(saved, hub_dir / "sam_vit_b_01ec64.pth")
    for name in ("vit_b", "sam_vit_b_01ec64.pth"):
        labeler = SAMPseudoLabeler(backend="sam", checkpoint=name)
        predictor = labeler._impl._load()  # type: ignore[union-attr]
        loaded = predictor.model.state_dict()
        assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match="is a vit_b model but model_type is 'vit_h'"):
        SAMPseudoLabeler(backend="sam", checkpoint="vit_b", model_type="vit_h")._impl._load()  # type: ignore[union-attr]


def test_named_checkpoints_offline_say_file_url_and_folder(hub_dir, monkeypatch) -> None:
    from urllib.error import URLError

    import torch

    def offline(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    frame, _, fish = _scene()
    dets = _detections(fish)
    base = "https://dl.fbaipublicfiles.com/"
    with pytest.raises(FileNotFoundError) as info:
        SAMPseudoLabeler(backend="sam", checkpoint="vit_h").label_frame(frame, dets)
    message = str(info.value)
    assert "\n" not in message and "'sam_vit_h_4b8939.pth'" in message
    assert (
        f"download {base}segment_anything/sam_vit_h_4b8939.pth and put it in {hub_dir}" in message
    )
    pytest.importorskip("sam2", reason="the sam2 extra is not installed")
    with pytest.raises(FileNotFoundError) as info:
        SAMPseudoLabeler(backend="sam2", checkpoint="sam2.1_hiera_tiny").label_frame(frame, dets)
    assert (
        f"download {base}segment_anything_2/092824/sam2.1_hiera_tiny.pt and put it in {hub_dir}"
        in str(info.value)
    )


def test_named_sam2_checkpoint_uses_the_cached_file_and_its_config(hub_dir, monkeypatch) -> None:
    pytest.importorskip("sam2", reason="the sam2 extra is not installed")
    import sam2.build_sam
    import torch

    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: 1 / 0)
    built = []

    def fake_build(cfg, path, device="cpu"):  # type: ignore[no-untyped-def]
        built.append((cfg, path))
        raise RuntimeError("stop here")

    monkeypatch.setattr(sam2.build_sam, "build_sam2", fake_build)
    hub_dir.mkdir(parents=True)
    (hub_dir / "sam2.1_hiera_tiny.pt").write_bytes(b"cached")
    frame, _, fish = _scene()
    with pytest.raises(ValueError, match="stop here"):
        SAMPseudoLabeler(backend="sam2", checkpoint="sam2.1_hiera_tiny").label_frame(
            frame, _detections(fish)
        )
    assert built == [("configs/sam2.1/sam2.1_hiera_t.yaml", str(hub_dir / "sam2.1_hiera_tiny.pt"))]
