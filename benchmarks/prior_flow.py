"""The motion prior's flow methods side by side: OpenCV DIS against the torch Lucas–Kanade flow.

    python benchmarks/prior_flow.py                                        # EPE and times, reports/prior_flow.json
    python benchmarks/prior_flow.py --real_root data/real/heldout/bikes   # + t+1 PSNR of prior_prediction on a real clip

For each method (`motion_prior.FLOW_METHODS`: dis, lucas_kanade):

- **EPE** (px) on the synthetic protocol's test windows (the built-in generator's test split,
  `ensure_synthetic`; two context frames, the next frame as target), on the exact flow's visible
  pixels, two ways:
  `backward`: the method's flow from the newest context frame to the one before
  (`prior_flow_batch(newest, previous)`) against the exact flow between them
  (`synthetic_flow(clip, newest, previous)`): the flow's own accuracy;
  `prior`: the constant-velocity prior at t = 2 (`constant_velocity_prior`) against the exact
  teacher flow from the target to each context frame (`gt_flow` on `gt_valid`, the mean over the
  K frames): what the prior is meant to approximate, the protocol's t+1 flow EPE of `prior_only`.
- **Time** per frame pair (ms; the median of `--repeats` calls of `prior_flow_batch` divided by the
  batch) at each `--sizes` and `--batches`, on the CPU with `--threads` threads (torch and OpenCV),
  and for lucas_kanade also on CUDA when available (synchronised; DIS always runs on the CPU).
  The frames are two consecutive synthetic test frames resized to the size.
- **PSNR** (dB, optional `--real_root DIR`, a folder of frames named in order, or a video): the
  t+1 PSNR of `prior_prediction(context, 2.0, method=...)` over every non-overlapping window of
  the clip (read as `--dataset frames`, all of it as the test part), the mean over windows.

Results go to stdout as a table and to `--out` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ifrvp_core.data import build_dataset, collate, ensure_synthetic  # noqa: E402
from ifrvp_core.data.synthetic import synthetic_flow  # noqa: E402
from ifrvp_core.metrics import psnr  # noqa: E402
from ifrvp_core.motion_prior import FLOW_METHODS, constant_velocity_prior, prior_flow_batch, prior_prediction  # noqa: E402
from ifrvp_core.profiling import time_call  # noqa: E402
from ifrvp_core.protocols import get_protocol  # noqa: E402


def masked_epe(flow: torch.Tensor, exact: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """(sum of end-point errors on valid pixels, valid pixel count): flow, exact (N, 2, H, W), valid (N, H, W)."""
    error = (flow - exact).norm(dim=1)
    return float((error * valid).sum()), float(valid.sum())


def synthetic_epe(data_root, methods) -> dict:
    """{method: {"backward_epe", "prior_epe"}} over the synthetic protocol's test windows (see the module docstring)."""
    dataset = get_protocol("synthetic").build_dataset(data_root, steps=1, teacher_flow=False)
    sums = {m: {"backward": [0.0, 0.0], "prior": [0.0, 0.0]} for m in methods}
    for index in range(len(dataset)):
        sample, window = dataset[index], dataset.windows[index]
        context = sample["context"].unsqueeze(0)  # (1, 2, 3, H, W)
        k = context.shape[1]
        flow, visible = synthetic_flow(window.clip_dir, window.frame_indices[k - 1], window.frame_indices[k - 2])
        exact = torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0)
        visible = torch.from_numpy(visible).float().unsqueeze(0)
        gt = sample["gt_flow"].view(k, 2, *sample["gt_flow"].shape[-2:])  # target -> each context frame
        for method in methods:
            backward = prior_flow_batch(context[:, -1], context[:, -2], method)
            prior = constant_velocity_prior(context, 2.0, method)[0].view(k, 2, *gt.shape[-2:])
            for key, (estimate, reference, valid) in (("backward", (backward, exact, visible)),
                                                      ("prior", (prior, gt, sample["gt_valid"]))):
                error, count = masked_epe(estimate, reference, valid)
                sums[method][key][0] += error
                sums[method][key][1] += count
    return {"windows": len(dataset), **{m: {f"{key}_epe": total / max(count, 1.0) for key, (total, count) in v.items()}
                                         for m, v in sums.items()}}


