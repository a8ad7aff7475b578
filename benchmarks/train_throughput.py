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

    python benchmarks/train_throughput.py --models IFRNet_S --crop 128 --profile_main --repeats 5

`--profile_main` looks inside the training process instead (no torchrun, no loader in the timed
loop): the same batches, collected first, go through `Trainer.train_step` of the default recipe
(its `prior_flow` from the batch) and of `--motion_prior none`, interleaved; it prints the median
step of each and the median time of the pieces only the prior model runs: `prior_pyramid` and
decoder4's `warp_each` of the coarsest features (forward and backward), and the DIS prior of one
batch (what the loader workers compute per step, on the same cores when the machine has few).
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

from ifrvp_core.data import ensure_synthetic, set_loader_epoch  # noqa: E402
from ifrvp_core.models.ifrnet import prior_pyramid, warp_each  # noqa: E402
from ifrvp_core.motion_prior import constant_velocity_prior  # noqa: E402
from ifrvp_core.train import Dist, TrainConfig, Trainer  # noqa: E402


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


def median_ms(function, repeats: int) -> list[float]:
    """`function()` timed `repeats` times after one warm-up call: CPU milliseconds of this process (all its threads)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        function()
        times.append(1000 * (time.process_time() - started))
    return times


def profile_main(model: str, args, data_root: Path, log_root: Path) -> dict:
    """The training step of the default recipe vs `--motion_prior none` on the same batches, and the prior's pieces."""
    trainers, batches = {}, {}
    steps = args.windows * args.window_steps
    for prior in ("default", "none"):
        extra = {} if prior == "default" else {"motion_prior": "none"}
        config = TrainConfig(model_name=model, dataset="synthetic", data_root=str(data_root), crop_size=args.crop,
                             batch_size=args.batch_size, num_workers=0, val_samples=0, log_path=str(log_root),
                             run_name=f"profile_{model}_{prior}", seed=0, **extra)
        trainer = Trainer(config, Dist())
        trainer.model.train()
        set_loader_epoch(trainer.loader, 0)
        batches[prior] = [batch for batch, _ in zip(trainer.loader, range(steps + 1))]  # DIS here, before the timing
        trainers[prior] = trainer
    if "prior_flow" not in batches["default"][0]:
        raise RuntimeError("the default recipe's batches carry no prior_flow: not a motion-prior model?")
    # wall time, and the CPU time of this process (all threads): on a shared machine the CPU time is
    # what the step costs, the wall time also holds the time other jobs had the cores
    times, cpu = {"default": [], "none": []}, {"default": [], "none": []}
    for prior in times:  # warm-up step
        trainers[prior].train_step(batches[prior][0])
    for index in range(1, steps + 1):
        for prior in list(times)[:: 1 if index % 2 else -1]:
            started, started_cpu = time.perf_counter(), time.process_time()
            trainers[prior].train_step(batches[prior][index])
            times[prior].append(1000 * (time.perf_counter() - started))
            cpu[prior].append(1000 * (time.process_time() - started_cpu))
    batch = batches["default"][0]
    prior_flow, size = batch["prior_flow"], tuple(batch["context"].shape[-2:])
    pyramid = prior_pyramid(prior_flow, size, size)
    k = batch["context"].shape[1]
    with torch.no_grad():  # the coarsest features' shape, from the model's own encoder (crops are multiples of 16)
        coarsest = trainers["default"].model.encoder(batch["context"].flatten(0, 1))[3]
    level4 = pyramid[0]
    features = torch.randn(args.batch_size, k, *coarsest.shape[1:], requires_grad=True)

    def warp_forward_backward():
        warp_each(features, level4).sum().backward()

    return {
        "model": model, "step_ms": {prior: statistics.median(values) for prior, values in times.items()},
        "step_ms_all": times, "step_cpu_ms": {prior: statistics.median(values) for prior, values in cpu.items()}, "step_cpu_ms_all": cpu,
        "prior_pyramid_ms": statistics.median(median_ms(lambda: prior_pyramid(prior_flow, size, size), 3 * args.repeats)),
        "decoder4_warp_ms": statistics.median(median_ms(warp_forward_backward, 3 * args.repeats)),
        "dis_prior_per_batch_ms": statistics.median(median_ms(
            lambda: constant_velocity_prior(batch["context"], batch["target_times"][:, 0]), args.repeats)),
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
    parser.add_argument("--profile_main", action="store_true", help="time the pieces of the training step in this process instead")
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
    if args.profile_main:
        for model in args.models:
            profile = profile_main(model, args, data_root, work / "runs")
            steps = profile["step_ms"]
            cpu = profile["step_cpu_ms"]
            print(f"{model}: train_step median wall {steps['default']:.1f} ms (default) vs {steps['none']:.1f} ms (none), ratio "
                  f"{steps['default'] / steps['none']:.3f}; CPU {cpu['default']:.1f} vs {cpu['none']:.1f} ms, ratio "
                  f"{cpu['default'] / cpu['none']:.3f}; CPU ms of prior_pyramid {profile['prior_pyramid_ms']:.2f}, decoder4 "
                  f"warp fwd+bwd {profile['decoder4_warp_ms']:.2f}, the DIS prior of one batch (in the workers) "
                  f"{profile['dis_prior_per_batch_ms']:.1f}", flush=True)
            for prior in ("default", "none"):
                print(f"  {prior:7s} steps wall ms: {', '.join(f'{v:.0f}' for v in profile['step_ms_all'][prior])}; "
                      f"CPU ms: {', '.join(f'{v:.0f}' for v in profile['step_cpu_ms_all'][prior])}")
        return 0
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
