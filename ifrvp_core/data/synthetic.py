"""Built-in synthetic video with exact ground-truth flow and visibility: the default dataset.

A clip is a stack of layers, back to front: a textured background seen by a moving (and slightly
zooming) camera, then 3-6 textured sprites (ellipses, rectangles, polygons with antialiased
edges) with their own constant or accelerating velocities, rotations and scale changes,
occluding each other by depth. Every layer maps its texture lattice into the frame with one
affine transform per frame (`layer_transforms`), and rendering samples the texture bilinearly at
exactly `A^-1 p`. The flow between two frames is therefore known exactly:

    flow_{a->b}(p) = A_L(b) A_L(a)^-1 p - p,   L = the topmost layer covering p in frame a,

and backward-warping frame b with it reproduces frame a wherever L is still unoccluded at
`p + flow` in frame b (`visible`). The residual error on visible pixels is only the bilinear
interpolation of frame b plus 8-bit rounding (about 0.5/255 mean absolute, see the tests).

Everything is determined by a JSON-serialisable *scene* (seeds, shapes and motion polynomials),
stored next to the frames as `scene.json`; textures are regenerated from their seeds when flows
are asked for. Optional global lighting change and sensor noise break brightness constancy on
purpose (they move no pixels, so the flow is unchanged, but photometric losses see them).

The modules: `synthetic_scene` (config, textures, shapes, drawing and checking scenes),
`synthetic_render` (layer transforms, rendering, exact flow) and this one (writing clips and
splits to disk, the default set's cache folder); every public name is importable from here.

Coordinates: pixel centres are integers, x right, y down; flow channel 0 is x, 1 is y, in pixels.
Time is the frame index (float allowed between frames).

    >>> clip = generate_clip(seed=0, num_frames=12, height=128, width=192)
    >>> clip.frames.shape                      # (T, H, W, 3) uint8
    >>> flow, visible = clip.flow(5, 4)        # (H, W, 2) float32, (H, W) bool
    >>> write_synthetic("data/synthetic", "train", num_clips=48)
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ifrvp_core.atomic import write_text_atomic
from ifrvp_core.data.io import write_image_atomic
# This module is the synthetic set's public face: the scene and render modules' names are importable from here.
from ifrvp_core.data.synthetic_render import Clip, generate_clip, layer_transforms, load_scene, render_frame, synthetic_flow  # noqa: F401
from ifrvp_core.data.synthetic_scene import (  # noqa: F401
    IMAGE_TEXTURE,
    SCENE_FILE,
    SCENE_FORMAT,
    SCENE_VERSION,
    SHAPES,
    TEXTURE_KINDS,
    SyntheticConfig,
    camera_at,
    check_scene,
    generate_scene,
    image_texture,
    layer_texture,
    make_texture,
    rasterise_shape,
    shape_vertices,
)

INFO_FILE = "synthetic.json"
TEST_SEED_OFFSET = 1_000_003  # the test split draws clip seeds from its own stream


# ----------------------------------------------------------------------------- writing clips
def frame_name(index: int) -> str:
    return f"{index:05d}.png"


def clip_is_complete(clip_dir, num_frames: int, scene: dict | None = None) -> bool:
    """All frames and scene.json exist (and scene.json equals `scene` when given)."""
    clip_dir = Path(clip_dir)
    scene_path = clip_dir / SCENE_FILE
    if not scene_path.is_file() or not all((clip_dir / frame_name(i)).is_file() for i in range(num_frames)):
        return False
    if scene is not None:
        try:
            return json.loads(scene_path.read_text()) == scene
        except (OSError, json.JSONDecodeError):
            return False
    return True


def write_clip(clip_dir, scene: dict) -> Path:
    """Render every frame of `scene` into `clip_dir`; scene.json is written last (completion mark)."""
    clip_dir = Path(clip_dir)
    clip_dir.mkdir(parents=True, exist_ok=True)
    (clip_dir / SCENE_FILE).unlink(missing_ok=True)  # incomplete until every frame is back
    for index in range(scene["num_frames"]):
        write_image_atomic(clip_dir / frame_name(index), render_frame(scene, index))
    write_text_atomic(clip_dir / SCENE_FILE, json.dumps(scene, indent=1))
    return clip_dir


def clip_seed(seed: int, split: str, clip_index: int) -> int:
    """Seed of clip `clip_index` of a split; train and test use separate streams."""
    stream = seed + (TEST_SEED_OFFSET if split == "test" else 0)
    return int(np.random.SeedSequence([stream, int(split == "test"), clip_index]).generate_state(1)[0])


def _write_one(args) -> Path:
    clip_dir, scene = args
    return write_clip(clip_dir, scene)


def _record_generator(root: Path, split: str, num_clips: int, generator: dict) -> None:
    """Write `root/synthetic.json` with the generator parameters and the clips per split; refuse other parameters."""
    info_path = root / INFO_FILE
    info = {"generator": generator, "splits": {}}
    if info_path.is_file():
        try:
            existing = json.loads(info_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"corrupt {info_path}: {error}") from None
        if existing.get("generator") != generator:
            old = existing.get("generator") or {}
            changed = sorted(k for k in set(old) | set(generator) if old.get(k) != generator.get(k))
            raise ValueError(f"{info_path} was written with other generator parameters (differs in {changed}); "
                             f"use a new root or delete it")
        info = existing
    info["splits"][split] = max(int(num_clips), int(info["splits"].get(split, 0)))
    write_text_atomic(info_path, json.dumps(info, indent=1))


def write_synthetic(
    root,
    split: str = "train",
    num_clips: int = 32,
    num_frames: int = 12,
    height: int = 128,
    width: int = 192,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    workers: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Write `num_clips` clips as `root/<split>/clip_NNNNN/00000.png ...` plus `scene.json`.

    Deterministic by (seed, split, clip index); the test split has its own seed stream, so the
    splits never share clips. Resumable: a clip whose frames and scene.json (written last) are
    all present is skipped; files are written atomically. `root/synthetic.json` records the
    generator parameters; writing into a root made with different parameters is an error.
    `workers` > 0 renders clips in that many processes.

    Returns: the clip folders, in clip order.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    config = config or SyntheticConfig()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    generator = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "num_frames": int(num_frames), "height": int(height),
                 "width": int(width), "seed": int(seed), "test_seed_offset": TEST_SEED_OFFSET,
                 "config": config.to_dict()}
    _record_generator(root, split, num_clips, generator)
    clip_dirs, todo = [], []
    for clip_index in range(num_clips):
        clip_dir = root / split / f"clip_{clip_index:05d}"
        clip_dirs.append(clip_dir)
        scene = generate_scene(clip_seed(seed, split, clip_index), num_frames, height, width, config)
        if not clip_is_complete(clip_dir, num_frames, scene):
            todo.append((clip_dir, scene))
    if workers > 0 and len(todo) > 1:
        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            list(tqdm(pool.map(_write_one, todo), total=len(todo), desc=f"synthetic {split}", disable=not progress))
    else:
        for item in tqdm(todo, desc=f"synthetic {split}", disable=not progress):
            _write_one(item)
    return clip_dirs


def default_synthetic_root(num_clips: int, num_frames: int, height: int, width: int, seed: int) -> Path:
    """Cache folder for the default synthetic set (`$IFRVP_DATA` or ~/.cache/ifrvp)."""
    base = Path(os.environ.get("IFRVP_DATA", Path.home() / ".cache" / "ifrvp"))
    key = json.dumps([num_clips, num_frames, height, width, seed, SyntheticConfig().to_dict(), SCENE_VERSION])
    return base / f"synthetic_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


__all__ = [
    "IMAGE_TEXTURE",
    "INFO_FILE",
    "SCENE_FILE",
    "SCENE_FORMAT",
    "SCENE_VERSION",
    "SHAPES",
    "TEST_SEED_OFFSET",
    "TEXTURE_KINDS",
    "Clip",
    "SyntheticConfig",
    "camera_at",
    "check_scene",
    "clip_is_complete",
    "clip_seed",
    "default_synthetic_root",
    "frame_name",
    "generate_clip",
    "generate_scene",
    "image_texture",
    "layer_texture",
    "layer_transforms",
    "load_scene",
    "make_texture",
    "rasterise_shape",
    "render_frame",
    "shape_vertices",
    "synthetic_flow",
    "write_clip",
    "write_synthetic",
]
