"""Pretrained files: torch hub's cache, downloads into it, one-line offline errors."""

from __future__ import annotations

from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest
import torch
from torchvision.models import MobileNet_V3_Large_Weights

from aquapose.segmentation.weights import (
    SAM2_CHECKPOINTS,
    WeightsUnavailableError,
    fetch_checkpoint,
    hub_checkpoints_dir,
    load_torchvision_weights,
    sam2_checkpoint_url,
    sam_checkpoint_url,
)

SAM_B_URL = "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
SAM21_TINY_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME (torch hub's folder follows it unless set_dir was called)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _no_download(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError(f"unexpected download {args}")


def test_the_cache_is_torch_hubs_checkpoint_folder(torch_home: Path) -> None:
    assert hub_checkpoints_dir() == torch_home


def test_cache_hit_reads_the_file_without_downloading(torch_home, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    torch_home.mkdir(parents=True)
    tiny = {"w": torch.arange(3.0)}
    torch.save(tiny, torch_home / "sam_vit_b_01ec64.pth")
    assert fetch_checkpoint(SAM_B_URL) == torch_home / "sam_vit_b_01ec64.pth"
    # torchvision's own loader on a torchvision entry: same folder, same rule
    weights = MobileNet_V3_Large_Weights.DEFAULT
    torch.save(tiny, torch_home / Path(weights.url).name)
    state = load_torchvision_weights(weights)
    assert list(state) == ["w"] and torch.equal(state["w"], tiny["w"])


def test_missing_file_is_downloaded_into_the_cache(torch_home, monkeypatch) -> None:
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):  # type: ignore[no-untyped-def]
        calls.append((url, dst))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    path = fetch_checkpoint(SAM21_TINY_URL, progress=False)
    assert path == torch_home / "sam2.1_hiera_tiny.pt" and path.read_bytes() == b"weights"
    assert calls == [(SAM21_TINY_URL, str(path))]
    fetch_checkpoint(SAM21_TINY_URL)  # second time: from the cache
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        URLError("[Errno -3] Temporary failure in name resolution"),
        HTTPError(SAM_B_URL, 403, "Forbidden", {}, None),  # type: ignore[arg-type]
        OSError("Network is unreachable"),
    ],
)
def test_offline_error_is_one_line_with_file_url_and_folder(torch_home, monkeypatch, error):
    def offline(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise error

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        fetch_checkpoint(SAM_B_URL)
    message = str(info.value)
    assert "\n" not in message
    assert "'sam_vit_b_01ec64.pth'" in message
    assert f"download {SAM_B_URL} and put it in {torch_home}" in message
    weights = MobileNet_V3_Large_Weights.DEFAULT
    with pytest.raises(WeightsUnavailableError, match=f"download {weights.url} and put it in"):
        load_torchvision_weights(weights)


def test_released_checkpoint_names() -> None:
    assert sam_checkpoint_url("vit_b") == ("vit_b", SAM_B_URL)
    assert sam_checkpoint_url("sam_vit_b_01ec64.pth") == ("vit_b", SAM_B_URL)
    assert sam_checkpoint_url("sam_vit_h_4b8939")[0] == "vit_h"  # type: ignore[index]
    assert sam_checkpoint_url("vit_x") is None
    assert sam2_checkpoint_url("sam2.1_hiera_tiny") == ("sam2.1_hiera_tiny.pt", SAM21_TINY_URL)
    assert sam2_checkpoint_url("sam2.1_hiera_tiny.pt") == ("sam2.1_hiera_tiny.pt", SAM21_TINY_URL)
    assert sam2_checkpoint_url("sam2_hiera_large") == (
        "sam2_hiera_large.pt",
        "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt",
    )
    assert sam2_checkpoint_url("hiera_tiny") is None
    assert len(SAM2_CHECKPOINTS) == 8
