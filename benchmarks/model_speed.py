"""Forward latency, frames/s, parameters and MACs of every IFRNet-family variant.

    python benchmarks/model_speed.py                       # CPU (and GPU when present), both sizes
    python benchmarks/model_speed.py --sizes 256x448 --repeats 7 --channels-last --compile
    python benchmarks/model_speed.py --motion-prior both     # also the extrapolation models with the DIS prior
    python benchmarks/model_speed.py --models IFRNet_T --precision fp32,bf16 --repeats 7   # autocast speed-up

Latency is the median of `--repeats` timed `model.predict` calls (after warm-up) with
`torch.inference_mode`; frames/s = batch / latency. MACs are counted once per variant with
torch's FlopCounterMode (MACs = FLOPs / 2; grid_sample and elementwise ops are not counted).
With `--motion-prior dis|both` the extrapolation models (`motion_prior="dis"`) are timed too:
their `predict` runs OpenCV DIS on the CPU first (its own median is printed as `DIS prior`).
`--precision fp32,bf16,fp16` times `model.predict(..., precision=)` (autocast, ifrvp_core.precision)
for each listed precision; `vs first` is the median latency of the first listed precision over
this row's (> 1: faster). On a shared machine quote medians of several runs.

Against the published code (Kong et al.'s IFRNet repository, a checkout given by its path):

    python benchmarks/model_speed.py --published_code ~/IFRNet --models IFRNet_S,IFRNet --sizes 256x448 \
        --precision fp32,bf16 --repeats 9 --threads 2 --train_step

imports the published `Model` of each variant (`models/IFRNet.py`, `models/IFRNet_S.py`,
`models/IFRNet_L.py` of the checkout; nothing of it is copied here), copies its weights into ours
(`build_model`, motion prior none: the same module names), and times their interpolation call
`model.inference(img0, img1, embt)` against our `model.predict(frames, 0.5)` on the same two
frames, same size, threads and precision (fp32, or bf16/fp16 autocast for both), in interleaved
rounds (published, ours and the calibration workload once per round, the order alternating) so
a change in the machine's load reaches both alike. `ratio` is the median over rounds of
published / ours (> 1: ours faster), `fastest` the ratio of their fastest rounds (on a loaded
machine the least disturbed ones); `max diff` is the largest difference between the two
predictions (same weights: float rounding only). `--train_step` also times one optimiser step
(forward with the target and a teacher flow, IFRNet's loss: Charbonnier + census + 0.01 geometry
+ 0.01 distillation, backward, AdamW) at batch `--train_batch`, `--train_crop` square frames:
their `model(img0, img1, embt, imgt, flow)` against our trainer's forward and `PredictionLoss`.
Every latency is also printed in calibration units (`cu`, `ifrvp_core.profiling.CALIBRATION_UNIT`:
a fixed fp32 convolution stack timed in the same rounds), which compare across machines.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch

from ifrvp_core.flags import add_flag
from ifrvp_core.losses import LossConfig, PredictionLoss
from ifrvp_core.models import build_model, list_models, prepare_for_inference
from ifrvp_core.motion_prior import constant_velocity_prior
from ifrvp_core.precision import autocast_for, check_precision
from ifrvp_core.profiling import CALIBRATION_UNIT, CalibrationWorkload, count_macs, time_call

# our variant -> the published checkout's models/<file>.py, each defining `Model`
PUBLISHED_FILES = {"IFRNet": "IFRNet", "IFRNet_S": "IFRNet_S", "IFRNet_L": "IFRNet_L"}
PUBLISHED_URL = "https://github.com/ltkong218/IFRNet"


def load_published(path, variants) -> dict:
    """The published `Model` class of each of `variants`, imported from the checkout at `path`.

    SystemExit naming the path when a variant's file is not there, or naming the variants the
    published code has when one of `variants` is ours only.
    """
    root = Path(path).expanduser().resolve()
    unknown = [name for name in variants if name not in PUBLISHED_FILES]
    if unknown:
        raise SystemExit(f"--published_code: the published code has no {', '.join(unknown)}; "
                         f"--models must be among {', '.join(PUBLISHED_FILES)}")
    missing = [f"models/{PUBLISHED_FILES[name]}.py" for name in variants if not (root / "models" / f"{PUBLISHED_FILES[name]}.py").is_file()]
    if missing:
        raise SystemExit(f"--published_code {root}: no {', '.join(missing)} there; give the root folder of a "
                         f"checkout of the published IFRNet code ({PUBLISHED_URL})")
    sys.path.insert(0, str(root))  # its models import `utils` and `loss` from the checkout's root folder
    classes = {}
    for name in variants:
        try:
            # imported here, not at the top: the checkout's path is known only at run time
            classes[name] = importlib.import_module(f"models.{PUBLISHED_FILES[name]}").Model
        except ImportError as error:
            raise SystemExit(f"--published_code {root}: importing models/{PUBLISHED_FILES[name]}.py failed: {error}") from None
    return classes


def published_pair(name: str, published_class, device):
    """(published model, our model with the published weights), both in eval mode on `device`."""
    torch.manual_seed(0)
    theirs = published_class()
    for module in theirs.modules():  # the published losses keep their census kernels as plain tensors
        if isinstance(getattr(module, "w", None), torch.Tensor):
            module.w = module.w.to(device)
    ours = build_model(name)
    ours.load_state_dict(theirs.state_dict())  # the same module names (official checkpoints load as they are)
    return theirs.to(device).eval(), ours.to(device).eval()


def interleaved(calls: dict, rounds: int, warmup: int, sync) -> dict:
    """Seconds of each of `calls` (name -> function) per round, the calls alternating in order round by round."""
    for function in calls.values():
        for _ in range(warmup):
            function()
    sync()
    names, times = list(calls), {name: [] for name in calls}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_row(times: dict) -> dict:
    """Medians (ms and calibration units) and the median paired ratio published / ours of interleaved rounds."""
    unit = statistics.median(times["unit"])
    ratios = [p / o for p, o in zip(times["published"], times["ours"])]
    row = {"unit_ms": 1e3 * unit, "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
           "ratio_fastest": min(times["published"]) / min(times["ours"])}
    for name in ("published", "ours"):
        row[f"{name}_ms"] = 1e3 * statistics.median(times[name])
        row[f"{name}_cu"] = statistics.median(t / u for t, u in zip(times[name], times["unit"]))
    return row


def compare_inference(theirs, ours, size, precision: str, device, args) -> dict:
    """Interleaved rounds of the published `inference` and our `predict` at t = 0.5 on the same frames."""
    height, width = size
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(1, 2, 3, height, width, generator=generator).to(device)
    img0, img1 = frames[:, 0].contiguous(), frames[:, 1].contiguous()
    embt = torch.full((1, 1, 1, 1), 0.5, device=device)

    def published():
        with torch.inference_mode(), autocast_for(precision, device):
            return theirs.inference(img0, img1, embt).float()

    def our():
        return ours.predict(frames, 0.5, precision=precision)

    difference = (published() - our()).abs().max().item()
    unit = CalibrationWorkload(device)
    sync = torch.cuda.synchronize if frames.is_cuda else (lambda: None)
    times = interleaved({"unit": unit, "published": published, "ours": our}, args.repeats, args.warmup, sync)
    return {**ratio_row(times), "max_diff": difference}


def compare_training_step(theirs, ours, device, args) -> dict:
    """Interleaved optimiser steps (forward with target and teacher flow, IFRNet's loss, backward, AdamW) of both."""
    b, crop = args.train_batch, args.train_crop
    generator = torch.Generator().manual_seed(1)
    frames = torch.rand(b, 2, 3, crop, crop, generator=generator).to(device)
    target = torch.rand(b, 3, crop, crop, generator=generator).to(device)
    teacher = (2.0 * torch.randn(b, 4, crop, crop, generator=generator)).to(device)
    times_ = torch.full((b,), 0.5, device=device)
    img0, img1 = frames[:, 0].contiguous(), frames[:, 1].contiguous()
    embt = times_.view(b, 1, 1, 1)
    theirs.train(), ours.train()
    loss_fn = PredictionLoss(LossConfig())  # the published weights: 1 Charbonnier, 1 census, 0.01 geometry, 0.01 distillation (beta 0.3)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
                  for name, model in (("published", theirs), ("ours", ours))}

    def published():
        _, loss_rec, loss_geo, loss_dis = theirs(img0, img1, embt, target, teacher)
        optimizers["published"].zero_grad(set_to_none=True)
        (loss_rec + loss_geo + loss_dis).backward()
        optimizers["published"].step()

    def our():
        loss, _ = loss_fn(ours(frames, times_, target=target), target, teacher)
        optimizers["ours"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["ours"].step()

    unit = CalibrationWorkload(device)
    sync = torch.cuda.synchronize if frames.is_cuda else (lambda: None)
    rounds = max(3, args.repeats // 2)
    row = ratio_row(interleaved({"unit": unit, "published": published, "ours": our}, rounds, args.warmup, sync))
    theirs.eval(), ours.eval()
    return row


def print_row(name: str, what: str, device: str, precision: str, size: str, row: dict) -> None:
    diff = f"{row['max_diff']:9.1e}" if "max_diff" in row else f"{'':>9}"
    spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
    print(f"{name:<10} {what:<14} {device:<6} {precision:<5} {size:>10} {row['published_ms']:12.1f} {row['ours_ms']:9.1f} "
          f"{row['published_cu']:12.2f} {row['ours_cu']:8.2f} {row['ratio']:6.2f} {spread:>11} {row['ratio_fastest']:7.2f} "
          f"{row['unit_ms']:8.1f} {diff}", flush=True)


def compare_with_published(args, models, devices, sizes, precisions) -> int:
    """The `--published_code` table: inference (and with --train-step one training step), published vs ours."""
    classes = load_published(args.published_code, models)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, published code {Path(args.published_code).resolve()}; "
          f"{args.repeats} interleaved rounds after {args.warmup} warm-up call(s)")
    print(f"{CALIBRATION_UNIT}; ratio = published / ours, median over rounds (> 1: ours faster), with its range; "
          f"fastest = the ratio of the two fastest rounds (the least disturbed by other load)")
    header = (f"{'model':<10} {'what':<14} {'device':<6} {'prec':<5} {'size':>10} {'published ms':>12} {'ours ms':>9} "
              f"{'published cu':>12} {'ours cu':>8} {'ratio':>6} {'(min-max)':>11} {'fastest':>7} {'unit ms':>8} {'max diff':>9}")
    print(header)
    print("-" * len(header))
    for device in devices:
        for name in models:
            theirs, ours = published_pair(name, classes[name], device)
            for height, width in sizes:
                for precision in precisions:
                    print_row(name, "inference", device, precision, f"{height}x{width}",
                              compare_inference(theirs, ours, (height, width), precision, device, args))
            if args.train_step:
                print_row(name, f"train step b{args.train_batch}", device, "fp32", f"{args.train_crop}x{args.train_crop}",
                          compare_training_step(theirs, ours, device, args))
            del theirs, ours
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None,
                        help="comma-separated variants (default: every one; with --published_code IFRNet_S,IFRNet,IFRNet_L)")
    parser.add_argument("--sizes", default="256x448,1024x2048", help="HxW list")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--repeats-large", type=int, default=3, help="repeats for inputs above 1 Mpixel on CPU")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--precision", default="fp32", help="comma-separated list of fp32, bf16, fp16 (autocast)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CPU, plus CUDA when present)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--motion-prior", default="none", choices=["none", "dis", "both"],
                        help="time the published models (none), the extrapolation models with the DIS prior (dis), or both")
    add_flag(parser, "--published_code", default=None, metavar="PATH",
             help="a checkout of the published IFRNet code: time its models against ours instead (see above)")
    add_flag(parser, "--train_step", action="store_true", help="with --published_code: also time one training step of both")
    add_flag(parser, "--train_batch", type=int, default=4, help="with --train_step: the batch")
    add_flag(parser, "--train_crop", type=int, default=224, help="with --train_step: the square frame size")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    precisions = [part.strip() for part in args.precision.split(",") if part.strip()]
    try:
        for precision in precisions:
            for device in devices:
                check_precision(precision, device)
    except ValueError as error:
        parser.error(str(error))
    if args.published_code is not None:
        models = (args.models or ",".join(PUBLISHED_FILES)).split(",")
        return compare_with_published(args, models, devices, sizes, precisions)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, channels_last={args.channels_last}, "
          f"compile={args.compile}, batch {args.batch}")
    priors = {"none": ["none"], "dis": ["dis"], "both": ["none", "dis"]}[args.motion_prior]
    header = (f"{'model':<12} {'prior':<5} {'device':<6} {'prec':<5} {'size':>10} {'params':>11} {'GMACs':>9} "
              f"{'median ms':>10} {'min ms':>9} {'frames/s':>9} {'vs first':>8}")
    print(header)
    print("-" * len(header))
    if "dis" in priors:
        for height, width in sizes:
            frames = torch.rand(args.batch, 2, 3, height, width)
            repeats = args.repeats_large if height * width > 1_000_000 else args.repeats
            times = time_call(lambda: constant_velocity_prior(frames, 2.0), repeats, args.warmup)
            print(f"{'DIS prior':<12} {'':<5} {'cpu':<6} {'fp32':<5} {f'{height}x{width}':>10} {'':>11} {'':>9} "
                  f"{statistics.median(times) * 1e3:10.1f} {min(times) * 1e3:9.1f}", flush=True)
    for name in (args.models or ",".join(list_models())).split(","):
        for prior in priors:
            options = {} if prior == "none" else {"motion_prior": prior}
            base = build_model(name, **options)
            params = sum(p.numel() for p in base.parameters())
            for device in devices:
                model = prepare_for_inference(build_model(name, **options), args.channels_last, args.compile, device)
                for height, width in sizes:
                    frames = torch.rand(args.batch, 2, 3, height, width, device=device)
                    macs = count_macs(base, frames.cpu()[:1]) * args.batch if device == "cpu" else None
                    repeats = args.repeats_large if (device == "cpu" and height * width > 1_000_000) else args.repeats
                    gmacs = f"{macs / 1e9:9.1f}" if macs is not None else f"{'':>9}"
                    sync = torch.cuda.synchronize if device == "cuda" else None
                    first = None
                    for precision in precisions:
                        times = time_call(lambda: model.predict(frames, 2.0, precision=precision), repeats, args.warmup, sync)
                        median = statistics.median(times)
                        first = median if first is None else first
                        print(f"{name:<12} {prior:<5} {device:<6} {precision:<5} {f'{height}x{width}':>10} {params:>11,} "
                              f"{gmacs} {median * 1e3:10.1f} {min(times) * 1e3:9.1f} {args.batch / median:9.2f} "
                              f"{first / median:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
