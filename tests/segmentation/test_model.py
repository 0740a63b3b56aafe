"""MaskRCNNSegmentor: registry, crop-sized settings, weights, predict, save/load."""

from __future__ import annotations

from urllib.error import URLError

import numpy as np
import pytest
import torch
from torchvision.models import ResNet18_Weights, resnet18

from aquapose.segmentation.masks import decode_rle
from aquapose.segmentation.model import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    LIGHT_ARCH,
    TORCHVISION_DEFAULTS,
    HeadSettings,
    MaskRCNNSegmentor,
    build_model,
)
from aquapose.segmentation.types import CropRegion, SegmentationResult
from aquapose.segmentation.weights import WeightsUnavailableError


@pytest.fixture
def light() -> MaskRCNNSegmentor:
    torch.manual_seed(0)
    # few detections per crop keep the random-weight mask head cheap
    return MaskRCNNSegmentor(
        LIGHT_ARCH, crop_size=64, device="cpu", settings=HeadSettings(box_detections_per_img=3)
    )


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def crops(n: int, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(KeyError, match="maskrcnn_resnet50_fpn_v2.*maskrcnn_mobilenet_v3_fpn"):
        build_model("yolo")
    assert DEFAULT_ARCH in ARCHITECTURES and LIGHT_ARCH in ARCHITECTURES


@pytest.mark.parametrize("arch", ["maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v3_fpn"])
def test_light_presets_train_with_batch_norm_that_keeps_up(arch):
    torch.manual_seed(0)
    model = build_model(arch, crop_size=64, settings=HeadSettings(box_detections_per_img=2))
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[0, 20:28, 10:40] = 1
    target = {
        "boxes": torch.tensor([[10.0, 20.0, 40.0, 28.0]]),
        "labels": torch.tensor([1]),
        "masks": mask,
    }
    model.train()
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [target, target])
    assert set(losses) >= {"loss_mask", "loss_objectness"}
    assert torch.isfinite(sum(losses.values()))
    # momentum 0.1: running statistics keep up with a short training from scratch
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.1 for m in norms)


def test_model_is_sized_for_crops():
    settings = HeadSettings()
    model = build_model(LIGHT_ARCH, crop_size=96, settings=settings)
    assert model.transform.min_size == (96,) and model.transform.max_size == 96
    assert model.rpn._post_nms_top_n == {
        "training": settings.rpn_post_nms_top_n_train,
        "testing": settings.rpn_post_nms_top_n_test,
    }
    assert model.roi_heads.detections_per_img == settings.box_detections_per_img
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == settings.box_batch_size_per_image
    assert settings.rpn_post_nms_top_n_test < TORCHVISION_DEFAULTS.rpn_post_nms_top_n_test
    with pytest.raises(ValueError, match="rpn_post_nms_top_n_test must be an int >= 1"):
        HeadSettings(rpn_post_nms_top_n_test=0)


def test_two_class_predictors():
    model = build_model(LIGHT_ARCH, crop_size=64)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 2
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        build_model(LIGHT_ARCH, num_classes=1)


