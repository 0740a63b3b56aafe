"""Pretrained weights the way users expect: torch hub's cache, downloaded when missing.

Every pretrained file lives in torch hub's checkpoint folder,
``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``), the folder torchvision itself fills:

- torchvision weights (``weights="DEFAULT"``) load through torchvision's own
  ``Weights.get_state_dict`` (``torch.hub.load_state_dict_from_url``, hash-checked);
- SAM / SAM 2 checkpoints can be named (``vit_b``, ``sam_vit_b_01ec64.pth``,
  ``sam2.1_hiera_tiny``) and are fetched from Meta's release URLs with
  ``torch.hub.download_url_to_file`` into the same folder.

A file already in the folder is used as is (nothing is checked online). When it is
missing and the download fails (offline), :class:`WeightsUnavailableError` says in one
line which file, from which URL, into which folder. torch is imported lazily so that the
labelers' module stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

__all__ = [
    "SAM2_CHECKPOINTS",
    "SAM_CHECKPOINTS",
    "WeightsUnavailableError",
    "fetch_checkpoint",
    "hub_checkpoints_dir",
    "load_torchvision_weights",
    "sam2_checkpoint_url",
    "sam_checkpoint_url",
]

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"

#: SAM model type -> released checkpoint file (segment-anything README).
SAM_CHECKPOINTS = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}

#: SAM 2 / 2.1 checkpoint file -> its release URL (sam2 ``checkpoints/download_ckpts.sh``).
SAM2_CHECKPOINTS = {
    **{
        f"sam2.1_hiera_{size}.pt": f"{_SAM21_URL}sam2.1_hiera_{size}.pt"
        for size in ("tiny", "small", "base_plus", "large")
    },
    **{
        f"sam2_hiera_{size}.pt": f"{_SAM2_URL}sam2_hiera_{size}.pt"
        for size in ("tiny", "small", "base_plus", "large")
    },
}


class WeightsUnavailableError(FileNotFoundError):
    """A pretrained file is neither in torch hub's cache nor downloadable (offline)."""


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint folder (``torch.hub.get_dir()/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _unavailable(url: str, err: BaseException) -> WeightsUnavailableError:
    filename = Path(urlparse(url).path).name
    plain = isinstance(err, URLError) and not isinstance(err, HTTPError)
    reason = str(err.reason if isinstance(err, URLError) and plain else err)
    return WeightsUnavailableError(
        f"pretrained file '{filename}' is not in the torch cache and could not be downloaded "
        f"({reason or type(err).__name__}): download {url} and put it in {hub_checkpoints_dir()} (or set TORCH_HOME)"
    )


def fetch_checkpoint(url: str, *, progress: bool = True) -> Path:
    """The cached file of ``url`` in :func:`hub_checkpoints_dir`, downloaded if missing.

    Raises:
        WeightsUnavailableError: the file is not cached and the download failed.
    """
    import torch

    path = hub_checkpoints_dir() / Path(urlparse(url).path).name
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=progress)
    except OSError as err:  # URLError, HTTPError, socket errors, a read-only cache
        raise _unavailable(url, err) from None
    return path


def load_torchvision_weights(weights: Any, *, progress: bool = True) -> dict[str, Any]:
    """The state dict of a torchvision ``Weights`` entry, through torchvision's own loader.

    ``weights.get_state_dict`` reads ``torch.hub.get_dir()/checkpoints/<file>`` and downloads
    it there (hash-checked) when missing, exactly as ``torchvision.models.resnet18(weights=...)``.

    Raises:
        WeightsUnavailableError: the file is not cached and the download failed.
    """
    try:
        state: dict[str, Any] = weights.get_state_dict(
            progress=progress, check_hash=True, map_location="cpu", weights_only=True
        )
    except OSError as err:
        raise _unavailable(weights.url, err) from None
    return state


def sam_checkpoint_url(name: str) -> tuple[str, str] | None:
    """``(model_type, url)`` of a named SAM checkpoint (``vit_b`` or its release file name).

    None when ``name`` is not a released SAM checkpoint.
    """
    for model_type, filename in SAM_CHECKPOINTS.items():
        if name in (model_type, filename, Path(filename).stem):
            return model_type, _SAM_URL + filename
    return None


def sam2_checkpoint_url(name: str) -> tuple[str, str] | None:
    """``(file_name, url)`` of a named SAM 2 checkpoint (``sam2.1_hiera_tiny`` with or
    without ``.pt``); None when it is not a released one."""
    filename = name if name.endswith(".pt") else f"{name}.pt"
    url = SAM2_CHECKPOINTS.get(filename)
    return None if url is None else (filename, url)
