"""What the numbered notebooks call: profiles, data summaries, figures, live curves and report tables.

The notebooks stay short and readable; everything they compute lives here and is tested
(tests/test_notebooks.py runs them all through papermill with the `tiny` profile).

Profiles (the notebooks' `profile` parameter; any knob can still be overridden one by one):
- `tiny`: seconds per notebook, for the tests.
- `quick`: the default; minutes on a 2-core CPU with the built-in synthetic data, including a
  real 2-process DDP training run whose model beats copy-last-frame.
- `full`: the real datasets and the published recipe (IFRNet, 300 epochs, batch 12 per
  process, lr 1e-4 -> 1e-5) on every GPU of the machine.
"""
from __future__ import annotations

import base64
import copy
import html
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch

PROFILES: dict[str, dict] = {
    "tiny": dict(
        dataset="synthetic", synthetic=dict(train_clips=4, test_clips=2, num_frames=8, height=48, width=64),
        model_name="IFRNet_T", nproc=2, max_steps=4, epochs=1000, batch_size=2, crop_size=32, num_workers=0,
        lr_start=5e-4, lr_end=1e-5, val_samples=4, log_interval=1, eval_steps=3, eval_max_samples=4,
        latency_sizes=[(48, 64), (96, 128)], latency_repeats=1, show_samples=2, rollout_steps=3,
        ablation=dict(max_steps=3, batch_size=2, crop_size=32, val_samples=2, eval_steps=3, eval_max_samples=4),
    ),
    "quick": dict(
        dataset="synthetic", synthetic=dict(train_clips=48, test_clips=24, num_frames=12, height=128, width=192),
        model_name="IFRNet_T", nproc=2, max_steps=700, epochs=1000, batch_size=4, crop_size=96, num_workers=1,
        lr_start=5e-4, lr_end=1e-5, val_samples=48, log_interval=10, eval_steps=5, eval_max_samples=None,
        latency_sizes=[(128, 192), (256, 448)], latency_repeats=3, show_samples=3, rollout_steps=5,
        # notebook 06: every variant gets the same single-process budget on notebook 01's data
        ablation=dict(max_steps=300, batch_size=4, crop_size=96, val_samples=8, eval_steps=5, eval_max_samples=None),
    ),
    "full": dict(
        dataset="vimeo90k", synthetic=dict(), model_name="IFRNet", nproc=None, max_steps=0, epochs=300, batch_size=12,
        crop_size=224, num_workers=4, lr_start=1e-4, lr_end=1e-5, val_samples=1000, log_interval=100, eval_steps=5,
        eval_max_samples=None, latency_sizes=[(256, 448), (1024, 2048)], latency_repeats=5, show_samples=4,
        rollout_steps=5, ablation=dict(max_steps=20000, batch_size=12, crop_size=224, val_samples=200, eval_steps=5, eval_max_samples=None),
    ),
}


def profile_settings(profile: str, **overrides) -> dict:
    """The profile's settings with `overrides` (None values are ignored) applied on top."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    settings = copy.deepcopy(PROFILES[profile])
    settings["profile"] = profile
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if settings.get("nproc") is None:  # full profile: every GPU, else one process
        settings["nproc"] = max(torch.cuda.device_count(), 1)
    return settings


# ----------------------------------------------------------------------------- display helpers
def html_table(rows: list[dict], caption: str | None = None, digits: int = 3) -> str:
    """A list of dicts as an HTML table (numbers rounded), for `IPython.display.HTML`."""
    if not rows:
        return "<p><em>(empty)</em></p>"
    headers = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value):
        if isinstance(value, float):
            return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"
        if value is None:
            return "n/a"
        return html.escape(str(value))

    parts = [f"<p style='margin-bottom:2px'><b>{html.escape(caption)}</b></p>"] if caption else []
    parts.append("<table class='ifrvp'>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{cell(row.get(h, ''))}</td>" for h in headers) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def show_table(rows: list[dict], caption: str | None = None, digits: int = 3) -> None:
    from IPython.display import HTML, display

    display(HTML(html_table(rows, caption, digits)))


def show_settings(settings: dict) -> None:
    """The parameters a notebook ran with (the report hides code, so it shows them as a table)."""
    def text(value):
        if isinstance(value, (dict, list, tuple)):
            return json.dumps(value)
        return f"{value:g}" if isinstance(value, float) else value

    rows = [{"parameter": key, "value": text(value)} for key, value in settings.items()]
    show_table(rows, "parameters of this run")


def animation_html(path, width: int | None = None) -> str:
    """An <img> with the GIF inlined as base64: plays in JupyterLab and in the HTML report alike."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    size = f" width='{width}'" if width else ""
    return f"<img src='data:image/gif;base64,{data}'{size} alt='{html.escape(Path(path).name)}'/>"


