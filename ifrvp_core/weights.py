"""Pretrained ImageNet / optical-flow weights from torchvision: where they are, and an opt-in download.

LPIPS (AlexNet), the perceptual loss (VGG19) and the RAFT teacher flow read torchvision's files
from the torch hub cache, `torch.hub.get_dir()/checkpoints/<file>` (the file name is the last part
of the weights enum's URL). Nothing is downloaded unless asked: `IFRVP_ALLOW_DOWNLOAD=1` in the
environment, or a command's `--download_weights` flag. A download goes through torchvision's own
weights API (`<Weights enum>.get_state_dict(progress=True)`), which stores the file at that same
cache path, so the next run finds it. Without the file and without permission, the error names the
cache path, the variable and the flag.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import torch

__all__ = [
    "ALEXNET",
    "ALLOW_DOWNLOAD_ENV",
    "PRETRAINED",
    "RAFT_LARGE",
    "VGG19",
    "Pretrained",
    "WeightsDownloadError",
    "WeightsNotFoundError",
    "download_allowed",
    "fetch_state_dict",
    "load_pretrained_state",
    "missing_weights_message",
]

ALLOW_DOWNLOAD_ENV = "IFRVP_ALLOW_DOWNLOAD"
_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weights file that is neither there nor allowed to be downloaded."""


class WeightsDownloadError(OSError):
    """A download that was allowed but failed (no network, a proxy, a full disk)."""


@dataclass(frozen=True)
class Pretrained:
    """One torchvision weights enum member this project loads.

    Attributes:
        label: what the weights are, for messages ("VGG19 ImageNet weights").
        module: the torchvision module holding the enum ("torchvision.models").
        enum: "<Enum>.<member>", e.g. "VGG19_Weights.IMAGENET1K_V1".
        file_name: the last part of the enum's URL, the cache file name. Spelled out so that
            checking for the file never imports torchvision.models (seconds);
            tests/test_weights.py checks it against the enum.
    """

    label: str
    module: str
    enum: str
    file_name: str

    def cache_path(self) -> Path:
        """`torch.hub.get_dir()/checkpoints/<file_name>`: where torchvision keeps (and downloads) the file."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def weights_enum(self):
        """The torchvision enum member (imports torchvision's models: only to download or to check)."""
        value = import_module(self.module)
        for part in self.enum.split("."):
            value = getattr(value, part)
        return value


ALEXNET = Pretrained("AlexNet ImageNet weights", "torchvision.models", "AlexNet_Weights.IMAGENET1K_V1", "alexnet-owt-7be5be79.pth")
VGG19 = Pretrained("VGG19 ImageNet weights", "torchvision.models", "VGG19_Weights.IMAGENET1K_V1", "vgg19-dcbb9e9d.pth")
RAFT_LARGE = Pretrained("RAFT-large flow weights", "torchvision.models.optical_flow", "Raft_Large_Weights.C_T_SKHT_V2",
                        "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
PRETRAINED = {"alexnet": ALEXNET, "vgg19": VGG19, "raft_large": RAFT_LARGE}


def download_allowed(download: bool = False) -> bool:
    """True when `download` is, or when the environment sets IFRVP_ALLOW_DOWNLOAD=1 (true, yes, on).

    ValueError for a value that is neither yes (1, true, yes, on) nor no (0, false, no, off, empty).
    """
    if download:
        return True
    raw = os.environ.get(ALLOW_DOWNLOAD_ENV, "")
    value = raw.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"{ALLOW_DOWNLOAD_ENV}={raw!r}: use 1 to allow downloading pretrained weights, or 0 (or unset it) to forbid it")


def missing_weights_message(spec: Pretrained, path: Path | None = None, flag: str | None = "--download_weights") -> str:
    """The message for weights not found at the cache path: that path, the variable and the flag."""
    path = spec.cache_path() if path is None else Path(path)
    how = f"{ALLOW_DOWNLOAD_ENV}=1" if flag is None else f"{flag} or {ALLOW_DOWNLOAD_ENV}=1"
    return (f"{spec.label} not found at {path}; download them once with {how} (torchvision's "
            f"{spec.enum}, saved at that path), or copy torchvision's {spec.file_name} there")


def fetch_state_dict(spec: Pretrained) -> dict:
    """Download `spec` with torchvision's weights API into the hub cache; the only network access here.

    Raises WeightsDownloadError (naming the weights, the URL and the cache path) when it fails.
    """
    weights = spec.weights_enum()
    try:
        return weights.get_state_dict(progress=True)
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        raise WeightsDownloadError(f"could not download {spec.label} from {weights.url} to {spec.cache_path()}: {error}") from error


def load_pretrained_state(spec: Pretrained, path=None, download: bool = False, flag: str | None = "--download_weights",
                          path_source: str = "the path given") -> dict:
    """The state dict of `spec`: from `path` when given, else from the hub cache, else downloaded when allowed.

    Args:
        spec: which weights (ALEXNET, VGG19, RAFT_LARGE).
        path: an explicit file; it must exist (nothing is downloaded in its place).
        download: allow downloading into the hub cache (IFRVP_ALLOW_DOWNLOAD=1 allows it too).
        flag: the command's download flag, named in the message (None: only the variable).
        path_source: where an explicit `path` came from ("--raft_weights"), for its message.

    Raises:
        WeightsNotFoundError: the file is absent and downloading was not allowed.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{spec.label} not found at {path} ({path_source}); give an existing file, or leave it out "
                                       f"to use {spec.cache_path()}")
        return torch.load(path, map_location="cpu", weights_only=True)
    cached = spec.cache_path()
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    if download_allowed(download):
        return fetch_state_dict(spec)
    raise WeightsNotFoundError(missing_weights_message(spec, cached, flag))
