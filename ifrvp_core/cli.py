"""The `ifrvp` command: train, prep, evaluate, predict, interpolate, export.

    ifrvp --version
    ifrvp train --model_name IFRNet_T ...                   (arguments go to ifrvp_core.train)
    ifrvp prep verify --dataset vimeo90k --data_root data/vimeo_triplet   (arguments go to data_prep)
    ifrvp evaluate --checkpoint best.pt --dataset cityscapes --data_root data/cityscapes \
        --steps 5 --baselines --output reports/cityscapes.json
    ifrvp evaluate --checkpoint none --baselines --dataset synthetic --output baselines.json
    torchrun --nproc_per_node=4 -m ifrvp_core.cli evaluate ...      (ranks split the samples; rank 0 writes)
    ifrvp predict clip.mp4 --checkpoint best.pt --steps 10 --out future.mp4 --side-by-side
    ifrvp interpolate a.png b.png --checkpoint IFRNet_Vimeo90K.pth --times 0.25,0.5,0.75 --output mid/
    ifrvp export --checkpoint best.pt --format torchscript --height 256 --width 448 --output best.ts

Every flag of evaluate and interpolate takes both spellings, `--data_root` and `--data-root`.

Exit codes: 0 success; 2 user error (missing/unreadable file, bad option value), reported as
one line on stderr without a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ifrvp_core import __version__ as SOURCE_VERSION
from ifrvp_core.flags import add_flag, choice_error, choice_type
from ifrvp_core.registry_names import DATASET_NAMES, PROTOCOL_NAMES

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
    from ifrvp_core.weights import WeightsDownloadError  # heavy (torch)

    return (UserError, CheckpointError, DataError, MetricUnavailableError, WeightsDownloadError, FileNotFoundError, NotADirectoryError,
            ValueError)


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


def package_version() -> str:
    """The installed distribution's version (package metadata), else the source tree's."""
    from importlib import metadata  # 30 ms: only for --version, so that `ifrvp --help` stays fast

    try:
        return metadata.version("ifrvp")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return SOURCE_VERSION


class _VersionAction(argparse.Action):
    """`--version`: prints "ifrvp X.Y.Z" and exits; the metadata is read only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="print the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"ifrvp {package_version()}")  # stdout, like argparse's own version action
        parser.exit()


def evaluation_names() -> tuple[list[str], list[str]]:
    """(datasets, protocols) `ifrvp evaluate` accepts: the names of the data and protocol registries."""
    return list(DATASET_NAMES), list(PROTOCOL_NAMES)


def dataset_help() -> str:
    datasets, protocols = evaluation_names()
    without = [name for name in datasets if name not in protocols]
    return (f"one of {', '.join(datasets)}; the protocol of the same name is the default --protocol "
            f"({', '.join(without)}: none, give --protocol)")


def protocol_help() -> str:
    return f"evaluation protocol, one of {', '.join(evaluation_names()[1])} (default: the dataset's own)"


# The choices of ifrvp export --format (ifrvp_core.export.EXPORT_FORMATS, written out for the same reason).
EXPORT_FORMAT_CHOICES = ("torchscript", "onnx")
# The choices of --precision (ifrvp_core.precision.PRECISIONS; written out so that --help imports no torch).
PRECISION_CHOICES = ("fp32", "bf16", "fp16")


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """--precision, --channels_last and --compile of `ifrvp evaluate` and `ifrvp predict` (docs/inference.md)."""
    add_flag(parser, "--precision", type=choice_type(PRECISION_CHOICES), default="fp32",
             help="the model's arithmetic: fp32 (default), bf16 or fp16 (autocast; the DIS prior stays float32, "
             "outputs are float32; fp16/bf16 need torch's autocast on the device)")
    add_flag(parser, "--channels_last", action="store_true",
             help="channels_last memory format for the convolutions (same results up to float rounding)")
    add_flag(parser, "--compile", action="store_true",
             help="torch.compile the model's forward (first frames slow while it compiles; needs a C++ compiler on CPU)")


def prepare_model(model, args):
    """The loaded model with the --channels_last / --compile of `add_inference_flags` applied (eval mode)."""
    from ifrvp_core.models import prepare_for_inference  # heavy (torch)

    return prepare_for_inference(model, channels_last=args.channels_last, compile=args.compile)