def write_json(path, obj) -> Path:
    from ifrvp_core.checkpoint import write_text_atomic

    return write_text_atomic(path, json.dumps(obj, indent=1, default=str))


def read_json(path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (run the earlier notebook first, or pass its path as a parameter)")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- 01 data preparation
def prepare_dataset(dataset: str, data_root, work_dir, settings: dict, video=None, teacher_flow: bool = True, progress: bool = True) -> dict:
    """Make the data ready for training and evaluation; returns (and writes) `work_dir/dataset.json`.

    - synthetic: generates the built-in set into `data_root` (default `work_dir/data/synthetic`).
    - a video file (`video`): decoded once into `data_root` (default `work_dir/data/<video stem>`)
      and used as the `frames` dataset.
    - vimeo90k / gopro / cityscapes / frames: `data_root` must exist; its layout is verified and
      every problem is listed before anything fails.
    Teacher flows (OpenCV DIS) are computed next to the frames unless `teacher_flow` is False.
    """
    from data_prep import compute_teacher_flow, verify_dataset, video_to_frames
    from ifrvp_core.data import ensure_synthetic

    work_dir = Path(work_dir)
    started = time.perf_counter()
    report = None
    if video is not None:
        dataset = "frames"
        video = Path(video)
        if not video.is_file():
            raise FileNotFoundError(f"video parameter: file not found: {video}")
        data_root = Path(data_root) if data_root else work_dir / "data" / video.stem
        video_to_frames(video, data_root, progress=progress)
    elif dataset == "synthetic":
        data_root = Path(data_root) if data_root else work_dir / "data" / "synthetic"
        ensure_synthetic(data_root, progress=progress, **settings.get("synthetic", {}))
    else:
        if data_root is None:
            raise ValueError(f"dataset {dataset!r} needs the data_root parameter (the folder in its published layout)")
        data_root = Path(data_root).expanduser()
        if not data_root.exists():
            raise FileNotFoundError(f"data_root for {dataset}: folder not found: {data_root}")
        report = verify_dataset(dataset, data_root, progress=progress)
        print(report.summary())
        if not report.ok:
            raise ValueError(f"{dataset} at {data_root} has problems (listed above); fix them or run data_prep verify")
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


def _clip_of(window):
    """The clip a window comes from: its folder of frames, or its video file."""
    if window.clip_dir or window.video:
        return window.clip_dir or window.video
    first = window.frames[0]
    return first.parent if isinstance(first, Path) else first[0]


def split_sizes(dataset: str, data_root) -> dict:
    """{split: {"windows": n, "clips": m}} for the splits that exist."""
    from ifrvp_core.data import build_dataset

    sizes = {}
    for split in ("train", "val", "test"):
        try:
            data = build_dataset(dataset, data_root, split, teacher_flow=False)
        except Exception:  # noqa: BLE001 - a split that does not exist for this dataset
            continue
        clips = {_clip_of(w) for w in data.windows}
        sizes[split] = {"windows": len(data), "clips": len(clips)}
    return sizes


def sample_grid_figure(dataset, indices, title: str = ""):
    """Rows: samples; columns: context frames then target frames, each titled with its time."""
    from matplotlib.figure import Figure

    from ifrvp_core.visualisation import to_numpy_image

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
    from ifrvp_core.metrics import psnr

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
    from ifrvp_core.data.io import read_flow

    files = sorted(Path(data_root, "teacher_flow").rglob("*.flo")) + sorted(Path(data_root, "teacher_flow").rglob("*.npy"))
    if not files:
        return np.zeros(0, np.float32)
    step = max(1, len(files) // max_files)
    values = [np.linalg.norm(read_flow(path), axis=-1).ravel()[::7] for path in files[::step]]
    return np.concatenate(values)


def motion_histogram_figure(magnitudes: np.ndarray, title: str = "motion magnitude (teacher flow, target -> context)"):
    from matplotlib.figure import Figure

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


# ----------------------------------------------------------------------------- 02 architecture
def variant_table(models, sizes, repeats: int = 3, context_frames: int = 2, progress: bool = True) -> list[dict]:
    """Parameters, MACs and median CPU/GPU latency of `model.predict` per variant and size."""
    from tqdm.auto import tqdm

    from ifrvp_core.models import build_model
    from ifrvp_core.profiling import count_macs, count_parameters, median_latency_ms

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for name in tqdm(list(models), desc="variants", disable=not progress):
        model = build_model(name, context_frames=context_frames).eval().to(device)
        row = {"model": name, "parameters (M)": count_parameters(model) / 1e6}
        for height, width in sizes:
            frames = torch.rand(1, context_frames, 3, height, width, device=device)
            row[f"GMACs {height}x{width}"] = count_macs(model, frames) / 1e9
            row[f"ms {height}x{width} ({device.type})"] = median_latency_ms(model, frames, repeats=repeats, warmup=1)
        rows.append(row)
    return rows


def pyramid_shapes(model, height: int = 128, width: int = 192) -> list[dict]:
    """Shapes at each pyramid level of one training forward pass (batch 1)."""
    frames = torch.rand(1, model.context_frames, 3, height, width)
    with torch.no_grad():
        output = model(frames, 2.0, target=torch.rand(1, 3, height, width))
    rows = []
    for level, flow in enumerate(output["flows"]):
        row = {"level": f"1/{2 ** level}", "flows (B, 2K, h, w)": tuple(flow.shape)}
        if 1 <= level <= len(output["refined_features"]):
            row["refined features"] = tuple(output["refined_features"][level - 1].shape)
            row["target encoder features"] = tuple(output["target_features"][level - 1].shape)
        rows.append(row)
    rows.append({"level": "output", "flows (B, 2K, h, w)": f"mask {tuple(output['mask'].shape)}, residual {tuple(output['residual'].shape)}"})
    return rows


def effective_receptive_field(model, height: int = 128, width: int = 192, seed: int = 0) -> tuple[np.ndarray, dict]:
    """|d prediction(centre pixel) / d input| summed over frames and channels: (H, W) map and radii.

    The radii are those of the smallest centred squares holding 50% / 90% / 99% of the gradient
    mass: how far a predicted pixel actually looks (the flow search range of the model).
    """
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(1, model.context_frames, 3, height, width, generator=generator, requires_grad=True)
    was_training = model.training
    model.eval()
    output = model(frames, 2.0)["prediction"]
    output[0, :, height // 2, width // 2].sum().backward()
    model.train(was_training)
    gradient = frames.grad.abs().sum(dim=(0, 1, 2)).numpy()
    total = gradient.sum()
    radii = {}
    for share in (0.5, 0.9, 0.99):
        radius = 0
        while radius < max(height, width):
            y0, y1 = max(height // 2 - radius, 0), height // 2 + radius + 1
            x0, x1 = max(width // 2 - radius, 0), width // 2 + radius + 1
            if gradient[y0:y1, x0:x1].sum() >= share * total:
                break
            radius += 1
        radii[f"{int(share * 100)}%"] = radius
    return gradient, radii


def receptive_field_figure(gradient: np.ndarray, radii: dict, title: str):
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    height, width = gradient.shape
    fig = Figure(figsize=(6, 6 * height / width + 0.5), constrained_layout=True)
    ax = fig.subplots()
    ax.imshow(np.log10(gradient + gradient.max() * 1e-6), cmap="magma")
    for (label, radius), colour in zip(radii.items(), ("white", "cyan", "lime")):
        ax.add_patch(Rectangle((width // 2 - radius, height // 2 - radius), 2 * radius + 1, 2 * radius + 1, fill=False,
                               edgecolor=colour, label=f"{label} of gradient within +-{radius} px"))
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return fig


def synthetic_truth_at(dataset, index: int, times) -> list[np.ndarray] | None:
    """Ground truth frames of a synthetic sample at any (fractional) target times, or None."""
    from ifrvp_core.data.synthetic import load_scene, render_frame

    window = dataset.windows[index]
    if getattr(window, "clip_dir", None) is None or not window.frame_indices:
        return None
    scene = load_scene(window.clip_dir)
    newest = window.frame_indices[dataset.context_frames - 1]  # the context frame at t = 1
    out = []
    for t in times:
        clip_time = newest + (t - 1.0)
        if clip_time > scene["num_frames"] - 1:
            out.append(None)
        else:
            out.append(render_frame(scene, clip_time))
    return out


def time_sweep_figure(model, dataset, index: int, times=(0.5, 1.5, 2.0, 3.0)):
    """Predictions at several target times t from one context: interpolation (t<1) vs extrapolation (t>1).

    Rows: prediction, ground truth (synthetic data renders any t), |error|.
    """
    from matplotlib.figure import Figure

    from ifrvp_core.metrics import psnr
    from ifrvp_core.visualisation import error_map, to_numpy_image

    sample = dataset[index]
    context = sample["context"].unsqueeze(0)
    truths = synthetic_truth_at(dataset, index, times) or [None] * len(times)
    fig = Figure(figsize=(2.6 * (len(times) + 2), 2.2 * 3), constrained_layout=True)
    axes = fig.subplots(3, len(times) + 2, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    k = context.shape[1]
    for i in range(2):
        axes[0, i].imshow(to_numpy_image(context[0, k - 2 + i]))
        axes[0, i].set_title(f"context t={i}", fontsize=9)
    for column, (t, truth) in enumerate(zip(times, truths), start=2):
        prediction = model.predict(context, float(t))[0]
        axes[0, column].imshow(to_numpy_image(prediction))
        kind = "interpolate" if t < 1 else "extrapolate"
        if truth is not None:
            truth_tensor = torch.from_numpy(truth).permute(2, 0, 1).float() / 255.0
            score = float(psnr(prediction.unsqueeze(0).clamp(0, 1), truth_tensor.unsqueeze(0))[0])
            axes[0, column].set_title(f"t={t:g} ({kind}) {score:.1f} dB", fontsize=9)
            axes[1, column].imshow(truth)
            axes[1, column].set_title(f"truth t={t:g}", fontsize=9)
            axes[2, column].imshow(error_map(prediction, truth_tensor), cmap="inferno", vmin=0, vmax=0.3)
            axes[2, column].set_title("|error|", fontsize=9)
        else:
            axes[0, column].set_title(f"t={t:g} ({kind})", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- 03 training
def training_curves_figure(run_dir):
    """Loss (and its terms), learning rate, throughput and validation PSNR/SSIM of a run folder.

    The validation panel draws copy-last and DIS extrapolation on the same samples as dotted lines.
    """
    from matplotlib.figure import Figure

    from ifrvp_core.launch import read_log

    train, val = read_log(run_dir, "train"), read_log(run_dir, "val")
    fig = Figure(figsize=(13, 3.2), constrained_layout=True)
    ax_loss, ax_lr, ax_speed, ax_val = fig.subplots(1, 4)
    if train:
        steps = [r["iteration"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], label="total", color="k")
        for term in train[-1].get("terms", {}):
            ax_loss.plot(steps, [r.get("terms", {}).get(term, np.nan) for r in train], label=term, linewidth=0.8)
        ax_loss.set_yscale("log")
        ax_loss.legend(fontsize=7)
        ax_lr.plot(steps, [r["lr"] for r in train])
        ax_speed.plot(steps, [r["samples_per_s"] for r in train], label="samples/s")
        ax_speed.plot(steps, [100 * r["data_wait_share"] for r in train], label="% waiting for data")
        ax_speed.legend(fontsize=7)
    if val:
        ax_val.plot([r["iteration"] for r in val], [r["psnr"] for r in val], "o-", label="val PSNR (dB)")
        # the baselines on the same validation samples: a model under them has not learned to predict
        for name, colour in (("copy_last", "tab:red"), ("dis_extrapolation", "tab:green")):
            if f"{name}_psnr" in val[-1]:
                ax_val.axhline(val[-1][f"{name}_psnr"], color=colour, linestyle=":", linewidth=1.2, label=f"{name} PSNR")
        twin = ax_val.twinx()
        twin.plot([r["iteration"] for r in val], [r["ssim"] for r in val], "s--", color="tab:orange", label="val SSIM")
        twin.set_ylabel("SSIM")
        ax_val.legend(loc="lower right", fontsize=7)
    for ax, title in ((ax_loss, "training loss"), (ax_lr, "learning rate"), (ax_speed, "throughput"), (ax_val, "validation t+1")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
    return fig


def validation_baseline_rows(summary: dict) -> list[dict]:
    """The model's final validation t+1 scores next to the baselines on the same samples (from summary.json)."""
    final = summary.get("final") or {}
    rows = [{"method": "model", "PSNR t+1": final.get("psnr"), "SSIM t+1": final.get("ssim"), "model beats it": ""}]
    for name, values in (summary.get("baselines") or {}).items():
        beats = (summary.get("beats_baselines") or {}).get(name, {})
        verdict = "yes" if beats and all(beats.values()) else ("PSNR only" if beats.get("psnr") else "NO")
        rows.append({"method": name, "PSNR t+1": values["psnr"], "SSIM t+1": values["ssim"], "model beats it": verdict})
    return rows


class LiveCurves:
    """Live view of a training run in the cell that launched it: a progress bar and the curves.

    Pass it as both `on_line` and `on_tick` of `launch_training`. The bar (`tqdm.auto`: a widget
    bar in JupyterLab, a text bar elsewhere) follows the iterations in `log.jsonl` and the
    trainer's own progress lines; its total comes from the trainer's first line ("..., N steps").
    `training_curves_figure` is redrawn in one output area as soon as the first log records exist,
    then at most every `interval_s`. Call `close()` (or `live(force=True)`) when the run ends.
    """

    _TOTAL = re.compile(r", (\d+) steps$")
    _TQDM = re.compile(r"^train:.*?(\d+)/(\d+)")

    def __init__(self, run_dir, interval_s: float = 15.0, total: int | None = None, progress: bool = True):
        from IPython.display import display
        from tqdm.auto import tqdm

        # None, not 0.0: time.monotonic() counts from an arbitrary origin (boot on Linux), so
        # "0.0 seconds ago" would hold back the first drawing for up to interval_s after boot
        self.run_dir, self.interval_s, self.last = Path(run_dir), interval_s, None
        self.iteration, self.last_progress = 0, None
        self.bar = tqdm(total=total or None, desc="training", unit="step", disable=not progress, dynamic_ncols=True)
        self.handle = display({"text/plain": "waiting for the first log records ..."}, raw=True, display_id=True)

    def _progress(self, line: str | None) -> None:
        if line:
            found = self._TOTAL.search(line) or self._TQDM.search(line)
            if found and not self.bar.total:
                self.bar.reset(total=int(found.groups()[-1]))  # reset() also resizes the widget bar
            found = self._TQDM.search(line)
            if found:
                self.iteration = max(self.iteration, int(found.group(1)))
        if line is None or self.last_progress is None or time.monotonic() - self.last_progress >= 1.0:
            self.last_progress = time.monotonic()
            from ifrvp_core.launch import read_log

            records = read_log(self.run_dir, kind="train")
            if records:
                self.iteration = max(self.iteration, int(records[-1]["iteration"]))
                self.bar.set_postfix(loss=f"{records[-1]['loss']:.4f}", refresh=False)
        if self.iteration != self.bar.n:
            self.bar.n = self.iteration
            self.bar.refresh()

    def __call__(self, line: str | None = None, force: bool = False) -> None:
        self._progress(line)
        if not force and self.last is not None and time.monotonic() - self.last < self.interval_s:
            return
        if not (self.run_dir / "log.jsonl").is_file():
            return  # nothing to draw yet: try again at the next line or tick
        self.last = time.monotonic()
        self.handle.update(training_curves_figure(self.run_dir))

    def close(self) -> None:
        """Draw the final curves and finish the bar."""
        self(force=True)
        self.bar.close()


def checkpoint_listing(run_dir) -> list[dict]:
    """The files of a run folder, with the iteration and metrics stored in each checkpoint."""
    from ifrvp_core.checkpoint import load_file

    rows = []
    for path in sorted(Path(run_dir).iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        row = {"file": path.name, "size (KB)": path.stat().st_size / 1024}
        if path.suffix == ".pt":
            state = load_file(path)
            row["iteration"] = state.get("iteration")
            row.update({f"val {k}": v for k, v in (state.get("metrics") or {}).items() if k in ("psnr", "ssim")})
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- 04 flows and warps
def rollout_animation(model, dataset, index: int, steps: int, path) -> tuple[Path, torch.Tensor]:
    """Recursive t+1..t+steps rollout of one sample written as a GIF of prediction | truth | |error|.

    Returns (GIF path, predictions (steps, 3, H, W)).
    """
    from ifrvp_core.evaluate import model_step_fn, rollout
    from ifrvp_core.visualisation import side_by_side, write_animation

    sample = dataset[index]
    context = sample["context"].unsqueeze(0)
    steps = min(steps, sample["target"].shape[0])
    with torch.inference_mode():
        predictions = rollout(model_step_fn(model), context, steps)[0]
    frames = []
    for i in range(context.shape[1]):
        frame = context[0, i]
        frames.append(side_by_side(frame, frame, torch.zeros_like(frame), labels=[f"context {i - context.shape[1] + 1}", "", ""]))
    for step in range(steps):
        truth = sample["target"][step]
        error = ((predictions[step] - truth).abs() * 4).clamp(0, 1)
        frames.append(side_by_side(predictions[step], truth, error, labels=[f"prediction t+{step + 1}", "truth", "|error| x4"]))
    return write_animation(frames, path, fps=2), predictions


def level_grid_figure(model, dataset, indices, levels=(0, 1, 2, 3)):
    """The static stand-in for the interactive explorer: samples x (prediction, flow per level, mask)."""
    from matplotlib.figure import Figure

    from ifrvp_core.visualisation import flow_to_color, to_numpy_image

    columns = 2 + len(levels)
    fig = Figure(figsize=(2.5 * columns, 2.1 * len(indices)), constrained_layout=True)
    axes = fig.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        output = forward_sample(model, dataset[index])
        axes[row, 0].imshow(to_numpy_image(output["prediction"][0]))
        axes[row, 0].set_title(f"sample {index}: prediction", fontsize=8)
        for column, level in enumerate(levels, start=1):
            flow = output["flows"][level][0][-2:]  # flow to the newest context frame
            axes[row, column].imshow(flow_to_color(flow))
            axes[row, column].set_title(f"flow->newest, level 1/{2 ** level}", fontsize=8)
        axes[row, -1].imshow(output["mask"][0][-1].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, -1].set_title("mask of newest frame", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def as_batch(sample: dict) -> dict:
    """A dataset sample's tensors with a leading batch dimension of 1 (what the figure functions take)."""
    return {key: value.unsqueeze(0) for key, value in sample.items() if isinstance(value, torch.Tensor)}


def forward_sample(model, sample: dict, t: float | None = None) -> dict:
    """The model's full output dict (batch 1) for a dataset sample, at its first target time by default."""
    target_time = float(sample["target_times"][0]) if t is None else t
    with torch.no_grad():
        output = model(sample["context"].unsqueeze(0), target_time, target=sample["target"][:1])
    return {key: value.detach() if isinstance(value, torch.Tensor) else value for key, value in output.items()}


def flow_explorer(model, dataset):
    """An ipywidgets explorer: sample slider x what to show (flow per level, warped frames, mask, residual)."""
    import ipywidgets as widgets
    from IPython.display import display

    from ifrvp_core.visualisation import flow_to_color, to_numpy_image

    layers = ["prediction vs truth", "flow level 0 (full)", "flow level 1 (1/2)", "flow level 2 (1/4)", "flow level 3 (1/8)",
              "warped context", "blend mask", "residual"]
    sample_slider = widgets.IntSlider(0, 0, len(dataset) - 1, description="sample")
    layer_choice = widgets.Dropdown(options=layers, description="show")
    out = widgets.Output()

    def draw(*_):
        from matplotlib.figure import Figure

        sample = dataset[sample_slider.value]
        output = forward_sample(model, sample)
        k = model.context_frames
        fig = Figure(figsize=(3 * k + 3, 2.6), constrained_layout=True)
        axes = fig.subplots(1, k + 1, squeeze=False)[0]
        name = layer_choice.value
        for i, ax in enumerate(axes):
            ax.axis("off")
            if name.startswith("prediction"):
                images = [output["prediction"][0], sample["target"][0]]
                if i < 2:
                    ax.imshow(to_numpy_image(images[i]))
                    ax.set_title(["prediction", "truth"][i], fontsize=9)
            elif name.startswith("flow") and i < k:
                level = int(name.split()[2])
                ax.imshow(flow_to_color(output["flows"][level][0][2 * i : 2 * i + 2]))
                ax.set_title(f"flow -> context {i}", fontsize=9)
            elif name == "warped context" and i < k:
                ax.imshow(to_numpy_image(output["warped"][0][i]))
                ax.set_title(f"context {i} warped", fontsize=9)
            elif name == "blend mask" and i < k:
                ax.imshow(output["mask"][0][i].numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"mask {i}", fontsize=9)
            elif name == "residual" and i == 0:
                ax.imshow(to_numpy_image((output["residual"][0] * 4 + 0.5).clamp(0, 1)))
                ax.set_title("residual x4 + 0.5", fontsize=9)
        out.clear_output(wait=True)
        with out:
            display(fig)

    sample_slider.observe(draw, "value")
    layer_choice.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox([sample_slider, layer_choice]), out])


# ----------------------------------------------------------------------------- 05 evaluation
def metric_curves_figure(results, metrics=("psnr", "ssim", "ms_ssim")):
    """Per-step curves of each method, one panel per metric: frame t+k (solid) and the running
    mean over t+1..t+k (dashed, the form DMVFN's scripts print)."""
    from matplotlib.figure import Figure

    from ifrvp_core.evaluate import frame_steps, running_steps, step_number

    metrics = [m for m in metrics if any(v.get(m) is not None for steps in results.values() for v in steps.values())]
    fig = Figure(figsize=(4.2 * max(len(metrics), 1), 3.2), constrained_layout=True)
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for index, (method, steps) in enumerate(results.items()):
            colour = f"C{index % 10}"
            for names, style, label in ((frame_steps(steps), "o-", f"{method}, frame t+k"),
                                        (running_steps(steps), "s--", f"{method}, mean t+1..t+k")):
                values = [steps[s].get(metric) for s in names]
                if names:
                    ax.plot([step_number(s) for s in names], [np.nan if v is None else v for v in values], style,
                            color=colour, markersize=4, label=label)
        ax.set_xlabel("future step k")
        ax.set_xticks(range(1, 1 + max(len(frame_steps(steps)) for steps in results.values())))
        ax.set_title(metric.upper().replace("_", "-"), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def best_worst_figure(results, dataset, model, method: str = "model", metric: str = "psnr", count: int = 3):
    """The `count` best and worst t+1 samples of `method`: newest context | prediction | truth | |error|."""
    from matplotlib.figure import Figure

    from ifrvp_core.visualisation import error_map, to_numpy_image

    best, worst = results.best_worst(method, metric, "t+1", count)
    rows = [("best", item) for item in best] + [("worst", item) for item in worst]
    fig = Figure(figsize=(10, 2.3 * len(rows)), constrained_layout=True)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for row, (kind, (index, name, score)) in enumerate(rows):
        sample = dataset[index]
        with torch.inference_mode():
            prediction = model.predict(sample["context"].unsqueeze(0), float(sample["target_times"][0]))[0]
        images = [sample["context"][-1], prediction, sample["target"][0]]
        titles = ["newest context", f"{kind}: {name} ({score:.2f})", "truth"]
        for column, (image, title) in enumerate(zip(images, titles)):
            axes[row, column].imshow(to_numpy_image(image))
            axes[row, column].set_title(title, fontsize=8)
        axes[row, 3].imshow(error_map(prediction, sample["target"][0]), cmap="inferno", vmin=0, vmax=0.3)
        axes[row, 3].set_title("|error|", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def results_rows(results, steps=(1, 3, 5), form: str = "frame", published: bool = True) -> list[dict]:
    """Headline rows (method x metric at k = 1, 3, 5) of one step form, for an HTML table.

    Args:
        results: `evaluate` results.
        steps: the k to show (those the results hold).
        form: "frame" (columns "psnr frame t+k": frame t+k alone) or "running" (columns
            "psnr mean t+1..t+k": running means, followed by DMVFN's published rows for the
            protocol when `published`).
    """
    from ifrvp_core.evaluate import published_rows, results_protocol, running_step_name, step_name

    if form not in ("frame", "running"):
        raise ValueError(f"form must be 'frame' or 'running', got {form!r}")
    key = step_name if form == "frame" else running_step_name
    prefix = "frame " if form == "frame" else "mean "
    held = {step for table in results.values() for step in table}
    columns = [key(k) for k in steps if key(k) in held]
    metrics = list(dict.fromkeys(m for table in results.values() for step in columns for m in table.get(step, {})))
    if form == "running":
        metrics = [m for m in metrics if m != "epe"]

    def row_of(label, table):
        row = {"method": label}
        for step in columns:
            for metric in metrics:
                row[f"{metric} {prefix}{step}"] = table.get(step, {}).get(metric, "")
        return row

    rows = [row_of(method, table) for method, table in results.items()]
    if form == "running" and published:
        rows += [row_of(reference["label"], reference["values"]) for reference in published_rows(results_protocol(results))]
    return rows


def evaluation_headline(results) -> dict:
    """headline.json of notebook 05 (read by the workbook index): t+1 of every method and verdicts."""
    from ifrvp_core.evaluate import results_protocol

    t1 = {method: results[method]["t+1"] for method in results}
    meta = getattr(results, "meta", None) or {}

    def beats(baseline):
        if "model" not in t1 or baseline not in t1:
            return None
        return {m: bool(t1["model"][m] > t1[baseline][m]) for m in ("psnr", "ssim")}

    return {
        "protocol": results_protocol(results), "samples": len(results.sample_names),
        "checkpoint": meta.get("checkpoint"), "variant": meta.get("variant"), "t+1": t1,
        "unavailable": dict(results.unavailable),
        "model_beats_copy_last_t1": beats("copy_last"), "model_beats_dis_extrapolation_t1": beats("dis_extrapolation"),
    }


def run_evaluation(model, protocol, results_dir, *, checkpoint=None, data_root=None, steps=None, max_samples=None,
                   baselines: bool = True, bgr_like_published: bool = False, progress: bool = True, **options):
    """Notebook 05's evaluation: `evaluate_model` (the same contract as `ifrvp evaluate`), then
    `results_dir/results.json` (+ CSVs) and `results_dir/headline.json`.

    Returns:
        (results, written files {"json", "csv", "per_sample", "headline"}).
    """
    from ifrvp_core.evaluate import evaluate_model, save_results

    results = evaluate_model(
        model, protocol, checkpoint=None if checkpoint is None else Path(checkpoint).resolve(), baselines=baselines,
        written_by="notebook 05_evaluation", steps=steps, root=data_root, max_samples=max_samples,
        bgr_like_published=bgr_like_published, progress=progress, **options,
    )
    written = save_results(results, Path(results_dir) / "results.json")
    written["headline"] = write_json(Path(results_dir) / "headline.json", evaluation_headline(results))
    return results, written


__all__ = [
    "LiveCurves", "PROFILES", "validation_baseline_rows", "animation_html", "as_batch", "best_worst_figure", "checkpoint_listing", "effective_receptive_field",
    "evaluation_headline", "run_evaluation",
    "flow_explorer", "forward_sample", "frame_statistics", "html_table", "level_grid_figure", "metric_curves_figure",
    "motion_histogram_figure", "prepare_dataset", "profile_settings", "pyramid_shapes", "read_json",
    "receptive_field_figure", "results_rows", "rollout_animation", "sample_grid_figure", "show_settings", "show_table",
    "split_sizes", "teacher_flow_magnitudes", "time_sweep_figure", "training_curves_figure", "variant_table", "write_json",
]


# ----------------------------------------------------------------------------- paths shared by the notebooks
def default_work_dir(profile: str) -> Path:
    """`<repo>/workbook_runs/<profile>` for a source checkout, else `./workbook_runs/<profile>`."""
    repo = Path(__file__).resolve().parent.parent
    base = repo if (repo / "notebooks").is_dir() else Path.cwd()
    return base / "workbook_runs" / profile


def resolve_work_dir(work_dir, profile: str) -> Path:
    path = Path(work_dir) if work_dir else default_work_dir(profile)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def dataset_info(work_dir, dataset=None, data_root=None) -> dict:
    """Which data to use: explicit parameters win, else what notebook 01 wrote to `work_dir/dataset.json`."""
    if data_root is not None:
        return {"dataset": dataset or "synthetic", "data_root": str(data_root)}
    info = read_json(Path(work_dir) / "dataset.json", "dataset.json written by 01_data_preparation")
    if dataset is not None and dataset != info["dataset"]:
        raise ValueError(f"dataset={dataset!r} but {Path(work_dir) / 'dataset.json'} describes {info['dataset']!r}; pass data_root too")
    return info


def set_aside_old_run(log_path, run_name: str, resume: str | None) -> Path:
    """The run folder for a new run; an older run of the same name is renamed (never overwritten)."""
    run_dir = Path(log_path) / run_name
    if run_dir.exists() and resume != "auto":
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run_dir.stat().st_mtime))
        target = run_dir.with_name(f"{run_name}-{stamp}")
        counter = 1
        while target.exists():
            target = run_dir.with_name(f"{run_name}-{stamp}-{counter}")
            counter += 1
        run_dir.rename(target)
        print(f"an earlier run was moved to {target}")
    return run_dir


def trained_checkpoint(work_dir, checkpoint=None) -> Path:
    """The checkpoint to study: the parameter if given, else the best one of notebook 03's run."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint parameter: file not found: {path}")
        return path
    info = read_json(Path(work_dir) / "training.json", "training.json written by 03_training_ddp")
    return Path(info["checkpoint"])


__all__ += ["dataset_info", "default_work_dir", "resolve_work_dir", "set_aside_old_run", "trained_checkpoint"]