def _no_download(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError(f"unexpected download {args}")


def _offline(url, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
    raise URLError("[Errno -3] Temporary failure in name resolution")


def test_offline_pretrained_weights_name_the_file_url_and_folder(hub_dir, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    folder = hub_dir / "checkpoints"
    url = ResNet18_Weights.DEFAULT.url
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("maskrcnn_resnet18_fpn", weights="DEFAULT")
    message = str(info.value)
    assert "\n" not in message and "'resnet18-f37072fd.pth'" in message
    assert f"download {url} and put it in {folder}" in message
    assert "name resolution" in message
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(WeightsUnavailableError, match="mobilenet_v3_large-.*pth"):
        build_model("maskrcnn_mobilenet_v3_fpn", weights="DEFAULT")
    with pytest.raises(WeightsUnavailableError, match="maskrcnn_resnet50_fpn_v2_coco-.*pth"):
        build_model(DEFAULT_ARCH, weights="DEFAULT")


def test_pretrained_weights_load_from_the_torch_cache(hub_dir, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    torch.manual_seed(1)
    cached = resnet18().state_dict()
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(cached, hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    model = build_model("maskrcnn_resnet18_fpn", weights="DEFAULT", crop_size=64)
    assert torch.equal(model.backbone.body.conv1.weight, cached["conv1.weight"])
    assert torch.equal(
        model.backbone.body.layer4[1].bn2.running_var, cached["layer4.1.bn2.running_var"]
    )


def test_pretrained_weights_are_downloaded_into_the_torch_cache(hub_dir, monkeypatch):
    """Online: torchvision's loader fetches the file into torch hub's cache, then loads it."""
    torch.manual_seed(2)
    served = resnet18().state_dict()
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):  # type: ignore[no-untyped-def]
        calls.append((url, dst, hash_prefix))
        torch.save(served, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    model = build_model("maskrcnn_resnet18_fpn", weights="DEFAULT", crop_size=64)
    target = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    assert calls == [(ResNet18_Weights.DEFAULT.url, str(target), "f37072fd")]  # hash-checked
    assert target.is_file()
    assert torch.equal(model.backbone.body.conv1.weight, served["conv1.weight"])


def test_predict_returns_results_per_crop(light):
    batch = crops(3)
    regions = [CropRegion(10 * i, 5, 64, 200, 100, crop_size=64) for i in range(3)]
    out = light.predict(batch, regions, score_threshold=0.0, batch_size=2)
    assert len(out) == 3
    assert light.model.training is False
    for results, region in zip(out, regions, strict=True):
        assert len(results) <= light.settings.box_detections_per_img
        scores = [r.confidence for r in results]
        assert scores == sorted(scores, reverse=True)
        for r in results:
            assert isinstance(r, SegmentationResult) and r.region is region
            assert decode_rle(r.crop_rle).shape == (64, 64) and decode_rle(r.crop_rle).any()
    assert all(r.confidence >= 0.9 for r in light.predict(batch, score_threshold=0.9)[0])


def test_predict_restores_the_training_mode(light):
    light.model.train()
    light.predict(crops(1))
    assert light.model.training is True


def test_predict_validates_its_inputs(light):
    with pytest.raises(
        ValueError, match=r"crops\[0\] must be a uint8 BGR array of shape \(64, 64, 3\)"
    ):
        light.predict([np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        light.predict([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(TypeError, match="list of"):
        light.predict(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="got 1 crops but 2 regions"):
        light.predict(crops(1), [CropRegion(0, 0, 64, 64, 64, crop_size=64)] * 2)
    with pytest.raises(ValueError, match="crop_size=64"):
        light.predict(crops(1), [CropRegion(0, 0, 256, 300, 300, crop_size=256)])
    with pytest.raises(ValueError, match="score_threshold"):
        light.predict(crops(1), score_threshold=1.5)


@pytest.mark.slow
def test_save_load_round_trip(light, tmp_path):
    path = light.save(tmp_path / "m.pt")
    loaded = MaskRCNNSegmentor.load(path, device="cpu")
    assert (loaded.arch, loaded.crop_size, loaded.settings) == (LIGHT_ARCH, 64, light.settings)
    for key, value in light.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    a = light.predict(crops(2), score_threshold=0.0)
    b = loaded.predict(crops(2), score_threshold=0.0)
    assert [[r.crop_rle for r in x] for x in a] == [[r.crop_rle for r in x] for x in b]
    # a checkpoint path also works as weights=, and the saved arch is checked
    same = MaskRCNNSegmentor(LIGHT_ARCH, weights=path, crop_size=64, device="cpu")
    for key, value in light.model.state_dict().items():
        assert torch.equal(value, same.model.state_dict()[key])
    with pytest.raises(ValueError, match=f"checkpoint is a '{LIGHT_ARCH}' model"):
        build_model(DEFAULT_ARCH, weights=path)
    override = MaskRCNNSegmentor.load(path, device="cpu", settings=TORCHVISION_DEFAULTS)
    assert override.model.roi_heads.detections_per_img == 100


def test_load_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an AquaPose Mask R-CNN checkpoint"):
        MaskRCNNSegmentor.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        MaskRCNNSegmentor.load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        MaskRCNNSegmentor.load(tmp_path / "missing.pt")


@pytest.mark.slow
def test_default_resnet50_fpn_v2_trains_one_step_and_predicts():
    torch.manual_seed(0)
    seg = MaskRCNNSegmentor(DEFAULT_ARCH, crop_size=64, device="cpu")
    model = seg.model
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[0, 20:30, 10:40] = 1
    target = {
        "boxes": torch.tensor([[10.0, 20.0, 40.0, 30.0]]),
        "labels": torch.tensor([1]),
        "masks": mask,
    }
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, 64, 64, dtype=torch.uint8),
    }
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [target, empty])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    before = model.roi_heads.mask_predictor.mask_fcn_logits.weight.clone()
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.roi_heads.mask_predictor.mask_fcn_logits.weight)
    seg.model.roi_heads.detections_per_img = 2
    out = seg.predict(crops(1))
    assert len(out) == 1 and all(isinstance(r, SegmentationResult) for r in out[0])


def test_exact_paste_inverts_the_mask_targets_of_thin_fish():
    from torchvision.models.detection.roi_heads import paste_masks_in_image
    from torchvision.ops import roi_align

    from aquapose.segmentation.model import paste_masks_exact

    # a thin diagonal "fish", 3 px wide: the case where a 1 px pasting error matters
    yy, xx = np.mgrid[0:64, 0:64]
    fish = (np.abs(yy - 0.5 * xx - 10) < 1.6) & (xx > 8) & (xx < 50)
    box = torch.tensor(
        [[xx[fish].min(), yy[fish].min(), xx[fish].max() + 1, yy[fish].max() + 1]],
        dtype=torch.float32,
    )
    target = torch.from_numpy(fish.astype(np.float32))[None, None]
    # the mask head's training target for this box (torchvision's project_masks_on_boxes)
    small = roi_align(target, torch.cat([torch.zeros(1, 1), box], 1), (28, 28), 1.0)[:, 0]

    def iou(pasted):
        return (pasted & fish).sum() / (pasted | fish).sum()

    ours = paste_masks_exact(small, box, 64, 64)[0].numpy() >= 0.5
    theirs = paste_masks_in_image(small[:, None], box, (64, 64))[0, 0].numpy() >= 0.5
    assert iou(ours) > 0.95
    assert iou(ours) > iou(theirs) + 0.05
    assert paste_masks_exact(small[:0], box[:0], 64, 64).shape == (0, 64, 64)


@pytest.mark.parametrize("arch", [LIGHT_ARCH, "maskrcnn_resnet18_fpn"])
def test_background_input_with_zero_init_starts_as_the_rgb_model(arch):
    from aquapose.segmentation.model import _take_background

    torch.manual_seed(0)
    rgb = build_model(arch, crop_size=64).eval()
    widened = build_model(arch, crop_size=64).eval()
    widened.load_state_dict(rgb.state_dict())
    _take_background(widened, zero_init=True)
    first = next(m for m in widened.backbone.body.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 6
    image = torch.rand(3, 64, 64)
    background = torch.rand(3, 64, 64)
    with torch.no_grad():
        features_rgb = rgb.backbone(rgb.transform([image])[0].tensors)
        six = torch.cat([image, image - background])
        features_six = widened.backbone(widened.transform([six])[0].tensors)
    for key in features_rgb:
        torch.testing.assert_close(features_six[key], features_rgb[key])


def test_background_model_needs_backgrounds_and_keeps_the_flag(tmp_path):
    torch.manual_seed(0)
    settings = HeadSettings(box_detections_per_img=2)
    seg = MaskRCNNSegmentor(
        LIGHT_ARCH, crop_size=64, device="cpu", settings=settings, background_input=True
    )
    crop = np.full((64, 64, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="background as input"):
        seg.predict([crop])
    with pytest.raises(ValueError, match=r"backgrounds\[0\] must be a uint8 BGR array"):
        seg.predict([crop], backgrounds=[np.zeros((32, 32, 3), np.uint8)])
    assert len(seg.predict([crop], backgrounds=[crop])) == 1
    # the difference channels reach the network: another background, another output
    tensor = seg.to_tensor(crop, np.full((64, 64, 3), 30, np.uint8))
    assert tensor.shape == (6, 64, 64)
    torch.testing.assert_close(tensor[3:], torch.full((3, 64, 64), 60 / 255))
    loaded = MaskRCNNSegmentor.load(seg.save(tmp_path / "bg.pt"), device="cpu")
    assert loaded.background_input
    rgb = MaskRCNNSegmentor(LIGHT_ARCH, crop_size=64, device="cpu", settings=settings)
    with pytest.raises(ValueError, match="without the background"):
        rgb.predict([crop], backgrounds=[crop])


def test_starting_from_a_checkpoint_needs_the_same_inputs(tmp_path):
    seg = MaskRCNNSegmentor(LIGHT_ARCH, crop_size=64, device="cpu", background_input=True)
    path = seg.save(tmp_path / "bg.pt")
    build_model(LIGHT_ARCH, weights=path, crop_size=64, background_input=True)
    with pytest.raises(ValueError, match="with the background as input"):
        build_model(LIGHT_ARCH, weights=path, crop_size=64)
