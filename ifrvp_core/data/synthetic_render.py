"""Rendering synthetic scenes, and their exact flow and visibility.

Every layer maps its texture lattice into the frame with one affine transform per frame
(`layer_transforms`); rendering samples the texture bilinearly at exactly `A^-1 p`, so the flow
between two frames is known exactly (`synthetic_flow`). See `ifrvp_core.data.synthetic`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ifrvp_core.data.synthetic_scene import (
    SCENE_FILE,
    SyntheticConfig,
    camera_at,
    check_scene,
    generate_scene,
    layer_texture,
    rasterise_shape,
)


@dataclass
class Clip:
    """A rendered synthetic clip: `scene` (JSON-serialisable) and `frames` uint8 (T, H, W, 3) RGB."""

    scene: dict
    frames: np.ndarray = field(repr=False)

    def flow(self, from_index, to_index) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow (H, W, 2) float32 and visibility (H, W) bool, see `synthetic_flow`."""
        return synthetic_flow(self.scene, from_index, to_index)



def load_scene(clip) -> dict:
    """The scene of a clip folder (its scene.json), a scene.json path, a `Clip` or a scene dict."""
    if isinstance(clip, Clip):
        return clip.scene
    if isinstance(clip, dict):
        return check_scene(clip)
    path = Path(clip)
    if path.is_dir():
        path = path / SCENE_FILE
    try:
        scene = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"synthetic clip has no {SCENE_FILE}: {path} (incomplete clip? rerun write_synthetic)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"corrupt synthetic scene file {path}: {error}") from None
    return check_scene(scene, str(path))


def _sorted_sprites(scene: dict) -> list[dict]:
    return sorted(scene["sprites"], key=lambda sprite: sprite["depth"])  # stable: ties keep list order


def layer_transforms(scene: dict, index: float, height: int | None = None, width: int | None = None) -> list[np.ndarray]:
    """Affine maps (2, 3) float64 from each layer's texture lattice to frame pixels at time `index`.

    Layer 0 is the background, then sprites back to front. With `height`/`width` the frame is
    rendered at that size instead (pixel-area convention of image resizing).
    """
    t = float(index)
    camera, zoom = camera_at(scene, t)
    centre = np.array([(scene["width"] - 1) / 2.0, (scene["height"] - 1) / 2.0])

    def world_to_frame(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
        # frame = zoom (world - camera - centre) + centre, world = linear u + offset
        return np.concatenate([zoom * linear, (zoom * (offset - camera - centre) + centre)[:, None]], axis=1)

    background = scene["background"]
    transforms = [world_to_frame(np.eye(2), -np.asarray(background["origin"], np.float64))]
    for sprite in _sorted_sprites(scene):
        position = np.asarray(sprite["position"], np.float64) + np.asarray(sprite["velocity"], np.float64) * t + 0.5 * np.asarray(sprite["acceleration"], np.float64) * t * t
        angle = sprite["angle"] + sprite["angular_velocity"] * t + 0.5 * sprite["angular_acceleration"] * t * t
        scale = sprite["scale"] * (1.0 + sprite["scale_rate"] * t)
        rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        lattice_centre = np.array([(sprite["size"][1] - 1) / 2.0, (sprite["size"][0] - 1) / 2.0])
        transforms.append(world_to_frame(rotation, position - rotation @ lattice_centre))
    out_h, out_w = height or scene["height"], width or scene["width"]
    if (out_h, out_w) != (scene["height"], scene["width"]):
        sx, sy = out_w / scene["width"], out_h / scene["height"]
        resize = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])  # (p + .5) s - .5
        transforms = [resize[:2] @ np.vstack([a, [0.0, 0.0, 1.0]]) for a in transforms]
    return transforms


@lru_cache(maxsize=32)
def _layer_assets(scene_key: str) -> tuple:
    """(texture (h, w, 3), coverage (h, w) or None) per layer, regenerated from the seeds."""
    scene = json.loads(scene_key)
    background = scene["background"]
    assets = [(layer_texture(background, *background["size"]), None)]
    for sprite in _sorted_sprites(scene):
        size = sprite["size"]
        texture = layer_texture(sprite, *size)
        assets.append((texture, rasterise_shape(sprite["vertices"], *size)))
    return tuple(assets)


