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
import math
import os
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ifrvp_core.atomic import write_text_atomic
from ifrvp_core.data.io import write_image_atomic

SCENE_FILE = "scene.json"
INFO_FILE = "synthetic.json"
SCENE_FORMAT = "ifrvp-synthetic-scene"
SCENE_VERSION = 1
TEST_SEED_OFFSET = 1_000_003  # the test split draws clip seeds from its own stream
TEXTURE_KINDS = ("noise", "stripes", "checker", "gradient")
SHAPES = ("ellipse", "rectangle", "polygon")
_SUPERSAMPLE = 4  # shape masks are rasterised at 4x and area-averaged: antialiased edges


@dataclass
class SyntheticConfig:
    """Generator knobs. Speeds are in pixels per frame at 128 px (scaled with min(H, W) / 128).

    Defaults give sprites moving 1-4.5 px/frame (a quarter of them 6-10 px/frame), a camera
    panning 0.5-2.5 px/frame with slight zoom, so copying the last frame is clearly beaten by a
    model that understands motion.
    """

    min_sprites: int = 3
    max_sprites: int = 6
    sprite_size: tuple[float, float] = (0.25, 0.55)  # side as a fraction of min(H, W)
    camera_speed: tuple[float, float] = (0.5, 2.5)
    camera_acceleration: float = 0.08  # max |a| per axis (px / frame^2)
    zoom_rate: float = 0.004  # max |d log(zoom) / frame|; 0 disables zoom
    sprite_speed: tuple[float, float] = (1.0, 4.5)
    fast_sprite_probability: float = 0.25
    fast_sprite_speed: tuple[float, float] = (6.0, 10.0)
    accelerating_probability: float = 0.5
    sprite_acceleration: float = 0.4  # max |a| per axis (px / frame^2) of accelerating sprites
    rotation_speed: float = 0.05  # max |rad / frame|
    scale_rate: float = 0.01  # max |relative size change / frame|
    lighting_change: float = 0.0  # amplitude of a global gain oscillation (0.1 = +-10 %)
    noise_std: float = 0.0  # Gaussian sensor noise, in [0, 1] units

    def __post_init__(self):
        for name in ("sprite_size", "camera_speed", "sprite_speed", "fast_sprite_speed"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1] or value[0] < 0:
                raise ValueError(f"SyntheticConfig.{name} must be a (low, high) pair with 0 <= low <= high, got {value}")
            setattr(self, name, value)
        if not 0 <= self.min_sprites <= self.max_sprites:
            raise ValueError(f"SyntheticConfig needs 0 <= min_sprites <= max_sprites, got {self.min_sprites}, {self.max_sprites}")
        if not 0 < self.sprite_size[1] <= 1:
            raise ValueError(f"SyntheticConfig.sprite_size must be within (0, 1], got {self.sprite_size}")
        for name in ("fast_sprite_probability", "accelerating_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SyntheticConfig.{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("camera_acceleration", "zoom_rate", "sprite_acceleration", "rotation_speed", "scale_rate", "lighting_change", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict) -> "SyntheticConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticConfig keys {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class Clip:
    """A rendered synthetic clip: `scene` (JSON-serialisable) and `frames` uint8 (T, H, W, 3) RGB."""

    scene: dict
    frames: np.ndarray = field(repr=False)

    def flow(self, from_index, to_index) -> tuple[np.ndarray, np.ndarray]:
        """Exact flow (H, W, 2) float32 and visibility (H, W) bool, see `synthetic_flow`."""
        return synthetic_flow(self.scene, from_index, to_index)


# ----------------------------------------------------------------------------- textures
def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth colour noise (H, W, 3) in [0, 1] with features about `cell` pixels wide."""
    grid = rng.random((max(int(height / cell) + 2, 2), max(int(width / cell) + 2, 2), 3)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def make_texture(kind: str, seed: int, height: int, width: int) -> np.ndarray:
    """A procedural colour texture, float32 (H, W, 3) in [0, 1].

    `kind` picks the dominant pattern (noise, stripes, checker, gradient); every kind also carries
    multi-scale noise and fine detail so that motion is observable everywhere (no flat regions:
    the aperture problem stays local). The result is band-limited (Gaussian, sigma 0.8 px) so that
    bilinear resampling of rendered frames reproduces texture values almost exactly.
    """
    if kind not in TEXTURE_KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colour_a, colour_b = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(14, 28)  # long periods: bilinear-safe
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif kind == "checker":
        period = rng.uniform(8, 16)  # half-period of the sine product = one checker square
        pattern = 0.5 + 0.5 * np.tanh(2.0 * np.sin(np.pi * xx / period) * np.sin(np.pi * yy / period))
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        pattern = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    else:
        pattern = _value_noise(rng, height, width, rng.uniform(10, 24))[..., 0]
    coloured = pattern[..., None] * colour_a + (1.0 - pattern[..., None]) * colour_b
    coarse = 0.6 * _value_noise(rng, height, width, 28.0) + 0.4 * _value_noise(rng, height, width, 9.0)
    fine = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.0)
    fine = 0.5 + (fine - 0.5) * 2.5  # restore contrast lost by the blur
    texture = 0.5 * coloured + 0.3 * coarse + 0.2 * fine
    return np.clip(cv2.GaussianBlur(texture, (0, 0), 0.8), 0.0, 1.0).astype(np.float32)


def shape_vertices(shape: str, rng: np.random.Generator, size: int) -> list[list[float]]:
    """Polygon vertices (x, y) in a (size, size) sprite lattice for an ellipse, rectangle or polygon."""
    centre, half = (size - 1) / 2.0, (size - 1) / 2.0
    if shape == "ellipse":
        rx, ry = half * rng.uniform(0.55, 0.95), half * rng.uniform(0.45, 0.95)
        angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        points = np.stack([centre + rx * np.cos(angles), centre + ry * np.sin(angles)], 1)
    elif shape == "rectangle":
        rx, ry = half * rng.uniform(0.5, 0.95), half * rng.uniform(0.4, 0.95)
        points = np.array([[centre - rx, centre - ry], [centre + rx, centre - ry], [centre + rx, centre + ry], [centre - rx, centre + ry]])
    elif shape == "polygon":  # star-shaped polygon (may be concave)
        count = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = half * rng.uniform(0.45, 0.95, count)
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], 1)
    else:
        raise ValueError(f"unknown sprite shape {shape!r}; expected one of {SHAPES}")
    return np.round(points, 4).tolist()


def rasterise_shape(vertices, height: int, width: int) -> np.ndarray:
    """Antialiased coverage float32 (H, W) in [0, 1] of a polygon (x, y lattice coordinates).

    Rasterised at 4x with 8 fractional bits and area-averaged: interior pixels are exactly 1,
    outside pixels exactly 0, edge pixels fractional.
    """
    points = (np.asarray(vertices, np.float64) + 0.5) * _SUPERSAMPLE - 0.5  # pixel centres -> 4x lattice
    big = np.zeros((height * _SUPERSAMPLE, width * _SUPERSAMPLE), np.uint8)
    cv2.fillPoly(big, [np.round(points * 256).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=8)
    return cv2.resize(big.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------- scenes
def _random_direction(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return rng.uniform(low, high) * np.array([np.cos(angle), np.sin(angle)])


def _camera(scene: dict, t: float) -> tuple[np.ndarray, float]:
    """Camera position (2,) in world pixels and zoom factor at time t."""
    camera = scene["camera"]
    position = np.asarray(camera["position"], np.float64) + np.asarray(camera["velocity"], np.float64) * t + 0.5 * np.asarray(camera["acceleration"], np.float64) * t * t
    return position, math.exp(camera["zoom_rate"] * t)


def _frame_to_world(scene: dict, t: float, points: np.ndarray) -> np.ndarray:
    centre = np.array([(scene["width"] - 1) / 2.0, (scene["height"] - 1) / 2.0])
    camera, zoom = _camera(scene, t)
    return (points - centre) / zoom + camera + centre


def generate_scene(seed: int, num_frames: int, height: int, width: int, config: SyntheticConfig | None = None) -> dict:
    """Draw a random scene: JSON-serialisable parameters that determine every frame and flow.

    Schema (all lengths in pixels of the (height, width) frame, time in frames):
      camera: position, velocity, acceleration (x, y) and zoom_rate (zoom(t) = exp(zoom_rate t),
        about the frame centre).
      background: texture kind/seed, texture `size` (h, w) and `origin` (x, y): texture lattice
        point u is world point u - origin.
      sprites (back to front by `depth`): shape, vertices (polygon in the (h, w) = `size` lattice),
        texture kind/seed, position/velocity/acceleration (world, p(t) = p0 + v t + a t^2 / 2,
        of the lattice centre), angle/angular_velocity/angular_acceleration, scale/scale_rate
        (scale(t) = scale (1 + scale_rate t)).
      lighting: gain(t) = 1 + amplitude sin(2 pi t / period + phase); noise_std.
    """
    config = config or SyntheticConfig()
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if int(value) != value or value < (1 if name == "num_frames" else 8):
            raise ValueError(f"generate_scene: {name} must be an integer >= {1 if name == 'num_frames' else 8}, got {value!r}")
    rng = np.random.default_rng(seed)
    unit = min(height, width) / 128.0  # motions and sizes scale with the frame
    zoom_rate = float(rng.uniform(-config.zoom_rate, config.zoom_rate)) if config.zoom_rate else 0.0
    scene = {
        "format": SCENE_FORMAT,
        "version": SCENE_VERSION,
        "seed": int(seed),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "camera": {
            "position": [0.0, 0.0],
            "velocity": (_random_direction(rng, *config.camera_speed) * unit).tolist(),
            "acceleration": (rng.uniform(-1, 1, 2) * config.camera_acceleration * unit).tolist(),
            "zoom_rate": zoom_rate,
        },
    }
    # Background lattice: cover every world point the camera sees in [0, T-1] with a margin.
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    seen = np.concatenate([_frame_to_world(scene, t, corners) for t in np.linspace(0, max(num_frames - 1, 0), 4 * num_frames + 1)])
    low, high = np.floor(seen.min(0)) - 4, np.ceil(seen.max(0)) + 4
    scene["background"] = {
        "texture_kind": str(rng.choice(TEXTURE_KINDS)),
        "texture_seed": int(rng.integers(2**31)),
        "size": [int(high[1] - low[1]) + 1, int(high[0] - low[0]) + 1],
        "origin": [float(-low[0]), float(-low[1])],
    }
    sprites = []
    middle = (num_frames - 1) / 2.0
    for depth in range(int(rng.integers(config.min_sprites, config.max_sprites + 1))):
        size = max(int(round(min(height, width) * rng.uniform(*config.sprite_size))), 6)
        shape = str(rng.choice(SHAPES))
        fast = rng.random() < config.fast_sprite_probability
        velocity = _random_direction(rng, *(config.fast_sprite_speed if fast else config.sprite_speed)) * unit
        acceleration = rng.uniform(-1, 1, 2) * config.sprite_acceleration * unit if rng.random() < config.accelerating_probability else np.zeros(2)
        # place the sprite somewhere in view at the middle of the clip, then solve for p0
        seen_at = np.array([rng.uniform(0.1, 0.9) * (width - 1), rng.uniform(0.1, 0.9) * (height - 1)])
        world_middle = _frame_to_world(scene, middle, seen_at[None])[0]
        position = world_middle - velocity * middle - 0.5 * acceleration * middle**2
        angular_velocity = rng.uniform(-1, 1) * config.rotation_speed
        sprites.append(
            {
                "shape": shape,
                "vertices": shape_vertices(shape, rng, size),
                "size": [size, size],
                "texture_kind": str(rng.choice(TEXTURE_KINDS)),
                "texture_seed": int(rng.integers(2**31)),
                "depth": depth,
                "position": position.tolist(),
                "velocity": velocity.tolist(),
                "acceleration": acceleration.tolist(),
                "angle": float(rng.uniform(0, 2 * np.pi)),
                "angular_velocity": float(angular_velocity),
                "angular_acceleration": float(rng.uniform(-0.1, 0.1) * abs(angular_velocity)),
                "scale": float(rng.uniform(0.85, 1.15)),
                "scale_rate": float(rng.uniform(-1, 1) * config.scale_rate),
            }
        )
    scene["sprites"] = sprites
    scene["lighting"] = {
        "amplitude": float(config.lighting_change),
        "period": float(rng.uniform(6, 14)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }
    scene["noise_std"] = float(config.noise_std)
    return scene


_SCENE_KEYS = {
    "": ("num_frames", "height", "width", "camera", "background", "sprites", "lighting", "noise_std"),
    "camera": ("position", "velocity", "acceleration", "zoom_rate"),
    "background": ("texture_kind", "texture_seed", "size", "origin"),
    "sprite": ("shape", "vertices", "size", "texture_kind", "texture_seed", "depth", "position", "velocity",
               "acceleration", "angle", "angular_velocity", "angular_acceleration", "scale", "scale_rate"),
    "lighting": ("amplitude", "period", "phase"),
}


def check_scene(scene: dict, source: str = "scene") -> dict:
    """Validate a scene dict; raises ValueError naming `source` and the missing/bad key."""
    if not isinstance(scene, dict):
        raise ValueError(f"{source}: a scene must be a dict, got {type(scene).__name__}")
    if scene.get("format", SCENE_FORMAT) != SCENE_FORMAT or scene.get("version", SCENE_VERSION) != SCENE_VERSION:
        raise ValueError(f"{source}: unsupported scene format {scene.get('format')!r} version {scene.get('version')!r} "
                         f"(expected {SCENE_FORMAT!r} version {SCENE_VERSION})")
    parts = [("", scene)] + [(k, scene.get(k)) for k in ("camera", "background", "lighting")]
    parts += [("sprite", s) for s in scene.get("sprites", [])]
    for index, (part, values) in enumerate(parts):
        where = f"sprites[{index - 4}]" if part == "sprite" else (part or "top level")
        if not isinstance(values, dict):
            raise ValueError(f"{source}: scene {where} must be a dict, got {values!r}")
        missing = [k for k in _SCENE_KEYS[part] if k not in values]
        if missing:
            raise ValueError(f"{source}: scene {where} is missing key(s) {missing}")
    for part, values in [("sprite", s) for s in scene["sprites"]] + [("background", scene["background"])]:
        if values["texture_kind"] not in TEXTURE_KINDS:
            raise ValueError(f"{source}: unknown texture_kind {values['texture_kind']!r} in {part}; expected one of {TEXTURE_KINDS}")
        if len(values["size"]) != 2 or min(values["size"]) < 2:
            raise ValueError(f"{source}: {part} size must be [height, width] >= 2, got {values['size']!r}")
    if scene["height"] < 2 or scene["width"] < 2 or scene["num_frames"] < 1:
        raise ValueError(f"{source}: bad frame geometry num_frames={scene['num_frames']} height={scene['height']} width={scene['width']}")
    return scene


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
    camera, zoom = _camera(scene, t)
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
    assets = [(make_texture(background["texture_kind"], background["texture_seed"], *background["size"]), None)]
    for sprite in _sorted_sprites(scene):
        size = sprite["size"]
        texture = make_texture(sprite["texture_kind"], sprite["texture_seed"], *size)
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
    from tqdm.auto import tqdm

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if num_clips < 0:
        raise ValueError(f"num_clips must be >= 0, got {num_clips}")
    config = config or SyntheticConfig()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    generator = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "num_frames": int(num_frames), "height": int(height),
                 "width": int(width), "seed": int(seed), "test_seed_offset": TEST_SEED_OFFSET,
                 "config": json.loads(json.dumps(asdict(config)))}
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

    clip_dirs, todo = [], []
    for clip_index in range(num_clips):
        clip_dir = root / split / f"clip_{clip_index:05d}"
        clip_dirs.append(clip_dir)
        scene = generate_scene(clip_seed(seed, split, clip_index), num_frames, height, width, config)
        if not clip_is_complete(clip_dir, num_frames, scene):
            todo.append((clip_dir, scene))
    if workers > 0 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            list(tqdm(pool.map(_write_one, todo), total=len(todo), desc=f"synthetic {split}", disable=not progress))
    else:
        for item in tqdm(todo, desc=f"synthetic {split}", disable=not progress):
            _write_one(item)
    return clip_dirs


def default_synthetic_root(num_clips: int, num_frames: int, height: int, width: int, seed: int) -> Path:
    """Cache folder for the default synthetic set (`$IFRVP_DATA` or ~/.cache/ifrvp)."""
    base = Path(os.environ.get("IFRVP_DATA", Path.home() / ".cache" / "ifrvp"))
    key = json.dumps([num_clips, num_frames, height, width, seed, asdict(SyntheticConfig()), SCENE_VERSION])
    return base / f"synthetic_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


__all__ = [
    "Clip",
    "SyntheticConfig",
    "check_scene",
    "clip_is_complete",
    "clip_seed",
    "default_synthetic_root",
    "generate_clip",
    "generate_scene",
    "layer_transforms",
    "load_scene",
    "make_texture",
    "rasterise_shape",
    "render_frame",
    "synthetic_flow",
    "write_clip",
    "write_synthetic",
]
