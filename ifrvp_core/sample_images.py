"""The frames an evaluation scored, as PNGs: every prediction, its target and the context.

`ifrvp evaluate --save_images DIR` (``evaluate(..., save_images=DIR)``) writes, per test sample:

    DIR/images.csv                              index, name, folder: one row per sample
    DIR/<index>_<name>/context_0.png ...        the context frames the methods saw, oldest first
    DIR/<index>_<name>/t+k_target.png           the true frame t+k
    DIR/<index>_<name>/t+k_<method>.png         each method's frame t+k (model, copy_last, ...)

``<index>`` is the sample's dataset index, zero-padded to one width for the whole set (5 digits
at least), so folders sort in sample order and are unique even when names repeat; ``<name>`` is the
dataset's ``name`` made filesystem-safe (`safe_name`). Every PNG is `quantise.to_uint8` of the
very tensor that was scored (predictions clamped to [0, 1], the target as loaded), written
atomically (`data.io.write_image_atomic`). Under torchrun each rank writes the folders of its own
samples and rank 0 writes ``images.csv``; the folder must be new or empty (`SampleImages`), so
that files of an earlier run never mix with these.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterable

import torch

from ifrvp_core.atomic import write_text_atomic
from ifrvp_core.data.io import write_image_atomic
from ifrvp_core.eval_ranks import gather
from ifrvp_core.quantise import to_uint8

__all__ = ["INDEX_FILE", "SampleImages", "folder_problem", "method_file_names", "safe_name"]

# The table of samples in the images folder.
INDEX_FILE = "images.csv"
# File stems that are not methods' predictions.
RESERVED_STEMS = ("target",)
# Longest sanitised name kept in a folder name (file systems allow 255 bytes per name).
MAX_NAME_CHARS = 120


def safe_name(name: str) -> str:
    """`name` as one filesystem-safe path component: runs of characters other than letters, digits,
    ``.``, ``_``, ``+`` and ``-`` become ``_``; no leading dots or underscores; at most
    `MAX_NAME_CHARS` characters; "sample" when nothing is left.

    >>> safe_name("frankfurt/000001 left:img")
    'frankfurt_000001_left_img'
    """
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).lstrip("._")[:MAX_NAME_CHARS].rstrip("._")
    return text or "sample"


def method_file_names(methods: Iterable[str]) -> dict[str, str]:
    """{method: the part of its file names after "t+k_"}; ValueError when two methods would share
    files or one would overwrite the target's."""
    names = {method: safe_name(method) for method in methods}
    seen: dict[str, str] = {}
    for method, stem in names.items():
        if stem in RESERVED_STEMS:
            raise ValueError(f"save_images: method {method!r} would write t+k_{stem}.png, the target's file name; rename the method")
        if stem in seen:
            raise ValueError(f"save_images: methods {seen[stem]!r} and {method!r} would both write t+k_{stem}.png; rename one")
        seen[stem] = method
    return names


class SampleImages:
    """Writes the scored frames of an evaluation under `folder` (the layout of the module docstring).

    Args:
        folder: the images folder; it must not exist, or be an empty folder.
        methods: the method names (file names come from `method_file_names`).
        total: the number of samples of the whole evaluation (all ranks: it fixes the index width).
        world_size: ranks of the evaluation; creating this is then collective (every rank checks
            the folder and all fail together when one cannot use it).
        flag: how errors name the option ("save_images", or the CLI's "--save_images").
    """

    def __init__(self, folder, methods: Iterable[str], total: int, world_size: int = 1, flag: str = "save_images"):
        self.folder = Path(folder)
        self.files = method_file_names(methods)
        self.width = max(5, len(str(max(int(total) - 1, 0))))
        problems = [p for p in gather(folder_problem(self.folder, flag), world_size) if p is not None]
        if problems:
            raise ValueError(problems[0])

    def sample_folder(self, index: int, name: str) -> Path:
        """``folder/<index>_<safe name>``."""
        return self.folder / f"{int(index):0{self.width}d}_{safe_name(name)}"

    def write_inputs(self, index: int, name: str, context: torch.Tensor, targets: torch.Tensor) -> None:
        """context (K,3,H,W) -> ``context_0..K-1.png`` (oldest first); targets (S,3,H,W) -> ``t+1..t+S_target.png``."""
        folder = self.sample_folder(index, name)
        for position, frame in enumerate(context):
            write_image_atomic(folder / f"context_{position}.png", to_uint8(frame))
        for step, frame in enumerate(targets, start=1):
            write_image_atomic(folder / f"t+{step}_target.png", to_uint8(frame))

    def write_predictions(self, index: int, name: str, method: str, predictions: torch.Tensor) -> None:
        """predictions (S,3,H,W) of `method` -> ``t+1..t+S_<method>.png``."""
        folder = self.sample_folder(index, name)
        for step, frame in enumerate(predictions, start=1):
            write_image_atomic(folder / f"t+{step}_{self.files[method]}.png", to_uint8(frame))

    def write_index(self, indices: list[int], names: list[str]) -> Path:
        """``images.csv``: index, name, folder (relative to the images folder), in sample order."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["index", "name", "folder"])
        writer.writerows([int(index), name, self.sample_folder(index, name).name] for index, name in zip(indices, names))
        return write_text_atomic(self.folder / INDEX_FILE, buffer.getvalue())


def folder_problem(folder: Path, flag: str = "save_images") -> str | None:
    """Why `folder` cannot take an evaluation's images (None when it is new or an empty folder)."""
    if folder.exists() and not folder.is_dir():
        return f"{flag} {folder} is a file, not a folder"
    if folder.is_dir() and any(folder.iterdir()):
        return f"{flag} folder {folder} is not empty: give a new folder (images of another run would mix with these)"
    return None

