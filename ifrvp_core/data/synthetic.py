"""Built-in synthetic video with exact ground-truth flow: the default dataset everywhere.

A clip is a stack of layers, back to front: a textured background seen by a moving camera, then
several textured sprites (ellipses, rectangles, polygons) with their own constant or accelerating
velocities and rotations, occluding each other by depth. Each layer maps its texture into the
frame with one affine transform per frame, so the flow between any two frames is known exactly:
for a pixel of frame a owned by layer L, flow = A_L(b) A_L(a)^-1 p - p. A pixel is *visible* in
frame b when L still owns (fully) the pixels around that position there.

Everything is determined by a JSON-serialisable *scene* (seeds and motion parameters), stored
next to the frames as `scene.json`; textures are regenerated from their seeds when flows are
asked for. Optional global lighting change and sensor noise break brightness constancy on
purpose (they move no pixels).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

SCENE_FILE = "scene.json"
TEST_SEED_OFFSET = 1_000_003  # the test split draws from its own seed stream


@dataclass
class SyntheticConfig:
    """Generator knobs (motions in pixels per frame at the given frame size)."""

    min_sprites: int = 3
    max_sprites: int = 6
    camera_speed: float = 2.5  # max background speed
    sprite_speed: float = 5.0  # max sprite speed
    sprite_acceleration: float = 0.4  # max |acceleration| (px / frame^2)
    rotation_speed: float = 0.06  # max |rad / frame|
    lighting_change: float = 0.0  # amplitude of a global gain oscillation
    noise_std: float = 0.0  # Gaussian sensor noise (in [0, 1] units)


# ----------------------------------------------------------------------------- textures
def make_texture(seed: int, height: int, width: int) -> np.ndarray:
    """A colourful procedural texture, float32 (H, W, 3) in [0, 1], smooth enough for warping."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.random((max(height // 8, 2), max(width // 8, 2), 3)).astype(np.float32)
    base = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    colour_a, colour_b = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    if kind == 0:  # stripes
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        pattern = t[..., None] * colour_a + (1 - t[..., None]) * colour_b
    elif kind == 1:  # soft checker
        period = rng.uniform(8, 20)
        t = 0.5 + 0.5 * np.sin(np.pi * xx / period) * np.sin(np.pi * yy / period)
        pattern = t[..., None] * colour_a + (1 - t[..., None]) * colour_b
    elif kind == 2:  # gradient
        t = (xx / max(width - 1, 1))[..., None]
        pattern = t * colour_a + (1 - t) * colour_b
    else:
        pattern = base
    texture = 0.45 * pattern + 0.3 * base + 0.25 * fine
    return np.clip(cv2.GaussianBlur(texture, (0, 0), 0.7), 0.0, 1.0).astype(np.float32)


