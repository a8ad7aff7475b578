"""Synthetic scenes: the JSON-serialisable parameters that determine a synthetic clip's every frame and flow.

A scene is drawn from a seed (`generate_scene`): a textured background seen by a moving, slightly
zooming camera, and 3-6 textured sprites (ellipses, rectangles, polygons) with their own motion,
rotation and scale polynomials, back to front by depth. Textures (`make_texture`) and shape masks
(`rasterise_shape`) are regenerated from their seeds and vertices when a frame is rendered
(`ifrvp_core.data.synthetic_render`). See `ifrvp_core.data.synthetic` for the whole picture.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

SCENE_FILE = "scene.json"
SCENE_FORMAT = "ifrvp-synthetic-scene"
SCENE_VERSION = 1
TEXTURE_KINDS = ("noise", "stripes", "checker", "gradient")
# A layer textured with a crop of a real image (`SyntheticConfig.texture_images`); its scene entry
# carries `texture_image` = {"path", "box" [x0, y0, x1, y1], "flip"}.
IMAGE_TEXTURE = "image"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
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
    # Real textures: folders of frames (or image files) whose random crops texture the layers, so
    # that the exact-flow scenes look like footage; none by default (procedural textures only).
    texture_images: tuple[str, ...] = ()
    image_texture_probability: float = 1.0  # share of layers textured from `texture_images`

    def __post_init__(self):
        if isinstance(self.texture_images, (str, Path)):
            self.texture_images = (self.texture_images,)
        self.texture_images = tuple(str(Path(path).expanduser().resolve()) for path in self.texture_images)
        for path in self.texture_images:
            if not image_files(path):
                raise ValueError(f"SyntheticConfig.texture_images: no {'/'.join(IMAGE_SUFFIXES)} images at {path}")
        if not 0.0 <= self.image_texture_probability <= 1.0:
            raise ValueError(f"SyntheticConfig.image_texture_probability must be a probability in [0, 1], "
                             f"got {self.image_texture_probability}")
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
        return cls(**values)  # __post_init__ turns a JSON list of texture_images into a tuple

    def to_dict(self) -> dict:
        """JSON-ready fields; the real-texture fields only when `texture_images` is set, so records of
        procedural sets (synthetic.json, cache keys) stay what earlier versions wrote."""
        values = json.loads(json.dumps(asdict(self)))
        if not self.texture_images:
            values.pop("texture_images")
            values.pop("image_texture_probability")
        return values


@lru_cache(maxsize=64)
def image_files(path: str) -> tuple[str, ...]:
    """The images of `path` (an image file, or a folder searched recursively), sorted; () if none."""
    source = Path(path)
    if source.is_file():
        return (str(source),) if source.suffix.lower() in IMAGE_SUFFIXES else ()
    if not source.is_dir():
        return ()
    return tuple(sorted(str(f) for f in source.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES))


def _read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"synthetic image texture: cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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


@lru_cache(maxsize=1024)
def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file (read once per file: every layer of every scene draws from the same few)."""
    return _read_rgb(path).shape[:2]


def draw_image_texture(rng: np.random.Generator, config: SyntheticConfig, height: int, width: int) -> dict:
    """A random crop of a random `texture_images` image for a (height, width) texture lattice.

    The crop has the lattice's aspect ratio and covers 40-100 % of the image's shorter fit, so a
    layer shows real detail at about the image's own scale or magnified (never below 1/2.5).
    """
    files = [f for folder in config.texture_images for f in image_files(folder)]
    path = files[int(rng.integers(len(files)))]
    image_height, image_width = image_size(path)
    fit = min(image_height / height, image_width / width)  # the largest crop of this aspect
    scale = fit * rng.uniform(0.4, 1.0)
    crop_w, crop_h = max(2.0, width * scale), max(2.0, height * scale)
    x0, y0 = rng.uniform(0, image_width - crop_w), rng.uniform(0, image_height - crop_h)
    return {"path": path, "box": [round(x0, 3), round(y0, 3), round(x0 + crop_w, 3), round(y0 + crop_h, 3)],
            "flip": bool(rng.random() < 0.5)}


def image_texture(spec: dict, height: int, width: int) -> np.ndarray:
    """The texture of an `image` layer: its crop box resampled to (height, width), float32 (H, W, 3) in [0, 1].

    Band-limited like the procedural textures (Gaussian, sigma 0.8 px) so that bilinear resampling
    of rendered frames reproduces texture values almost exactly.
    """
    image = _read_rgb(spec["path"]).astype(np.float32) / 255.0
    x0, y0, x1, y1 = (float(v) for v in spec["box"])
    # the crop box's corners map to the lattice's outer pixel edges
    matrix = np.array([[(x1 - x0) / width, 0.0, x0 + 0.5 * (x1 - x0) / width - 0.5],
                       [0.0, (y1 - y0) / height, y0 + 0.5 * (y1 - y0) / height - 0.5]])
    shrink = max((x1 - x0) / width, (y1 - y0) / height)
    if shrink > 1.0:  # area-average before a minifying warp (no aliasing)
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * shrink)
    texture = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT)
    if spec.get("flip"):
        texture = texture[:, ::-1]
    return np.clip(cv2.GaussianBlur(np.ascontiguousarray(texture), (0, 0), 0.8), 0.0, 1.0).astype(np.float32)


def layer_texture(layer: dict, height: int, width: int) -> np.ndarray:
    """A background's or sprite's texture (H, W, 3) float32 from its scene entry (procedural or image)."""
    if layer["texture_kind"] == IMAGE_TEXTURE:
        return image_texture(layer["texture_image"], height, width)
    return make_texture(layer["texture_kind"], layer["texture_seed"], height, width)


