"""The `ifrvp` command: train, evaluate, predict, interpolate.

    ifrvp train --model_name IFRNet_T ...                   (arguments go to ifrvp_core.train)
    ifrvp evaluate --checkpoint best.pt --dataset cityscapes --data_root data/cityscapes \
        --steps 5 --baselines --output reports/cityscapes.json
    ifrvp evaluate --checkpoint none --baselines --dataset synthetic --output baselines.json
    ifrvp predict clip.mp4 --checkpoint best.pt --steps 10 --out future.mp4 --side-by-side
    ifrvp interpolate a.png b.png --checkpoint IFRNet_Vimeo90K.pth --times 0.25,0.5,0.75 --out mid/

Exit codes: 0 success; 2 user error (missing/unreadable file, bad option value), reported as
one line on stderr without a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The package's modules import torch (seconds): they are imported inside the commands that need
# them, so that `ifrvp --help` and a mistyped command answer at once.

__all__ = ["build_parser", "main"]


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def user_errors() -> tuple:
    """The exceptions printed as one line with exit code 2, never a traceback."""
    from ifrvp_core.checkpoint import CheckpointError  # heavy (torch): see the note above
    from ifrvp_core.data.io import DataError  # heavy (torch)
    from ifrvp_core.metrics import MetricUnavailableError  # heavy (torch)

    return (UserError, CheckpointError, DataError, MetricUnavailableError, FileNotFoundError, NotADirectoryError, ValueError)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _times(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.25,0.5,0.75, got {text!r}") from None
    if not values or any(t <= 0 for t in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated times > 0, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ifrvp", description="IFRNet for video prediction.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,interpolate}")
    sub.required = True

    sub.add_parser("train", help="train a model (all further arguments go to ifrvp_core.train)", add_help=False)

    ev = sub.add_parser("evaluate", help="score a checkpoint and/or the baselines on a test protocol")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file, or 'none' with --baselines")
    ev.add_argument("--dataset", required=True, help="cityscapes, kitti, davis17, vimeo90k, gopro, frames or synthetic (its protocol is the default --protocol)")
    ev.add_argument("--data_root", "--data-root", dest="data_root", default=None, help="dataset root (synthetic: optional)")
    ev.add_argument("--protocol", default=None, help="evaluation protocol (default: the dataset's own)")
    ev.add_argument("--steps", type=_positive_int, default=5, help="future frames predicted recursively and scored")
    ev.add_argument("--baselines", action="store_true", help="also score the baselines copy_last, dis_extrapolation and prior_only (the model's untrained twin: the motion prior alone)")
    ev.add_argument("--max-samples", "--max_samples", dest="max_samples", type=_positive_int, default=None)
    ev.add_argument("--batch-size", "--batch_size", dest="batch_size", type=_positive_int, default=4)
    ev.add_argument("--num-workers", "--num_workers", dest="num_workers", type=int, default=0)
    ev.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    ev.add_argument("--scale-factor", "--scale_factor", dest="scale_factor", type=_scale, default=1.0)
    ev.add_argument("--lpips-weights", dest="lpips_weights", default=None, help="AlexNet ImageNet weights for LPIPS")
    ev.add_argument("--bgr-like-published", "--bgr_like_published", dest="bgr_like_published", action="store_true",
                    help="quirk of DMVFN's published code: score MS-SSIM and LPIPS on BGR frames (changes LPIPS only; "
                    "off by default, recorded in the results' meta)")
    ev.add_argument("--output", required=True, help="results .json: meta, model, copy_last, dis_extrapolation, prior_only (a .csv is written next to it)")
    ev.add_argument("--no-progress", dest="progress", action="store_false")

    pr = sub.add_parser("predict", help="predict the frames after the end of a video or frames folder",
                        description="Predict the --steps frames after the source's last frame (by default), or after "
                        "a context window starting at --context-start.")
    pr.add_argument("source", help="video file or folder of frames")
    pr.add_argument("--checkpoint", default=None,
                    help="checkpoint file (default: the packaged model ifrvp-s-real, where installed)")
    pr.add_argument("--steps", type=_positive_int, default=5, help="frames to predict")
    pr.add_argument("--output", "--out", dest="output", required=True,
                    help="OUT.mp4, OUT.avi, OUT.gif, or an output folder for PNGs")
    pr.add_argument("--fps", type=_positive_float, default=None, help="output frame rate (default: the source's, 25 for folders)")
    pr.add_argument("--context-start", "--context_start", dest="context_start", type=int, default=None,
                    help="index of the first context frame; negative counts from the end (-3: the third-last frame); "
                    "default: the last K frames (K = the model's context frames), predicting past the end")
    pr.add_argument("--with-context", "--with_context", dest="with_context", action="store_true",
                    help="write the K context frames before the predictions")
    pr.add_argument("--side-by-side", "--side_by_side", dest="side_by_side", action="store_true",
                    help="write context | prediction | truth | error panels (truth where the source has it)")
    pr.add_argument("--scale-factor", "--scale_factor", dest="scale_factor", type=_scale, default=1.0)
    pr.add_argument("--device", default=None)
    pr.add_argument("--no-progress", "--no_progress", dest="progress", action="store_false")

    it = sub.add_parser("interpolate", help="frames between two images")
    it.add_argument("frame_a")
    it.add_argument("frame_b")
    it.add_argument("--checkpoint", required=True)
    it.add_argument("--times", type=_times, default=[0.5], help="comma-separated times, e.g. 0.25,0.5,0.75")
    it.add_argument("--out", default="interpolated", help="output folder")
    it.add_argument("--scale-factor", "--scale_factor", dest="scale_factor", type=_scale, default=1.0)
    it.add_argument("--device", default=None)
    return parser


def _load(checkpoint: str, device):
    from ifrvp_core.checkpoint import load_model  # heavy (torch)
    from ifrvp_core.rollout import resolve_device  # heavy (torch)

    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return load_model(path, device=resolve_device(device))


def _evaluate(args) -> int:
    from ifrvp_core.evaluate import evaluate_model  # heavy (torch)
    from ifrvp_core.protocols import get_protocol  # heavy (torch)
    from ifrvp_core.results import format_table, save_results  # heavy (torch)

    model = None
    if args.checkpoint.lower() != "none":
        model = _load(args.checkpoint, args.device)
    elif not args.baselines:
        raise UserError("--checkpoint none evaluates nothing without --baselines")
    protocol = get_protocol(args.protocol or args.dataset).for_dataset(args.dataset)
    if args.data_root is not None and not Path(args.data_root).exists():
        raise UserError(f"data root not found: {args.data_root}")
    output = Path(args.output)
    if output.suffix.lower() != ".json":
        raise UserError(f"--output must be a .json file, got {output}")
    results = evaluate_model(
        model, protocol, checkpoint=None if model is None else Path(args.checkpoint).resolve(), baselines=args.baselines,
        scale_factor=args.scale_factor, written_by="ifrvp evaluate", steps=args.steps, batch_size=args.batch_size,
        device=args.device, num_workers=args.num_workers, max_samples=args.max_samples, progress=args.progress,
        root=args.data_root, lpips_weights=args.lpips_weights, bgr_like_published=args.bgr_like_published,
    )
    variant = f", model = {results.meta['variant']}" if model is not None else ""
    print(f"protocol {protocol.name}: {len(results.sample_names)} samples, t+1..t+{results.steps}{variant}")
    print(format_table(results))
    written = save_results(results, output)
    print("wrote " + ", ".join(str(path) for path in written.values()))
    return 0


def _predict(args) -> int:
    from ifrvp_core.checkpoint import load_packaged_model  # heavy (torch)
    from ifrvp_core.predict import iter_source_frames, predict_video  # heavy (torch)
    from ifrvp_core.rollout import resolve_device  # heavy (torch)

    iter_source_frames(args.source)  # fail on a bad source before loading the model
    if args.checkpoint is None:
        model = load_packaged_model(device=resolve_device(args.device))
    else:
        model = _load(args.checkpoint, args.device)
    info = predict_video(
        model, args.source, args.steps, args.output, context_start=args.context_start, fps=args.fps,
        side_by_side=args.side_by_side, with_context=args.with_context, scale_factor=args.scale_factor,
        device=args.device, progress=args.progress,
    )
    truth = f", {info['truth_frames']} with truth" if args.side_by_side else ""
    first, last = info["first_predicted"], info["first_predicted"] + args.steps - 1
    context = f"{info['context_frames']} context + " if info["context_frames"] else ""
    print(f"wrote {info['frames']} frames ({info['width']}x{info['height']}{truth}) to {info['out']}: "
          f"{context}predicted frames {first}..{last} of {args.source}")
    return 0


def _interpolate(args) -> int:
    from ifrvp_core.predict import interpolate_files  # heavy (torch)

    for path in (args.frame_a, args.frame_b):
        if not Path(path).is_file():
            raise UserError(f"image not found: {path}")
    model = _load(args.checkpoint, args.device)
    written = interpolate_files(model, args.frame_a, args.frame_b, args.times, args.out, args.scale_factor)
    print(f"wrote {len(written)} frames to {args.out}")
    return 0


def main(argv=None) -> int:
    """Entry point of the `ifrvp` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        # Everything after `train` belongs to the training parser (its own --help and errors).
        from ifrvp_core.train import main as train_main  # heavy (torch)

        code = train_main(argv[1:])
        return int(code or 0)
    args = build_parser().parse_args(argv)
    handlers = {"evaluate": _evaluate, "predict": _predict, "interpolate": _interpolate}
    try:
        return handlers[args.command](args)
    except user_errors() as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"ifrvp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ifrvp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
