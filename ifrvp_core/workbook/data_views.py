"""Notebook 01 (data preparation): make the data ready, and show what is in it."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from data_prep import compute_teacher_flow, verify_dataset, video_to_frames
from ifrvp_core.data import DataError, build_dataset, ensure_synthetic, read_flow
from ifrvp_core.metrics import psnr
from ifrvp_core.visualisation import to_numpy_image
from ifrvp_core.workbook.profiles import synthetic_data_root, write_json

# The splits of the datasets whose split names are fixed by their protocol (`build_dataset`
# rejects any other name); every other dataset may have train, val and test.
PROTOCOL_SPLITS = {"kitti": ("train", "test"), "ucf101": ("train", "test"), "davis17": ("train", "val")}
SPLITS = ("train", "val", "test")


def prepare_dataset(dataset: str, data_root, work_dir, settings: dict, video=None, teacher_flow: bool = True, progress: bool = True) -> dict:
    """Make the data ready for training and evaluation; returns (and writes) `work_dir/dataset.json`.

    - synthetic: generates the built-in set into `data_root` (default `work_dir/data/synthetic`).
    - a video file (`video`): decoded once into `data_root` (default `work_dir/data/<video stem>`)
      and used as the `frames` dataset.
    - vimeo90k / gopro / cityscapes / frames: `data_root` must exist; its layout is verified and
      every problem is listed before anything fails.
    Teacher flows (OpenCV DIS) are computed next to the frames unless `teacher_flow` is False.
    """
    work_dir = Path(work_dir)
    started = time.perf_counter()
    if video is not None:
        dataset = "frames"
        video = Path(video)
        if not video.is_file():
            raise FileNotFoundError(f"video parameter: file not found: {video}")
        data_root = Path(data_root) if data_root else work_dir / "data" / video.stem
        video_to_frames(video, data_root, progress=progress)
    elif dataset == "synthetic":
        data_root = Path(data_root) if data_root else synthetic_data_root(work_dir)
        ensure_synthetic(data_root, progress=progress, **settings.get("synthetic", {}))
    else:
        data_root = verified_data_root(dataset, data_root, progress)
    flows_written = 0
    if teacher_flow:
        flows_written = compute_teacher_flow(dataset, data_root, progress=progress)
    info = {
        "dataset": dataset, "data_root": str(Path(data_root).resolve()), "teacher_flow": bool(teacher_flow),
        "teacher_flows_written": flows_written, "prepare_seconds": time.perf_counter() - started,
        "splits": split_sizes(dataset, data_root),
    }
    write_json(work_dir / "dataset.json", info)
    return info


def verified_data_root(dataset: str, data_root, progress: bool = True) -> Path:
    """`data_root` of a dataset in its published layout, once `data_prep verify` found no problem (they are printed)."""
    if data_root is None:
        raise ValueError(f"dataset {dataset!r} needs the data_root parameter (the folder in its published layout)")
    data_root = Path(data_root).expanduser()
    if not data_root.exists():
        raise FileNotFoundError(f"data_root for {dataset}: folder not found: {data_root}")
    report = verify_dataset(dataset, data_root, progress=progress)
    print(report.summary())
    if not report.ok:
        raise ValueError(f"{dataset} at {data_root} has problems (listed above); fix them or run data_prep verify")
    return data_root


def _clip_of(window):
    """The clip a window comes from: its folder of frames, or its video file."""
    if window.clip_dir or window.video:
        return window.clip_dir or window.video
    first = window.frames[0]
    return first.parent if isinstance(first, Path) else first[0]


def split_sizes(dataset: str, data_root) -> dict:
    """{split: {"windows": n, "clips": m}} for the splits that exist.

    A split is absent when the data layer finds no files for it (`DataError`: no split folder, no
    list file, no windows); any other error (a bug, an unreadable disk) is raised.
    """
    sizes = {}
    for split in PROTOCOL_SPLITS.get(dataset, SPLITS):
        try:
            data = build_dataset(dataset, data_root, split, teacher_flow=False)
        except DataError:  # this split does not exist for this dataset
            continue
        clips = {_clip_of(w) for w in data.windows}
        sizes[split] = {"windows": len(data), "clips": len(clips)}
    return sizes


def sample_grid_figure(dataset, indices, title: str = ""):
    """Rows: samples; columns: context frames then target frames, each titled with its time."""
    samples = [dataset[i] for i in indices]
    k, n = samples[0]["context"].shape[0], samples[0]["target"].shape[0]
    height, width = samples[0]["context"].shape[-2:]
    fig = Figure(figsize=(2.4 * (k + n), 2.4 * len(samples) * height / width + 0.4), constrained_layout=True)
    axes = fig.subplots(len(samples), k + n, squeeze=False)
    for row, sample in enumerate(samples):
        for column in range(k + n):
            ax = axes[row, column]
            if column < k:
                ax.imshow(to_numpy_image(sample["context"][column]))
                ax.set_title(f"context t={column - k + 2}", fontsize=8)
            else:
                j = column - k
                ax.imshow(to_numpy_image(sample["target"][j]))
                ax.set_title(f"target t={float(sample['target_times'][j]):g}", fontsize=8, color="tab:red")
            ax.axis("off")
        axes[row, 0].text(-0.05, 0.5, sample.get("name", str(indices[row])), transform=axes[row, 0].transAxes,
                          rotation=90, va="center", ha="right", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def frame_statistics(dataset, max_samples: int = 64) -> list[dict]:
    """Per-channel mean/std, size range and the copy-last-frame PSNR over the first samples."""
    count = min(len(dataset), max_samples)
    sums, squares, pixels = np.zeros(3), np.zeros(3), 0
    sizes, copy_psnr = set(), []
    for i in range(count):
        sample = dataset[i]
        frames = torch.cat([sample["context"], sample["target"]]).double()
        sums += frames.sum(dim=(0, 2, 3)).numpy()
        squares += (frames ** 2).sum(dim=(0, 2, 3)).numpy()
        pixels += frames.shape[0] * frames.shape[2] * frames.shape[3]
        sizes.add(tuple(frames.shape[-2:]))
        copy_psnr.append(float(psnr(sample["context"][-1:], sample["target"][:1])[0]))
    mean = sums / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean ** 2, 0))
    rows = [{"statistic": f"{name} mean / std", "value": f"{m:.3f} / {s:.3f}"} for name, m, s in zip("RGB", mean, std)]
    rows.append({"statistic": "frame sizes (H x W)", "value": ", ".join(f"{h}x{w}" for h, w in sorted(sizes))})
    rows.append({"statistic": "samples measured", "value": count})
    rows.append({"statistic": "copy-last PSNR at t+1 (median, dB)", "value": f"{statistics.median(copy_psnr):.2f}"})
    return rows


def teacher_flow_magnitudes(data_root, max_files: int = 400) -> np.ndarray:
    """Flow magnitudes (pixels) from the teacher flow files under `data_root/teacher_flow`."""
    files = sorted(Path(data_root, "teacher_flow").rglob("*.flo")) + sorted(Path(data_root, "teacher_flow").rglob("*.npy"))
    if not files:
        return np.zeros(0, np.float32)
    step = max(1, len(files) // max_files)
    values = [np.linalg.norm(read_flow(path), axis=-1).ravel()[::7] for path in files[::step]]
    return np.concatenate(values)


def motion_histogram_figure(magnitudes: np.ndarray, title: str = "motion magnitude (teacher flow, target -> context)"):
    fig = Figure(figsize=(7, 3), constrained_layout=True)
    ax = fig.subplots()
    if magnitudes.size == 0:
        ax.text(0.5, 0.5, "no teacher flow found", ha="center", va="center")
        ax.axis("off")
        return fig
    ax.hist(magnitudes, bins=60, color="tab:blue", log=True)
    for q, style in ((50, "--"), (95, ":")):
        value = np.percentile(magnitudes, q)
        ax.axvline(value, color="k", linestyle=style, label=f"{q}th percentile {value:.1f} px")
    ax.set_xlabel("flow magnitude (pixels)")
    ax.set_ylabel("pixels (log)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return fig


__all__ = [
    "frame_statistics", "motion_histogram_figure", "prepare_dataset", "sample_grid_figure", "split_sizes",
    "teacher_flow_magnitudes", "verified_data_root",
]
