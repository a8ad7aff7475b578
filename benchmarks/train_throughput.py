"""Training throughput (samples/s) and data-wait share of the real trainer, 1 and N processes.

    python benchmarks/train_throughput.py                                  # IFRNet_S and IFRNet, 224 crops, batch 4, 1 and 2 procs
    python benchmarks/train_throughput.py --models IFRNet_T --crop 64 --windows 3 --window_steps 2  # quick check

Each configuration runs `ifrvp_core.train` exactly as a user would (torchrun with gloo on CPU,
nccl on GPU) for `(1 + windows) * window_steps` steps with `--log_interval window_steps`; every
log record then covers one measurement window. The first window is discarded (warm-up) and the
median over the others is reported. Samples/s counts all processes (batch is per process). The
data-wait share is the fraction of the step time spent waiting for the DataLoader (default
`num_workers` of TrainConfig unless `--num_workers` is given). Results go to stdout as a table and
to `--out` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ifrvp_core.data import ensure_synthetic  # noqa: E402


def measure(model: str, nproc: int, args, data_root: Path, log_root: Path) -> dict:
    run_name = f"{model}_p{nproc}"
    steps = (1 + args.windows) * args.window_steps  # the first window warms up (allocator, workers, caches)
    train_args = [
        "-m", "ifrvp_core.train", f"--model_name={model}", "--dataset=synthetic", f"--data_root={data_root}",
        f"--crop_size={args.crop}", f"--batch_size={args.batch_size}", f"--max_steps={steps}", "--epochs=1000",
        f"--log_interval={args.window_steps}", f"--log_path={log_root}", f"--run_name={run_name}",
        "--val_samples=0",  # throughput only
    ]
    if args.num_workers is not None:
        train_args.append(f"--num_workers={args.num_workers}")
    prefix = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.time()
    done = subprocess.run(prefix + train_args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{model} x{nproc} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (log_root / run_name / "log.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["kind"] == "train" and r["iteration"] > args.window_steps]
    rates = [r["samples_per_s"] for r in windows]
    waits = [r["data_wait_share"] for r in windows]
    return {
        "model": model, "processes": nproc, "batch_per_process": args.batch_size, "crop": args.crop,
        "samples_per_s_median": statistics.median(rates), "samples_per_s_windows": rates,
        "data_wait_share_median": statistics.median(waits), "data_wait_share_windows": waits,
        "wall_s": time.time() - started,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["IFRNet_S", "IFRNet"])
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--window_steps", type=int, default=3)
    parser.add_argument("--num_workers", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--data_root", default=None, help="synthetic set with frames >= crop (generated if missing)")
    parser.add_argument("--out", default="reports/train_throughput.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ifrvp_train_bench_"))
    side = args.crop + 32
    data_root = Path(args.data_root) if args.data_root else work / "synthetic"
    # enough windows that every process gets warmup + all windows of batches within one epoch
    ensure_synthetic(data_root, progress=False, train_clips=max(8, max(args.procs) * args.batch_size // 2), test_clips=2,
                     num_frames=12, height=side, width=side + 64)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; torch {torch.__version__}; crop {args.crop}, batch {args.batch_size}/process, "
          f"median of {args.windows} windows x {args.window_steps} steps after one warm-up window")
    results = []
    for model in args.models:
        for nproc in args.procs:
            result = measure(model, nproc, args, data_root, work / "runs")
            results.append(result)
            print(f"{model:10s} procs={nproc}  {result['samples_per_s_median']:7.2f} samples/s  "
                  f"data wait {100 * result['data_wait_share_median']:5.1f}%  "
                  f"(windows: {', '.join(f'{r:.2f}' for r in result['samples_per_s_windows'])}; {result['wall_s']:.0f} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"device": device, "torch": str(torch.__version__), "results": results}, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
