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

    python benchmarks/train_throughput.py --models IFRNet_S --procs 1 --crop 128 --motion_prior default none --repeats 3

`--motion_prior` runs each model once per value: `default` is the recipe as a user gets it (for
extrapolation the DIS prior, computed by the loader workers), any other value is passed as
`--motion_prior`. With `--repeats` the configurations run in turn, that many times (on a shared
machine the load drifts; interleaving spreads it over all of them), and the medians pool the
windows of all repeats. Per configuration it prints the median step time and samples/s, the
data-wait share and the sum of `main_process_dis_calls` over every train record (the DIS flows the
training process computed itself: 0 when the workers compute the prior); with `default` and
`none` both given, the step-time ratio default/none (of the pooled medians, and per repeat). The
target: the default recipe's step within 5 % of `none` (ratio <= 1.05). Exit code 1 when a
configuration with loader workers and a DIS prior made the training process run DIS.
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


def measure(model: str, nproc: int, args, data_root: Path, log_root: Path, motion_prior: str = "default", repeat: int = 0) -> dict:
    run_name = f"{model}_p{nproc}_{motion_prior}_r{repeat}"
    steps = (1 + args.windows) * args.window_steps  # the first window warms up (allocator, workers, caches)
    train_args = [
        "-m", "ifrvp_core.train", f"--model_name={model}", "--dataset=synthetic", f"--data_root={data_root}",
        f"--crop_size={args.crop}", f"--batch_size={args.batch_size}", f"--max_steps={steps}", "--epochs=1000",
        f"--log_interval={args.window_steps}", f"--log_path={log_root}", f"--run_name={run_name}",
        "--val_samples=0",  # throughput only
    ]
    if args.num_workers is not None:
        train_args.append(f"--num_workers={args.num_workers}")
    if motion_prior != "default":
        train_args.append(f"--motion_prior={motion_prior}")
    prefix = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.time()
    done = subprocess.run(prefix + train_args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{model} x{nproc} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (log_root / run_name / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    windows = [r for r in train if r["iteration"] > args.window_steps]
    rates = [r["samples_per_s"] for r in windows]
    waits = [r["data_wait_share"] for r in windows]
    config = json.loads((log_root / run_name / "config.json").read_text())
    return {
        "model": model, "processes": nproc, "batch_per_process": args.batch_size, "crop": args.crop,
        "motion_prior": motion_prior, "num_workers": config["num_workers"], "repeat": repeat,
        "samples_per_s_median": statistics.median(rates), "samples_per_s_windows": rates,
        "step_time_s_windows": [args.batch_size * nproc / rate for rate in rates],
        "data_wait_share_median": statistics.median(waits), "data_wait_share_windows": waits,
        # every train record, the warm-up window too: the DIS the training process ran itself
        "main_process_dis_calls": sum(r.get("main_process_dis_calls", 0) for r in train),
        "wall_s": time.time() - started,
    }


def pooled(runs: list[dict]) -> dict:
    """The repeats of one configuration together: medians over all their windows, DIS calls summed."""
    rates = [rate for run in runs for rate in run["samples_per_s_windows"]]
    steps = [step for run in runs for step in run["step_time_s_windows"]]
    waits = [wait for run in runs for wait in run["data_wait_share_windows"]]
    first = runs[0]
    return {
        **{key: first[key] for key in ("model", "processes", "batch_per_process", "crop", "motion_prior", "num_workers")},
        "repeats": len(runs), "samples_per_s_median": statistics.median(rates), "step_time_s_median": statistics.median(steps),
        "step_time_s_repeat_medians": [statistics.median(run["step_time_s_windows"]) for run in runs],
        "data_wait_share_median": statistics.median(waits),
        "main_process_dis_calls": sum(run["main_process_dis_calls"] for run in runs), "runs": runs,
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
    parser.add_argument("--motion_prior", nargs="+", default=["default"],
                        help="one run per value: default (the recipe's, for extrapolation DIS in the loader workers) or a "
                             "--motion_prior value (none, dis)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every configuration, in turn")
    parser.add_argument("--data_root", default=None, help="synthetic set with frames >= crop (generated if missing)")
    parser.add_argument("--out", default="reports/train_throughput.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    work = Path(tempfile.mkdtemp(prefix="ifrvp_train_bench_"))
    side = args.crop + 32
    data_root = Path(args.data_root) if args.data_root else work / "synthetic"
    # enough windows that every process gets warmup + all windows of batches within one epoch
    ensure_synthetic(data_root, progress=False, train_clips=max(8, max(args.procs) * args.batch_size // 2), test_clips=2,
                     num_frames=12, height=side, width=side + 64)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; torch {torch.__version__}; crop {args.crop}, batch {args.batch_size}/process, "
          f"median of {args.windows} windows x {args.window_steps} steps after one warm-up window, {args.repeats} repeat(s)")
    configurations = [(model, nproc, prior) for model in args.models for nproc in args.procs for prior in args.motion_prior]
    runs: dict[tuple, list[dict]] = {configuration: [] for configuration in configurations}
    for repeat in range(args.repeats):
        for model, nproc, prior in configurations:
            result = measure(model, nproc, args, data_root, work / "runs", prior, repeat)
            runs[(model, nproc, prior)].append(result)
            print(f"{model:10s} procs={nproc} prior={prior:7s} repeat {repeat}: {result['samples_per_s_median']:7.2f} samples/s  "
                  f"data wait {100 * result['data_wait_share_median']:5.1f}%  main-process DIS calls {result['main_process_dis_calls']}  "
                  f"(windows: {', '.join(f'{r:.2f}' for r in result['samples_per_s_windows'])}; {result['wall_s']:.0f} s)", flush=True)
    results = {configuration: pooled(done) for configuration, done in runs.items()}
    print("\nmodel      procs prior    workers  step ms  samples/s  data wait  main-process DIS calls")
    for (model, nproc, prior), result in results.items():
        print(f"{model:10s} {nproc:5d} {prior:8s} {result['num_workers']:7d}  {1000 * result['step_time_s_median']:7.1f}  "
              f"{result['samples_per_s_median']:9.2f}  {100 * result['data_wait_share_median']:8.1f}%  {result['main_process_dis_calls']:6d}")
    ratios = []
    for model in args.models:
        for nproc in args.procs:
            if (model, nproc, "default") in results and (model, nproc, "none") in results:
                default, none = results[(model, nproc, "default")], results[(model, nproc, "none")]
                ratio = default["step_time_s_median"] / none["step_time_s_median"]
                per_repeat = [a / b for a, b in zip(default["step_time_s_repeat_medians"], none["step_time_s_repeat_medians"])]
                ratios.append({"model": model, "processes": nproc, "step_time_ratio_default_over_none": ratio,
                               "per_repeat": per_repeat})
                print(f"{model} procs={nproc}: step time default/none {ratio:.3f} (per repeat: "
                      f"{', '.join(f'{r:.3f}' for r in per_repeat)}; target <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'})")
    # a DIS prior from the loader workers: the training process itself must have run no DIS
    leaks = [result for result in results.values()
             if result["num_workers"] > 0 and result["motion_prior"] != "none" and result["main_process_dis_calls"] > 0]
    for result in leaks:
        print(f"error: {result['model']} prior={result['motion_prior']} with {result['num_workers']} loader workers: "
              f"the training process ran DIS {result['main_process_dis_calls']} times (expected 0)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"device": device, "torch": str(torch.__version__), "results": list(results.values()),
                               "ratios": ratios}, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