def make_shape_mask(kind: str, seed: int, size: int) -> np.ndarray:
    """A binary float32 (size, size) mask of an ellipse, rectangle or polygon."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    centre = (size // 2, size // 2)
    if kind == "ellipse":
        axes = (int(size * rng.uniform(0.3, 0.48)), int(size * rng.uniform(0.2, 0.48)))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    elif kind == "rectangle":
        half_w, half_h = int(size * rng.uniform(0.2, 0.45)), int(size * rng.uniform(0.2, 0.45))
        cv2.rectangle(mask, (centre[0] - half_w, centre[1] - half_h), (centre[0] + half_w, centre[1] + half_h), 1, -1)
    else:
        count = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = size * rng.uniform(0.25, 0.48, count)
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 1)
    return mask.astype(np.float32)


# ----------------------------------------------------------------------------- scenes
def generate_scene(seed: int, num_frames: int, height: int, width: int, config: SyntheticConfig | None = None) -> dict:
    """Draw a random scene: JSON-serialisable parameters that determine every frame and flow."""
    config = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    scale = min(height, width) / 128.0  # motions and sizes scale with the frame
    margin = int(np.ceil(num_frames * config.camera_speed * scale)) + 8
    camera_velocity = rng.uniform(-1, 1, 2) * config.camera_speed * scale
    background = {
        "texture_seed": int(rng.integers(2**31)),
        "texture_size": [height + 2 * margin, width + 2 * margin],
        "origin": [float(margin), float(margin)],
        "velocity": camera_velocity.tolist(),
        "zoom_rate": float(rng.uniform(-0.004, 0.004)),
    }
    sprites = []
    for depth in range(int(rng.integers(config.min_sprites, config.max_sprites + 1))):
        size = int(min(height, width) * rng.uniform(0.25, 0.55))
        accelerating = rng.random() < 0.4
        sprites.append(
            {
                "shape": str(rng.choice(["ellipse", "rectangle", "polygon"])),
                "shape_seed": int(rng.integers(2**31)),
                "texture_seed": int(rng.integers(2**31)),
                "size": size,
                "position": [float(rng.uniform(0.1, 0.9) * width), float(rng.uniform(0.1, 0.9) * height)],
                "velocity": (rng.uniform(-1, 1, 2) * config.sprite_speed * scale).tolist(),
                "acceleration": (
                    rng.uniform(-1, 1, 2) * config.sprite_acceleration * scale if accelerating else np.zeros(2)
                ).tolist(),
                "angle": float(rng.uniform(0, 2 * np.pi)),
                "angular_velocity": float(rng.uniform(-1, 1) * config.rotation_speed),
                "depth": depth,
            }
        )
    return {
        "seed": int(seed),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "background": background,
        "sprites": sprites,
        "lighting": {
            "amplitude": float(config.lighting_change),
            "period": float(rng.uniform(6, 14)),
            "phase": float(rng.uniform(0, 2 * np.pi)),
        },
        "noise_std": float(config.noise_std),
    }


def layer_transforms(scene: dict, index: int) -> list[np.ndarray]:
    """2x3 affine maps texture -> frame for every layer (background first) at frame `index`."""
    t = float(index)
    background = scene["background"]
    camera = np.array(background["velocity"]) * t
    zoom = 1.0 + background["zoom_rate"] * t
    centre = np.array([scene["width"] / 2.0, scene["height"] / 2.0])
    origin = np.array(background["origin"])
    # frame = zoom * (texture - origin - camera - centre) + centre
    transforms = [np.array([[zoom, 0, centre[0] - zoom * (origin[0] + camera[0] + centre[0])],
                            [0, zoom, centre[1] - zoom * (origin[1] + camera[1] + centre[1])]])]
    for sprite in scene["sprites"]:
        position = np.array(sprite["position"]) + np.array(sprite["velocity"]) * t + 0.5 * np.array(sprite["acceleration"]) * t * t
        world_to_frame = zoom * (position - camera - centre) + centre  # sprites live in the world
        angle = sprite["angle"] + sprite["angular_velocity"] * t
        rotation = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        half = sprite["size"] / 2.0
        offset = world_to_frame - rotation @ np.array([half, half])
        transforms.append(np.concatenate([rotation, offset[:, None]], axis=1))
    return transforms


@lru_cache(maxsize=64)
def _layer_assets(scene_json: str):
    scene = json.loads(scene_json)
    background = scene["background"]
    assets = [(make_texture(background["texture_seed"], *background["texture_size"]), None)]
    for sprite in scene["sprites"]:
        size = sprite["size"]
        assets.append((make_texture(sprite["texture_seed"], size, size), make_shape_mask(sprite["shape"], sprite["shape_seed"], size)))
    return assets


def _assets(scene: dict):
    return _layer_assets(json.dumps(scene, sort_keys=True))


def _coverage(scene: dict, index: int) -> list[np.ndarray]:
    """Per-layer alpha (H, W) float32 at frame `index` (background fully covers)."""
    height, width = scene["height"], scene["width"]
    alphas = [np.ones((height, width), np.float32)]
    for (_, mask), transform in zip(_assets(scene)[1:], layer_transforms(scene, index)[1:]):
        alphas.append(cv2.warpAffine(mask, transform, (width, height), flags=cv2.INTER_LINEAR, borderValue=0))
    return alphas


def render_frame(scene: dict, index: int) -> np.ndarray:
    """Frame `index` as uint8 (H, W, 3) RGB."""
    height, width = scene["height"], scene["width"]
    frame = np.zeros((height, width, 3), np.float32)
    for (texture, _), transform, alpha in zip(_assets(scene), layer_transforms(scene, index), _coverage(scene, index)):
        layer = cv2.warpAffine(texture, transform, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = alpha[..., None] * layer + (1.0 - alpha[..., None]) * frame
    lighting = scene["lighting"]
    if lighting["amplitude"]:
        frame = frame * (1.0 + lighting["amplitude"] * np.sin(2 * np.pi * index / lighting["period"] + lighting["phase"]))
    if scene["noise_std"]:
        noise_rng = np.random.default_rng([scene["seed"], index])
        frame = frame + noise_rng.normal(0.0, scene["noise_std"], frame.shape).astype(np.float32)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _owners(scene: dict, index: int) -> np.ndarray:
    """(H, W) int: index of the topmost fully covering layer, -1 on partially covered edges."""
    alphas = _coverage(scene, index)
    owner = np.zeros(alphas[0].shape, np.int32)
    for layer, alpha in enumerate(alphas[1:], start=1):
        owner[alpha > 1e-4] = -1  # anything touched by an antialiased edge is ambiguous...
        owner[alpha >= 0.999] = layer  # ...unless this layer covers it fully
    return owner


def load_scene(clip) -> dict:
    if isinstance(clip, dict):
        return clip
    path = Path(clip) / SCENE_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"synthetic clip has no {SCENE_FILE}: {path}") from None


def synthetic_flow(clip, from_index: int, to_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact flow from frame `from_index` to frame `to_index` of a synthetic clip.

    Args:
        clip: a clip folder (with scene.json) or a scene dict.
    Returns:
        flow float32 (H, W, 2) in pixels (x right, y down) and visible bool (H, W): True where
        backward-warping frame `to_index` with this flow reproduces frame `from_index`.
    """
    scene = load_scene(clip)
    height, width = scene["height"], scene["width"]
    owner_from, owner_to = _owners(scene, from_index), _owners(scene, to_index)
    transforms_from, transforms_to = layer_transforms(scene, from_index), layer_transforms(scene, to_index)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (H, W, 3)
    flow = np.zeros((height, width, 2), np.float64)
    for layer, (a_from, a_to) in enumerate(zip(transforms_from, transforms_to)):
        selected = owner_from == layer
        if layer == 0:
            selected = selected | (owner_from == -1)  # edges: report the background motion, marked invisible
        if not selected.any():
            continue
        inverse = cv2.invertAffineTransform(a_from)
        texture_points = points[selected] @ inverse.T  # (N, 2)
        mapped = np.concatenate([texture_points, np.ones((len(texture_points), 1))], 1) @ a_to.T
        flow[selected] = mapped - points[selected][:, :2]
    target_x, target_y = xs + flow[..., 0], ys + flow[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    visible = inside & (owner_from >= 0)
    # every bilinear neighbour of the target position must belong to the same layer in frame b
    x0 = np.clip(np.floor(target_x).astype(np.int64), 0, width - 1)
    y0 = np.clip(np.floor(target_y).astype(np.int64), 0, height - 1)
    x1, y1 = np.clip(x0 + 1, 0, width - 1), np.clip(y0 + 1, 0, height - 1)
    for yy, xx in ((y0, x0), (y0, x1), (y1, x0), (y1, x1)):
        visible &= owner_to[yy, xx] == owner_from
    return flow.astype(np.float32), visible


# ----------------------------------------------------------------------------- writing clips
def _write_png_atomic(path: Path, rgb: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def clip_is_complete(clip_dir: Path, num_frames: int) -> bool:
    return (clip_dir / SCENE_FILE).is_file() and all((clip_dir / f"{i:05d}.png").is_file() for i in range(num_frames))


def write_clip(clip_dir, scene: dict) -> Path:
    """Render every frame of `scene` into `clip_dir`; scene.json is written last (completion mark)."""
    clip_dir = Path(clip_dir)
    clip_dir.mkdir(parents=True, exist_ok=True)
    for index in range(scene["num_frames"]):
        _write_png_atomic(clip_dir / f"{index:05d}.png", render_frame(scene, index))
    _write_text_atomic(clip_dir / SCENE_FILE, json.dumps(scene, indent=1))
    return clip_dir


def _clip_seed(seed: int, split: str, clip_index: int) -> int:
    stream = seed + (TEST_SEED_OFFSET if split == "test" else 0)
    return int(np.random.SeedSequence([stream, clip_index]).generate_state(1)[0])


def _write_one(args):
    clip_dir, scene = args
    return write_clip(clip_dir, scene)


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
    """Write `num_clips` clips as `root/<split>/<clip_id>/00000.png ...` + `scene.json`.

    Deterministic by (seed, split, clip index); resumable (complete clips are skipped; frames
    are written atomically and scene.json last). Returns the clip folders.
    """
    from tqdm.auto import tqdm

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    config = config or SyntheticConfig()
    root = Path(root)
    split_dir = root / split
    split_dir.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(
        root / "synthetic.json",
        json.dumps({"num_frames": num_frames, "height": height, "width": width, "seed": seed, "config": asdict(config)}, indent=1),
    )
    clip_dirs, todo = [], []
    for clip_index in range(num_clips):
        clip_dir = split_dir / f"clip_{clip_index:05d}"
        clip_dirs.append(clip_dir)
        if not clip_is_complete(clip_dir, num_frames):
            todo.append((clip_dir, generate_scene(_clip_seed(seed, split, clip_index), num_frames, height, width, config)))
    if workers > 0 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(tqdm(pool.map(_write_one, todo), total=len(todo), desc=f"synthetic {split}", disable=not progress))
    else:
        for item in tqdm(todo, desc=f"synthetic {split}", disable=not progress):
            _write_one(item)
    return clip_dirs


def default_synthetic_root(num_clips: int, num_frames: int, height: int, width: int, seed: int) -> Path:
    """Cache folder for the default synthetic set (`$IFRVP_DATA` or ~/.cache/ifrvp)."""
    base = Path(os.environ.get("IFRVP_DATA", Path.home() / ".cache" / "ifrvp"))
    key = hashlib.sha1(json.dumps([num_clips, num_frames, height, width, seed, asdict(SyntheticConfig())]).encode()).hexdigest()[:10]
    return base / f"synthetic_{key}"