def _texture_entry(rng: np.random.Generator, config: SyntheticConfig, height: int, width: int) -> dict:
    """texture_kind and texture_seed (and texture_image for a real texture) of one layer.

    Without `texture_images` this draws exactly what it always drew, so procedural scenes stay
    identical for a seed.
    """
    entry = {"texture_kind": str(rng.choice(TEXTURE_KINDS)), "texture_seed": int(rng.integers(2**31))}
    if config.texture_images and rng.random() < config.image_texture_probability:
        entry = {"texture_kind": IMAGE_TEXTURE, "texture_seed": entry["texture_seed"],
                 "texture_image": draw_image_texture(rng, config, height, width)}
    return entry


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


def camera_at(scene: dict, t: float) -> tuple[np.ndarray, float]:
    """Camera position (2,) in world pixels and zoom factor at time t."""
    camera = scene["camera"]
    position = np.asarray(camera["position"], np.float64) + np.asarray(camera["velocity"], np.float64) * t + 0.5 * np.asarray(camera["acceleration"], np.float64) * t * t
    return position, math.exp(camera["zoom_rate"] * t)


def _frame_to_world(scene: dict, t: float, points: np.ndarray) -> np.ndarray:
    centre = np.array([(scene["width"] - 1) / 2.0, (scene["height"] - 1) / 2.0])
    camera, zoom = camera_at(scene, t)
    return (points - centre) / zoom + camera + centre


def _draw_camera(rng: np.random.Generator, config: SyntheticConfig, unit: float, zoom_rate: float) -> dict:
    return {
        "position": [0.0, 0.0],
        "velocity": (_random_direction(rng, *config.camera_speed) * unit).tolist(),
        "acceleration": (rng.uniform(-1, 1, 2) * config.camera_acceleration * unit).tolist(),
        "zoom_rate": zoom_rate,
    }


def _draw_background(rng: np.random.Generator, config: SyntheticConfig, scene: dict, num_frames: int, height: int, width: int) -> dict:
    """Background lattice: cover every world point the camera sees in [0, T-1] with a margin."""
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    seen = np.concatenate([_frame_to_world(scene, t, corners) for t in np.linspace(0, max(num_frames - 1, 0), 4 * num_frames + 1)])
    low, high = np.floor(seen.min(0)) - 4, np.ceil(seen.max(0)) + 4
    size = [int(high[1] - low[1]) + 1, int(high[0] - low[0]) + 1]
    return {**_texture_entry(rng, config, *size), "size": size, "origin": [float(-low[0]), float(-low[1])]}


def _draw_sprite(rng: np.random.Generator, config: SyntheticConfig, scene: dict, depth: int, unit: float, middle: float) -> dict:
    """Sprite `depth` (back to front), placed somewhere in view at the middle of the clip."""
    height, width = scene["height"], scene["width"]
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
    vertices = shape_vertices(shape, rng, size)
    return {
        "shape": shape,
        "vertices": vertices,
        "size": [size, size],
        **_texture_entry(rng, config, size, size),
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
    Everything is drawn from one generator seeded by `seed`, in this order: zoom, camera,
    background, sprites, lighting.
    """
    config = config or SyntheticConfig()
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if int(value) != value or value < (1 if name == "num_frames" else 8):
            raise ValueError(f"generate_scene: {name} must be an integer >= {1 if name == 'num_frames' else 8}, got {value!r}")
    rng = np.random.default_rng(seed)
    unit = min(height, width) / 128.0  # motions and sizes scale with the frame
    zoom_rate = float(rng.uniform(-config.zoom_rate, config.zoom_rate)) if config.zoom_rate else 0.0
    scene = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "seed": int(seed), "num_frames": int(num_frames), "height": int(height),
             "width": int(width), "camera": _draw_camera(rng, config, unit, zoom_rate)}
    scene["background"] = _draw_background(rng, config, scene, num_frames, height, width)
    middle = (num_frames - 1) / 2.0
    sprite_count = int(rng.integers(config.min_sprites, config.max_sprites + 1))
    scene["sprites"] = [_draw_sprite(rng, config, scene, depth, unit, middle) for depth in range(sprite_count)]
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
        if values["texture_kind"] == IMAGE_TEXTURE:
            image = values.get("texture_image")
            if not isinstance(image, dict) or not {"path", "box"} <= set(image) or len(image["box"]) != 4:
                raise ValueError(f"{source}: {part} texture_kind {IMAGE_TEXTURE!r} needs texture_image = "
                                 f"{{'path', 'box': [x0, y0, x1, y1]}}, got {image!r}")
        elif values["texture_kind"] not in TEXTURE_KINDS:
            raise ValueError(f"{source}: unknown texture_kind {values['texture_kind']!r} in {part}; "
                             f"expected one of {TEXTURE_KINDS + (IMAGE_TEXTURE,)}")
        if len(values["size"]) != 2 or min(values["size"]) < 2:
            raise ValueError(f"{source}: {part} size must be [height, width] >= 2, got {values['size']!r}")
    if scene["height"] < 2 or scene["width"] < 2 or scene["num_frames"] < 1:
        raise ValueError(f"{source}: bad frame geometry num_frames={scene['num_frames']} height={scene['height']} width={scene['width']}")
    return scene


__all__ = ["IMAGE_TEXTURE", "SCENE_FILE", "SCENE_FORMAT", "SCENE_VERSION", "SHAPES", "TEXTURE_KINDS", "SyntheticConfig", "camera_at",
           "check_scene", "draw_image_texture", "generate_scene", "image_files", "image_texture", "layer_texture", "make_texture",
           "rasterise_shape", "shape_vertices"]
