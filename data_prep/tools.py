"""video_to_frames, make_synthetic, downscale_cityscapes: resumable, atomic, with progress bars."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from ifrvp_core.data.io import DataError, VideoReader, read_image, write_image_atomic
from ifrvp_core.data.synthetic import SyntheticConfig, write_synthetic


def video_to_frames(video, out_dir, every: int = 1, max_frames: int | None = None, resize=None, progress: bool = True) -> int:
    """Decode `video` into `out_dir/00000.png ...` (streaming); existing frames are kept. Returns the count."""
    reader = VideoReader(video)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = reader.num_frames // every if max_frames is None else min(max_frames, reader.num_frames // every)
    written = 0
    bar = tqdm(total=total, desc=f"frames of {Path(video).name}", disable=not progress)
    for index, frame in enumerate(reader.iter_frames()):
        if index % every:
            continue
        if max_frames is not None and written >= max_frames:
            break
        path = out_dir / f"{written:05d}.png"
        if not path.exists():
            if resize:
                frame = cv2.resize(frame, tuple(resize), interpolation=cv2.INTER_AREA)
            write_image_atomic(path, frame)
        written += 1
        bar.update(1)
    bar.close()
    return written


def make_synthetic(root, num_clips: int = 48, test_clips: int = 12, frames: int = 12, size=(128, 192), seed: int = 0, workers: int = 0,
                   progress: bool = True, texture_images=(), image_texture_probability: float = 1.0) -> Path:
    """Write the built-in synthetic set (train and test splits) under `root`.

    `texture_images`: folders of frames (or image files) whose crops texture the layers
    (`SyntheticConfig.texture_images`); the default draws procedural textures only.
    """
    height, width = size
    config = SyntheticConfig(texture_images=tuple(texture_images), image_texture_probability=image_texture_probability)
    common = dict(num_frames=frames, height=height, width=width, seed=seed, workers=workers, progress=progress, config=config)
    write_synthetic(root, "train", num_clips, **common)
    write_synthetic(root, "test", test_clips, **common)
    return Path(root)


def _downscale_one(job) -> bool:
    source, target, size = job
    if target.exists():
        return False
    image = read_image(source)
    write_image_atomic(target, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return True


def downscale_cityscapes(root, out, size=(1024, 512), workers: int = 2, progress: bool = True) -> int:
    """Resize `leftImg8bit_sequence` once to `size` (W, H) into `out`, same layout; finished files are skipped."""
    base = Path(root) / "leftImg8bit_sequence"
    if not base.is_dir():
        raise DataError(f"Cityscapes folder not found: {base}")
    jobs = [(p, Path(out) / "leftImg8bit_sequence" / p.relative_to(base), tuple(size)) for p in sorted(base.glob("*/*/*.png"))]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(tqdm(pool.map(_downscale_one, jobs, chunksize=8), total=len(jobs), desc="downscale", disable=not progress))
    else:
        done = [_downscale_one(job) for job in tqdm(jobs, desc="downscale", disable=not progress)]
    return sum(done)
