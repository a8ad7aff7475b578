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
"""
from __future__ import annotations

import argparse
import statistics

import torch

from ifrvp_core.models import build_model, list_models, prepare_for_inference
from ifrvp_core.motion_prior import constant_velocity_prior
from ifrvp_core.precision import check_precision
from ifrvp_core.profiling import count_macs, time_call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(list_models()))
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
    for name in args.models.split(","):
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

if __name__ == "__main__":
    main()