def check_inference_flags(args) -> None:
    """UserError naming --precision when the device cannot run it (before anything is loaded)."""
    from ifrvp_core.precision import check_precision  # heavy (torch)
    from ifrvp_core.rollout import resolve_device  # heavy (torch)

    device = resolve_device(args.device)
    try:
        check_precision(args.precision, device)
    except ValueError as error:
        raise UserError(str(error)) from None
    if args.precision == "fp16" and device.type == "cpu":
        print("warning: --precision fp16 on a CPU without native fp16 runs emulated, far slower than fp32 "
              "(measured 70x at 256x448, docs/inference.md); bf16 is the fast CPU choice", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The `ifrvp` parser (train and prep only name themselves here: their own parsers take the rest)."""
    parser = argparse.ArgumentParser(prog="ifrvp", description="IFRNet for video prediction.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="{train,prep,evaluate,predict,interpolate,export}")
    sub.required = True

    sub.add_parser("train", help="train a model (all further arguments go to ifrvp_core.train)", add_help=False)
    sub.add_parser("prep", help="dataset tools: verify, pack, teacher_flow, ... (all further arguments go to python -m data_prep)",
                   add_help=False)

    ev = sub.add_parser("evaluate", help="score a checkpoint and/or the baselines on a test protocol")
    add_flag(ev, "--checkpoint", required=True, help="checkpoint file, a packaged model (ifrvp-s-real), or 'none' with --baselines")
    add_flag(ev, "--dataset", required=True, help=dataset_help())
    add_flag(ev, "--data_root", default=None, help="dataset root (synthetic: optional)")
    add_flag(ev, "--protocol", default=None, help=protocol_help())
    add_flag(ev, "--steps", type=_positive_int, default=5, help="future frames predicted recursively and scored")
    add_flag(ev, "--baselines", action="store_true", help="also score the baselines copy_last, dis_extrapolation and prior_only (the model's untrained twin: the motion prior alone)")
    add_flag(ev, "--max_samples", type=_positive_int, default=None)
    add_flag(ev, "--batch_size", type=_positive_int, default=4)
    add_flag(ev, "--num_workers", type=int, default=0)
    add_flag(ev, "--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    add_flag(ev, "--scale_factor", type=_scale, default=1.0)
    add_flag(ev, "--lpips_weights", default=None, help="AlexNet ImageNet weights file for LPIPS (default: the torch hub cache)")
    add_flag(ev, "--download_weights", action="store_true",
             help="download LPIPS's AlexNet ImageNet weights into the torch hub cache when they are missing "
             "(same as IFRVP_ALLOW_DOWNLOAD=1); without them LPIPS is reported n/a")
    add_flag(ev, "--bgr_like_published", action="store_true",
             help="quirk of DMVFN's published code: score MS-SSIM and LPIPS on BGR frames (changes LPIPS only; "
             "off by default, recorded in the results' meta)")
    add_inference_flags(ev)
    add_flag(ev, "--output", required=True, help="results .json: meta, model, copy_last, dis_extrapolation, prior_only (a .csv is written next to it)")
    add_flag(ev, "--save_images", default=None, metavar="DIR",
             help="a new or empty folder: write every scored frame as PNG, DIR/<index>_<sample name>/t+k_<method>.png, "
             "t+k_target.png, context_<i>.png, plus DIR/images.csv (docs/evaluation.md)")
    add_flag(ev, "--no_progress", dest="progress", action="store_false")

    pr = sub.add_parser("predict", help="predict the frames after the end of a video or frames folder",
                        description="Predict the --steps frames after the source's last frame (by default), or after "
                        "a context window starting at --context-start.")
    pr.add_argument("source", help="video file or folder of frames")
    add_flag(pr, "--checkpoint", default=None,
                    help="checkpoint file (default: the packaged model ifrvp-s-real, where installed)")
    add_flag(pr, "--steps", type=_positive_int, default=5, help="frames to predict")
    add_flag(pr, "--output", "--out", required=True,
                    help="OUT.mp4, OUT.avi, OUT.gif, or an output folder for PNGs")
    add_flag(pr, "--fps", type=_positive_float, default=None, help="output frame rate (default: the source's, 25 for folders)")
    add_flag(pr, "--context_start", type=int, default=None,
                    help="index of the first context frame; negative counts from the end (-3: the third-last frame); "
                    "default: the last K frames (K = the model's context frames), predicting past the end")
    add_flag(pr, "--with_context", action="store_true",
                    help="write the K context frames before the predictions")
    add_flag(pr, "--side_by_side", action="store_true",
                    help="write context | prediction | truth | error panels (truth where the source has it)")
    add_flag(pr, "--scale_factor", type=_scale, default=1.0)
    add_flag(pr, "--device", default=None)
    add_inference_flags(pr)
    add_flag(pr, "--no_progress", dest="progress", action="store_false")

    ex = sub.add_parser("export", help="write a checkpoint's network as TorchScript or ONNX (fixed frame size)",
                        description="Export the network with the motion prior as an explicit input: frames (B,K,3,H,W), "
                        "t (B,), prior_flow (B,2K,H,W) for motion-prior models -> prediction (B,3,H,W). The file runs "
                        "at --height x --width only; ifrvp_core.export.load_exported runs it (docs/inference.md).")
    add_flag(ex, "--checkpoint", required=True, help="checkpoint file or a packaged model (ifrvp-s-real)")
    add_flag(ex, "--format", type=choice_type(EXPORT_FORMAT_CHOICES), required=True,
             help="torchscript (torch.jit.trace) or onnx (needs pip install 'ifrvp[export]')")
    add_flag(ex, "--output", required=True, help="the file: .pt/.ts/.torchscript for torchscript, .onnx for onnx")
    add_flag(ex, "--height", type=_positive_int, default=256, help="frame height the file runs at (default 256)")
    add_flag(ex, "--width", type=_positive_int, default=448, help="frame width the file runs at (default 448)")
    add_flag(ex, "--batch", type=_positive_int, default=1,
             help="batch size baked into the file (default 1; load_exported runs larger batches in chunks)")
    add_flag(ex, "--scale_factor", type=_scale, default=1.0, help="the model's internal resize, baked in")

    it = sub.add_parser("interpolate", help="frames between two images")
    it.add_argument("frame_a")
    it.add_argument("frame_b")
    add_flag(it, "--checkpoint", required=True)
    add_flag(it, "--times", type=_times, default=[0.5], help="comma-separated times, e.g. 0.25,0.5,0.75")
    add_flag(it, "--output", "--out", default="interpolated", help="output folder (--out: its old name)")
    add_flag(it, "--scale_factor", type=_scale, default=1.0)
    add_flag(it, "--device", default=None)
    return parser


def checkpoint_file(checkpoint: str) -> Path:
    """The file `--checkpoint` names: a path, or a packaged model's file for a packaged model's name."""
    from ifrvp_core.checkpoint import is_packaged_name, packaged_checkpoint_path  # heavy (torch)

    return packaged_checkpoint_path(checkpoint) if is_packaged_name(checkpoint) else Path(checkpoint).resolve()


def _load(checkpoint: str, device):
    """The model of `checkpoint` (a file or a packaged model's name) on `device` (None: CUDA when available)."""
    from ifrvp_core.checkpoint import is_packaged_name, load_model  # heavy (torch)
    from ifrvp_core.rollout import resolve_device  # heavy (torch)

    if not Path(checkpoint).is_file() and not is_packaged_name(checkpoint):
        raise UserError(f"checkpoint not found: {checkpoint}")
    return load_model(checkpoint, device=resolve_device(device))


def resolve_protocol(dataset: str, protocol: str | None):
    """The Protocol of `--dataset` / `--protocol`; UserError naming the flag, the valid names and the closest."""
    from ifrvp_core.protocols import get_protocol  # heavy (torch)

    datasets, protocols = evaluation_names()
    key = str(dataset).lower()
    if key not in datasets:
        raise UserError(choice_error("--dataset", dataset, datasets))
    if protocol is None and key not in protocols:
        raise UserError(f"--dataset {key} has no protocol of its own: give --protocol, one of {', '.join(protocols)}")
    try:
        return get_protocol(protocol or key).for_dataset(key)
    except ValueError:
        raise UserError(choice_error("--protocol", protocol, protocols)) from None


def _evaluate(args) -> int:
    """`ifrvp evaluate`; under torchrun every rank scores its share of the samples and rank 0
    prints the table and writes the files (`ifrvp_core.eval_ranks`)."""
    from ifrvp_core.eval_ranks import join_torchrun, leave, local_device, synchronise  # heavy (torch)
    from ifrvp_core.evaluate import evaluate_model  # heavy (torch)
    from ifrvp_core.metrics import fetch_lpips_weights  # heavy (torch)
    from ifrvp_core.results import format_table, save_results  # heavy (torch)
    from ifrvp_core.sample_images import folder_problem  # heavy (torch)

    # Every check of what was typed comes before loading anything.
    protocol = resolve_protocol(args.dataset, args.protocol)
    if args.checkpoint.lower() == "none" and not args.baselines:
        raise UserError("--checkpoint none evaluates nothing without --baselines")
    if args.data_root is not None and not Path(args.data_root).exists():
        raise UserError(f"--data_root not found: {args.data_root}")
    output = Path(args.output)
    if output.suffix.lower() != ".json":
        raise UserError(f"--output must be a .json file, got {output}")
    check_inference_flags(args)
    problem = None if args.save_images is None else folder_problem(Path(args.save_images), "--save_images")
    if problem is not None:
        raise UserError(problem)
    rank, world_size = join_torchrun()
    device = local_device(args.device, world_size)
    model = None if args.checkpoint.lower() == "none" else _load(args.checkpoint, device)
    model = None if model is None else prepare_model(model, args)
    if args.download_weights and "lpips" in protocol.metrics:
        if rank == 0:  # one download, then every rank finds the file
            fetch_lpips_weights(args.lpips_weights)
        synchronise(world_size)
    results = evaluate_model(
        model, protocol, checkpoint=None if model is None else checkpoint_file(args.checkpoint), baselines=args.baselines,
        scale_factor=args.scale_factor, written_by="ifrvp evaluate", steps=args.steps, batch_size=args.batch_size,
        device=device, num_workers=args.num_workers, max_samples=args.max_samples, progress=args.progress,
        root=args.data_root, lpips_weights=args.lpips_weights, bgr_like_published=args.bgr_like_published,
        save_images=args.save_images, precision=args.precision,
    )
    if rank == 0:
        variant = f", model = {results.meta['variant']}" if model is not None else ""
        ranks = f", {world_size} ranks" if world_size > 1 else ""
        print(f"protocol {protocol.name}: {len(results.sample_names)} samples, t+1..t+{results.steps}{variant}{ranks}")
        print(format_table(results))
        written = save_results(results, output)
        if args.save_images is not None:
            written["images"] = Path(args.save_images)
        print("wrote " + ", ".join(str(path) for path in written.values()))
    leave(world_size)
    return 0


def _predict(args) -> int:
    from ifrvp_core.checkpoint import DEFAULT_PACKAGED_MODEL  # heavy (torch)
    from ifrvp_core.predict import iter_source_frames, predict_video  # heavy (torch)

    iter_source_frames(args.source)  # fail on a bad source before loading the model
    check_inference_flags(args)
    # no --checkpoint: the packaged model (load_model names what is installed when it is not)
    model = prepare_model(_load(args.checkpoint or DEFAULT_PACKAGED_MODEL, args.device), args)
    info = predict_video(
        model, args.source, args.steps, args.output, context_start=args.context_start, fps=args.fps,
        side_by_side=args.side_by_side, with_context=args.with_context, scale_factor=args.scale_factor,
        device=args.device, progress=args.progress,
        precision=args.precision,
    )
    truth = f", {info['truth_frames']} with truth" if args.side_by_side else ""
    first, last = info["first_predicted"], info["first_predicted"] + args.steps - 1
    context = f"{info['context_frames']} context + " if info["context_frames"] else ""
    print(f"wrote {info['frames']} frames ({info['width']}x{info['height']}{truth}) to {info['out']}: "
          f"{context}predicted frames {first}..{last} of {args.source}")
    return 0


def _export(args) -> int:
    from ifrvp_core.export import check_export_output, export_model, verify_export  # heavy (torch)

    output = Path(args.output)
    check_export_output(args.format, output)  # before loading anything
    model = _load(args.checkpoint, "cpu")
    try:
        path = export_model(model, output, args.format, height=args.height, width=args.width,
                            scale_factor=args.scale_factor, batch=args.batch)
    except ImportError as error:
        raise UserError(str(error)) from None
    k, b, size = model.context_frames, args.batch, f"{args.height},{args.width}"
    prior = f", prior_flow ({b},{2 * k},{size})" if getattr(model, "motion_prior", "none") != "none" else ""
    print(f"wrote {path} ({args.format}, {model.model_name}): frames ({b},{k},3,{size}), t ({b},){prior} "
          f"-> prediction ({b},3,{size}); max |export - PyTorch| on random frames {verify_export(model, path):.1e}")
    return 0


def _interpolate(args) -> int:
    from ifrvp_core.predict import interpolate_files  # heavy (torch)

    for path in (args.frame_a, args.frame_b):
        if not Path(path).is_file():
            raise UserError(f"image not found: {path}")
    model = _load(args.checkpoint, args.device)
    written = interpolate_files(model, args.frame_a, args.frame_b, args.times, args.output, args.scale_factor)
    print(f"wrote {len(written)} frames to {args.output}")
    return 0


def main(argv=None) -> int:
    """Entry point of the `ifrvp` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        # Everything after `train` belongs to the training parser (its own --help and errors).
        from ifrvp_core.train import main as train_main  # heavy (torch)

        code = train_main(argv[1:])
        return int(code or 0)
    if argv and argv[0] == "prep":
        # Everything after `prep` belongs to the data_prep parser, exactly as `python -m data_prep ...`.
        from data_prep.__main__ import main as prep_main  # heavy (torch, OpenCV)

        return int(prep_main(argv[1:], prog="ifrvp prep") or 0)
    args = build_parser().parse_args(argv)
    handlers = {"evaluate": _evaluate, "predict": _predict, "interpolate": _interpolate, "export": _export}
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