def _assets(scene: dict) -> tuple:
    return _layer_assets(json.dumps({k: scene[k] for k in ("background", "sprites")}, sort_keys=True))


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray, zero_outside: bool) -> np.ndarray:
    """Sample `image` (h, w[, C]) at float positions x, y (N,): bilinear, float32 (N[, C]).

    Outside the lattice: edge values, or 0 (`zero_outside`, each neighbour counted separately so
    a shape's coverage falls off smoothly at the lattice border).
    """
    h, w = image.shape[:2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    out = 0.0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            weight = wx * wy
            if zero_outside:
                weight = weight * ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))
            value = image[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out = out + (weight[:, None] if image.ndim == 3 else weight) * value
    return out.astype(np.float32)


def _layer_region(transform: np.ndarray, lattice_hw, height: int, width: int):
    """Frame pixel box (y0, y1, x0, x1) that a sprite lattice can touch, or None if off-frame."""
    h, w = lattice_hw
    corners = np.array([[-1, -1, 1], [w, -1, 1], [-1, h, 1], [w, h, 1]], np.float64) @ transform.T
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return None if x0 >= x1 or y0 >= y1 else (y0, y1, x0, x1)


def _render_layers(scene: dict, index: float, height: int, width: int, with_colour: bool):
    """Per layer: (region box, coverage (h, w) float32, colour (h, w, 3) float32 or None)."""
    layers = []
    for layer, ((texture, mask), transform) in enumerate(zip(_assets(scene), layer_transforms(scene, index, height, width))):
        region = (0, height, 0, width) if layer == 0 else _layer_region(transform, texture.shape[:2], height, width)
        if region is None:
            layers.append(None)
            continue
        y0, y1, x0, x1 = region
        ys, xs = np.mgrid[y0:y1, x0:x1]
        inverse = cv2.invertAffineTransform(transform)
        u = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
        v = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
        shape = (y1 - y0, x1 - x0)
        coverage = np.ones(shape, np.float32) if mask is None else _bilinear(mask, u.ravel(), v.ravel(), True).reshape(shape)
        colour = None
        if with_colour:
            colour = _bilinear(texture, u.ravel(), v.ravel(), False).reshape(*shape, 3)
        layers.append((region, coverage, colour))
    return layers


def _check_index(scene: dict, index, name: str) -> float:
    if not isinstance(index, (int, float, np.integer, np.floating)) or not 0 <= index <= scene["num_frames"] - 1:
        raise ValueError(f"{name}={index!r} is outside the clip's frames [0, {scene['num_frames'] - 1}]")
    return float(index)


def render_frame(scene: dict, index, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Frame `index` (float allowed) of `scene` as uint8 (H, W, 3) RGB; optionally at another size."""
    scene = load_scene(scene)
    t = _check_index(scene, index, "index")
    height, width = height or scene["height"], width or scene["width"]
    frame = np.zeros((height, width, 3), np.float32)
    for item in _render_layers(scene, t, height, width, with_colour=True):
        if item is None:
            continue
        (y0, y1, x0, x1), coverage, colour = item
        below = frame[y0:y1, x0:x1]
        frame[y0:y1, x0:x1] = below + coverage[..., None] * (colour - below)  # "over" compositing
    lighting = scene["lighting"]
    if lighting["amplitude"]:  # global gain: breaks brightness constancy on purpose
        frame *= 1.0 + lighting["amplitude"] * math.sin(2 * math.pi * t / lighting["period"] + lighting["phase"])
    if scene["noise_std"]:
        noise_rng = np.random.default_rng([scene.get("seed", 0), int(round(t * 1000)), height, width])
        frame += noise_rng.normal(0.0, scene["noise_std"], frame.shape).astype(np.float32)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _ownership(scene: dict, t: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """owner (H, W) int: topmost layer with any coverage; full (H, W) bool: it covers fully."""
    owner = np.zeros((height, width), np.int32)
    full = np.ones((height, width), bool)
    for layer, item in enumerate(_render_layers(scene, t, height, width, with_colour=False)):
        if item is None or layer == 0:
            continue
        (y0, y1, x0, x1), coverage, _ = item
        touched = coverage > 0
        owner[y0:y1, x0:x1][touched] = layer
        full[y0:y1, x0:x1][touched] = coverage[touched] >= 1.0
    return owner, full


def synthetic_flow(clip, from_index, to_index, height: int | None = None, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact optical flow from frame `from_index` to frame `to_index` of a synthetic clip.

    For each pixel p of frame `from_index`, the topmost layer L covering p maps it back to L's
    texture and forward to frame `to_index`: flow(p) = A_L(to) A_L(from)^-1 p - p.

    Args:
        clip: a clip folder (with scene.json), a scene.json path, a `Clip` or a scene dict.
        from_index, to_index: frame indices (floats allowed) in [0, num_frames - 1].
        height, width: compute the flow for frames rendered at this size (default: the scene's).
    Returns:
        flow: float32 (H, W, 2), pixels, channel 0 = x (right), 1 = y (down).
        visible: bool (H, W). False where p is on an antialiased sprite edge, where p + flow is
            outside the frame, or where at `to_index` any bilinear neighbour of p + flow is not
            fully covered by L as the topmost layer (occluded by a layer in front). Elsewhere
            backward-warping frame `to_index` with `flow` reproduces frame `from_index` up to
            bilinear interpolation and 8-bit rounding (lighting/noise excluded).
    """
    scene = load_scene(clip)
    t_from, t_to = _check_index(scene, from_index, "from_index"), _check_index(scene, to_index, "to_index")
    height, width = height or scene["height"], width or scene["width"]
    owner_from, full_from = _ownership(scene, t_from, height, width)
    owner_to, full_to = _ownership(scene, t_to, height, width)
    transforms_from = layer_transforms(scene, t_from, height, width)
    transforms_to = layer_transforms(scene, t_to, height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    flow = np.zeros((height, width, 2), np.float64)
    for layer in np.unique(owner_from):
        selected = owner_from == layer
        # from-frame pixels -> to-frame pixels: A_to A_from^-1 (3x3 homogeneous)
        a_from = np.vstack([transforms_from[layer], [0.0, 0.0, 1.0]])
        a_to = np.vstack([transforms_to[layer], [0.0, 0.0, 1.0]])
        motion = (a_to @ np.linalg.inv(a_from))[:2]
        px, py = xs[selected], ys[selected]
        flow[selected, 0] = motion[0, 0] * px + motion[0, 1] * py + motion[0, 2] - px
        flow[selected, 1] = motion[1, 0] * px + motion[1, 1] * py + motion[1, 2] - py
    target_x, target_y = xs + flow[..., 0], ys + flow[..., 1]
    eps = 1e-6  # float slack: a target on a pixel centre must not drag in its zero-weight neighbour
    visible = full_from & (target_x >= -eps) & (target_x <= width - 1 + eps) & (target_y >= -eps) & (target_y <= height - 1 + eps)
    x0, y0 = np.floor(target_x + eps), np.floor(target_y + eps)
    need_x1, need_y1 = target_x - x0 > eps, target_y - y0 > eps
    x0 = np.clip(x0.astype(np.int64), 0, width - 1)
    y0 = np.clip(y0.astype(np.int64), 0, height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    # every bilinear neighbour with non-zero weight must show layer L, fully, in frame `to_index`
    for yy, xx, needed in ((y0, x0, np.True_), (y0, x1, need_x1), (y1, x0, need_y1), (y1, x1, need_x1 & need_y1)):
        visible &= ((owner_to[yy, xx] == owner_from) & full_to[yy, xx]) | ~needed
    return flow.astype(np.float32), visible


def generate_clip(seed: int, num_frames: int = 12, height: int = 128, width: int = 192, config: SyntheticConfig | None = None) -> Clip:
    """Generate and render one clip deterministically from `seed`: frames uint8 (T, H, W, 3)."""
    scene = generate_scene(seed, num_frames, height, width, config)
    return Clip(scene, np.stack([render_frame(scene, i) for i in range(num_frames)]))


__all__ = ["Clip", "generate_clip", "layer_transforms", "load_scene", "render_frame", "synthetic_flow"]