def time_method(method: str, source: torch.Tensor, destination: torch.Tensor, repeats: int, warmup: int = 2) -> float:
    """Median ms per frame pair of `prior_flow_batch(source, destination, method)` (N pairs per call)."""
    sync = torch.cuda.synchronize if source.device.type == "cuda" else None
    times = time_call(lambda: prior_flow_batch(source, destination, method), repeats, warmup, sync)
    return 1e3 * statistics.median(times) / source.shape[0]


def timings(data_root, methods, sizes, batches, repeats: int) -> list[dict]:
    """Rows {method, device, size, batch, ms_per_pair}; CPU for every method, CUDA (when present) for the torch ones."""
    dataset = get_protocol("synthetic").build_dataset(data_root, steps=1, teacher_flow=False)
    context = dataset[0]["context"]  # (2, 3, h, w): the newest and the previous frame
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for height, width in sizes:
        pair = F.interpolate(context, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
        for batch in batches:
            source, destination = (pair[i : i + 1].expand(batch, -1, -1, -1).contiguous() for i in (1, 0))
            for device in devices:
                for method in methods:
                    if device != "cpu" and method == "dis":
                        continue  # OpenCV DIS runs on the CPU whatever the frames' device
                    ms = time_method(method, source.to(device), destination.to(device), repeats)
                    rows.append(dict(method=method, device=device, height=height, width=width, batch=batch, ms_per_pair=ms))
                    print(f"  {method:12s} {device:4s} {height}x{width} batch {batch}: {ms:8.1f} ms/pair", flush=True)
    return rows


def real_psnr(root, methods, batch: int = 8) -> dict:
    """{method: mean t+1 PSNR of prior_prediction} over the clip's non-overlapping windows, and the window count."""
    dataset = build_dataset("frames", root, "test", teacher_flow=False, test_fraction=1.0)
    scores = {m: [] for m in methods}
    for start in range(0, len(dataset), batch):
        samples = collate([dataset[i] for i in range(start, min(start + batch, len(dataset)))])
        context, target = samples["context"], samples["target"][:, 0]
        for method in methods:
            scores[method].extend(psnr(prior_prediction(context, 2.0, method=method), target).tolist())
    return {"root": str(root), "windows": len(dataset), **{m: statistics.fmean(v) for m, v in scores.items()}}


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is HxW, e.g. 256x448; got {text!r}") from None
    return height, width


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(FLOW_METHODS), choices=FLOW_METHODS)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(256, 448), (1024, 2048)], help="HxW sizes to time")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per configuration (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch and OpenCV (default 1: comparable on shared machines)")
    parser.add_argument("--data_root", default=None, help="synthetic set (default: the built-in one, generated if missing)")
    parser.add_argument("--real_root", default=None, help="a folder of frames (or a video): t+1 PSNR of prior_prediction")
    parser.add_argument("--out", default="reports/prior_flow.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    data_root = ensure_synthetic(args.data_root, progress=False)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "threads": args.threads,
                          "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "torch": torch.__version__,
                          "opencv": cv2.__version__}}
    print("EPE on the synthetic protocol's test windows (px, visible pixels)")
    result["epe"] = synthetic_epe(data_root, args.methods)
    for method in args.methods:
        row = result["epe"][method]
        print(f"  {method:12s} backward {row['backward_epe']:.3f}  prior (target->context) {row['prior_epe']:.3f}")
    print(f"time per frame pair (median of {args.repeats}, {args.threads} CPU thread(s))")
    result["timings"] = timings(data_root, args.methods, args.sizes, args.batches, args.repeats)
    if args.real_root:
        result["real_psnr"] = real_psnr(args.real_root, args.methods)
        print(f"t+1 PSNR of prior_prediction on {args.real_root} ({result['real_psnr']['windows']} windows): "
              + ", ".join(f"{m} {result['real_psnr'][m]:.2f} dB" for m in args.methods))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
