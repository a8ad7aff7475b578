"""GPU check: the GPU code paths that CPU-only sessions cannot run, in one script (about 5 minutes on one GPU).

    python benchmarks/gpu_check.py --out gpu_check.json           # on a machine with one CUDA GPU
    python benchmarks/gpu_check.py --out dry.json --cpu-dry-run     # the same sections, tiny, on CPU

Sections (each one's failure is recorded in the JSON with its error; the others still run; the
JSON is rewritten atomically after every section, so a killed run leaves what it measured):

- `environment`: GPU name, memory, compute capability, torch / CUDA / cuDNN / NCCL versions.
- `parity`: every variant built with the same seed on CPU and on the GPU, fp32 outputs at
  256x448 compared (TF32 off): max abs difference < 1e-4 is the bar.
- `training`: the real trainer (`ifrvp_core.train.Trainer`) for 200 steps on synthetic data with
  `--amp none`, `bf16` and `fp16` (`--motion_prior none`, see `training`): the loss must decrease (mean of the last 20 steps below the
  first 20), no non-finite steps but fp16's first scaler calibration; samples/s.
- `compile`: training steps of a `torch.compile`d model against eager (same seed, same batch):
  compile time, step times, loss decreasing, forward difference against eager at the initial weights.
- `ddp_nccl`: one-process `init_process_group("nccl")` + DistributedDataParallel: an all-reduce,
  and 3 SGD steps equal to the same steps without DDP.
- `inference`: latency (median), frames/s and peak memory of `predict` for every variant at
  256x448 and 1024x2048, batch 1, fp32 and bf16 autocast (IFRNet's published time: 25 ms at
  256x448 on one GPU).

`--budget_s` (default 420) bounds the whole run: a section that starts late shrinks or records
what it skipped. Without CUDA the script prints that no GPU is present and exits 0 (the JSON
says so too); `--cpu-dry-run` then runs every section at toy sizes on the CPU (gloo instead of
nccl, no compile unless `--compile-on-cpu`) to check the script itself.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from ifrvp_core.checkpoint import write_text_atomic  # noqa: E402
from ifrvp_core.data import build_dataset, collate, ensure_synthetic  # noqa: E402
from ifrvp_core.losses import PredictionLoss  # noqa: E402
from ifrvp_core.models import build_model, list_models, prepare_for_inference  # noqa: E402
from ifrvp_core.profiling import time_predict  # noqa: E402 - the timing loop of benchmarks/model_speed.py
from ifrvp_core.train import Dist, TrainConfig, Trainer  # noqa: E402

NO_GPU = "no GPU present (torch.cuda.is_available() is False) — nothing to check"
PARITY_TOLERANCE = 1e-4
PUBLISHED_MS = {"IFRNet": 25.0}  # IFRNet paper, 256x448 on one GPU


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in size.lower().split("x")) for size in text.split(",")]
    except ValueError:
        raise SystemExit(f"--sizes expects HxW[,HxW...], got {text!r}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- sections
def environment(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as error:  # noqa: BLE001
            info["nccl"] = f"unavailable: {error}"
    return info


def parity(device: torch.device, models: list[str], size: tuple[int, int]) -> dict:
    """fp32 `predict` on CPU and on `device` from the same weights and input; TF32 off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    height, width = size
    frames = torch.rand(1, 2, 3, height, width, generator=torch.Generator().manual_seed(0))
    rows = {}
    for name in models:
        torch.manual_seed(0)
        model = build_model(name).eval()
        with torch.inference_mode():
            reference = model.predict(frames, 2.0)
            moved = model.to(device).predict(frames.to(device), 2.0).cpu()
        diff = (reference - moved).abs().max().item()
        rows[name] = {"max_abs_diff": diff, "ok": diff < PARITY_TOLERANCE}
        del model
    return {"ok": all(row["ok"] for row in rows.values()), "size": f"{height}x{width}", "tolerance": PARITY_TOLERANCE, "models": rows}


def synthetic_root(workdir: Path, dry: bool) -> Path:
    size = dict(train_clips=4, test_clips=2, num_frames=6, height=48, width=64) if dry else \
        dict(train_clips=16, test_clips=4, num_frames=8, height=128, width=192)
    return ensure_synthetic(workdir / "synthetic", progress=False, **size)


def loss_trend(losses: list[float], window: int) -> dict:
    finite = [x for x in losses if math.isfinite(x)]
    window = max(1, min(window, len(finite) // 2))
    first, last = statistics.mean(finite[:window]), statistics.mean(finite[-window:])
    return {"loss_first": first, "loss_last": last, "loss_decreased": last < first, "window": window}


def training(device: torch.device, data_root: Path, workdir: Path, args, budget: Budget) -> dict:
    """The real trainer with --amp none / bf16 / fp16, `args.train_steps` steps each.

    Without the motion prior: the DIS-prior recipe starts at the prior's quality, and 200 steps of
    IFRNet_T on this data did not lower its loss (CPU, 64 crops, batch 8: 0.0214 -> 0.0232, first
    vs last 20 steps), while without the prior it fell 0.0704 -> 0.0657 (every 20-step mean below the first).
    """
    runs, ok = {}, True
    for amp in ("none", "bf16", "fp16"):
        if budget.left() < 30:
            runs[amp] = {"ok": False, "error": "skipped: time budget spent"}
            ok = False
            continue
        config = TrainConfig(
            model_name=args.train_model, dataset="synthetic", data_root=str(data_root), crop_size=args.train_crop,
            batch_size=args.train_batch, num_workers=args.num_workers, max_steps=args.train_steps, epochs=10_000,
            eval_interval=10_000, val_samples=8, val_batch_size=4, log_interval=1, log_path=str(workdir / "runs"),
            run_name=f"amp_{amp}", amp=amp, seed=0, motion_prior="none",
        )
        started = time.perf_counter()
        try:
            summary = Trainer(config, Dist(device=device)).run()
        except Exception as error:  # noqa: BLE001 - recorded, the next precision still runs
            runs[amp] = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
            ok = False
            continue
        records = [json.loads(line) for line in (config.run_dir / "log.jsonl").read_text().splitlines()]
        train = [r for r in records if r["kind"] == "train"]
        losses = [float(r["loss"]) for r in train]
        rates = [r["samples_per_s"] for r in train[len(train) // 4 :]]  # after warm-up
        row = {
            "steps": summary["iterations"], "wall_s": time.perf_counter() - started, **loss_trend(losses, 20),
            "bad_steps": summary["bad_steps"], "samples_per_s_median": statistics.median(rates) if rates else None,
            "val_psnr": summary["final"].get("psnr"), "model": args.train_model, "crop": args.train_crop, "batch": args.train_batch,
        }
        # fp16's GradScaler starts at 2**16 and may overflow in its first steps (skipped and counted): allowed
        row["ok"] = row["loss_decreased"] and row["steps"] == args.train_steps and (row["bad_steps"] == 0 or (amp == "fp16" and row["bad_steps"] <= 10))
        ok = ok and row["ok"]
        runs[amp] = row
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"ok": ok, "runs": runs}


def compiled_training(device: torch.device, data_root: Path, args, budget: Budget) -> dict:
    """Eager vs `torch.compile` training steps on one fixed batch (same seed): step times, loss trend, forward diff."""
    dataset = build_dataset("synthetic", data_root, "train", augment=True, crop_size=args.train_crop, seed=0)
    batch = collate([dataset[i] for i in range(args.train_batch)])
    frames, target = batch["context"].to(device), batch["target"][:, 0].to(device)
    times, teacher = batch["target_times"][:, 0].to(device), batch["teacher_flow"].to(device)
    loss_fn = PredictionLoss(TrainConfig().loss_config())
    result = {"model": args.compile_model, "steps": args.compile_steps, "batch": args.train_batch, "crop": args.train_crop}
    outputs = {}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_model(args.compile_model).to(device).train()
        network = torch.compile(model) if mode == "compiled" else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        model.eval()  # the forward from the same initial weights, compared below
        with torch.no_grad():
            outputs[mode] = network(frames, times)["prediction"].float().cpu()
        model.train()
        losses, step_times = [], []
        for step in range(args.compile_steps):
            if step > 1 and budget.left() < 20:
                result[f"{mode}_stopped_early"] = f"time budget spent after {step} steps"
                break
            start = time.perf_counter()
            loss, _ = loss_fn(network(frames, times, target=target), target, teacher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            synchronize(device)
            step_times.append(time.perf_counter() - start)
            losses.append(loss.item())
        result[mode] = {"first_step_s": step_times[0], "step_ms_median": 1e3 * statistics.median(step_times[1:] or step_times),
                        "initial_loss": losses[0], **loss_trend(losses, 5)}
        del model, network, optimizer
    result["forward_max_abs_diff_vs_eager"] = (outputs["eager"] - outputs["compiled"]).abs().max().item()
    compiled = result["compiled"]
    # the training loss (forward with target, all terms) at the same initial weights
    result["initial_loss_rel_diff"] = abs(compiled["initial_loss"] - result["eager"]["initial_loss"]) / abs(result["eager"]["initial_loss"])
    result["speedup"] = result["eager"]["step_ms_median"] / compiled["step_ms_median"]
    result["ok"] = (compiled["loss_decreased"] and result["initial_loss_rel_diff"] < 1e-3
                    and all(math.isfinite(v) for v in (compiled["loss_first"], compiled["loss_last"])))
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_one_process(device: torch.device, backend: str) -> dict:
    """world_size 1: an all-reduce, and 3 SGD steps through DDP equal (1e-5) to the same steps without it."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        value = torch.ones(4, device=device)
        dist.all_reduce(value)
        torch.manual_seed(0)
        model = build_model("IFRNet_T").to(device)
        plain = copy.deepcopy(model)
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        generator = torch.Generator().manual_seed(1)
        frames = torch.rand(2, 2, 3, 64, 96, generator=generator).to(device)
        target = torch.rand(2, 3, 64, 96, generator=generator).to(device)
        losses = {}
        for name, network, parameters in (("ddp", wrapped, model.parameters()), ("plain", plain, plain.parameters())):
            # plain SGD: CUDA's grid_sample backward adds atomically (not bit-reproducible); Adam would
            # amplify that noise on near-zero gradients, SGD keeps it at lr x noise
            optimizer = torch.optim.SGD(parameters, lr=0.01)
            losses[name] = []
            for _ in range(3):
                loss = (network(frames, 2.0)["prediction"] - target).abs().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[name].append(loss.item())
        synchronize(device)
        diff = max((a - b).abs().max().item() for a, b in zip(model.state_dict().values(), plain.state_dict().values()))
        return {"ok": value.tolist() == [1.0] * 4 and diff < 1e-5, "backend": backend, "all_reduce": value.tolist(),
                "max_param_diff_vs_plain": diff, "losses": losses}
    finally:
        dist.destroy_process_group()


def inference(device: torch.device, models: list[str], sizes: list[tuple[int, int]], args, budget: Budget) -> dict:
    """Median `predict` latency, frames/s and peak memory per variant, size and precision (batch 1)."""
    rows, ok = [], True
    for name in models:
        model = prepare_for_inference(build_model(name), device=device)
        for height, width in sizes:
            for precision in ("fp32", "bf16"):
                row = {"model": name, "size": f"{height}x{width}", "precision": precision}
                rows.append(row)
                if budget.left() < 10:
                    row["error"] = "skipped: time budget spent"
                    ok = False
                    continue
                try:
                    frames = torch.rand(1, 2, 3, height, width, device=device)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                        torch.cuda.reset_peak_memory_stats(device)
                    large = height * width > 1_000_000
                    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                        times = time_predict(model, frames, args.repeats_large if large else args.repeats, warmup=2)
                    median = statistics.median(times)
                    row.update(ms_median=1e3 * median, ms_min=1e3 * min(times), frames_per_s=1.0 / median)
                    if device.type == "cuda":
                        row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
                    if (height, width) == (256, 448) and name in PUBLISHED_MS and precision == "fp32":
                        row["published_ms"] = PUBLISHED_MS[name]
                except Exception as error:  # noqa: BLE001 - e.g. out of memory at 1024x2048: recorded, the rest runs
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                    ok = False
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
        del model
    return {"ok": ok, "batch": 1, "rows": rows}


# ----------------------------------------------------------------------------- driver
def run_section(report: dict, name: str, out: Path, function, *args) -> None:
    started = time.perf_counter()
    print(f"[{name}] ...", flush=True)
    try:
        result = function(*args)
    except Exception as error:  # noqa: BLE001 - one failing section must not hide the others
        result = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-4000:]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    report["sections"][name] = result
    write_text_atomic(out, json.dumps(report, indent=1, default=str))
    status = "ok" if result.get("ok", True) else f"FAILED {result.get('error', '')}".rstrip()
    print(f"[{name}] {status} ({result['seconds']} s)", flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def print_summary(report: dict) -> None:
    sections = report["sections"]
    print(f"\nGPU check on {report.get('gpu') or report['device']} (torch {report['torch']})")
    for name, result in sections.get("parity", {}).get("models", {}).items():
        print(f"  parity {name:<12} max |cpu - gpu| = {result['max_abs_diff']:.2e}  {'ok' if result['ok'] else 'FAILED'}")
    for amp, run in sections.get("training", {}).get("runs", {}).items():
        if "error" in run:
            print(f"  train amp={amp:<5} FAILED {run['error']}")
        else:
            print(f"  train amp={amp:<5} loss {run['loss_first']:.4f} -> {run['loss_last']:.4f} over {run['steps']} steps, "
                  f"{run['samples_per_s_median'] or 0:.1f} samples/s, bad steps {run['bad_steps']}  {'ok' if run['ok'] else 'FAILED'}")
    compiled = sections.get("compile", {})
    if "compiled" in compiled:
        print(f"  compile {compiled['model']}: step {compiled['eager']['step_ms_median']:.1f} ms eager, "
              f"{compiled['compiled']['step_ms_median']:.1f} ms compiled (first step {compiled['compiled']['first_step_s']:.1f} s), "
              f"forward diff {compiled['forward_max_abs_diff_vs_eager']:.2e}")
    ddp = sections.get("ddp_nccl", {})
    if "backend" in ddp:
        print(f"  DDP ({ddp['backend']}, 1 process): max param diff vs plain {ddp['max_param_diff_vs_plain']:.2e}  {'ok' if ddp['ok'] else 'FAILED'}")
    rows = sections.get("inference", {}).get("rows", [])
    if rows:
        print(f"  {'model':<12} {'size':>10} {'prec':>5} {'ms':>8} {'frames/s':>9} {'peak MiB':>9}")
        for row in rows:
            if "error" in row:
                print(f"  {row['model']:<12} {row['size']:>10} {row['precision']:>5}  {row['error']}")
            else:
                peak = f"{row['peak_memory_mib']:9.0f}" if "peak_memory_mib" in row else f"{'':>9}"
                print(f"  {row['model']:<12} {row['size']:>10} {row['precision']:>5} {row['ms_median']:8.2f} {row['frames_per_s']:9.1f} {peak}")
    failed = [name for name, result in sections.items() if not result.get("ok", True)]
    print(f"\n{'all sections passed' if not failed else 'FAILED: ' + ', '.join(failed)}; details in the JSON")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.json", help="JSON report (written atomically after every section)")
    parser.add_argument("--budget_s", type=float, default=420.0, help="time for the whole check; late sections shrink or skip")
    parser.add_argument("--models", default="all", help="variants for parity and inference (all: every registered one)")
    parser.add_argument("--sizes", default="256x448,1024x2048", help="inference sizes HxW")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--repeats_large", type=int, default=5, help="repeats above 1 Mpixel")
    parser.add_argument("--train_model", default="IFRNet_S")
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--train_crop", type=int, default=128)
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=4)
    parser.add_argument("--compile_model", default="IFRNet_S")
    parser.add_argument("--compile_steps", type=int, default=30)
    parser.add_argument("--cpu-dry-run", dest="cpu_dry_run", action="store_true",
                        help="without a GPU: every section at toy sizes on the CPU (checks this script)")
    parser.add_argument("--compile-on-cpu", dest="compile_on_cpu", action="store_true", help="with --cpu-dry-run: run the compile section too")
    args = parser.parse_args(argv)
    out = Path(args.out)
    report = {"gpu": None, "cuda_available": torch.cuda.is_available(), "torch": torch.__version__,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print(NO_GPU, flush=True)
        report["message"] = NO_GPU
        write_text_atomic(out, json.dumps(report, indent=1))
        return 0
    if args.models == "all":
        args.models = ",".join(list_models())
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cpu":  # the dry run: every section, toy sizes
        args.models, args.sizes, args.repeats, args.repeats_large = "IFRNet_T", "64x96", 2, 1
        args.train_model, args.train_steps, args.train_crop, args.train_batch, args.num_workers = "IFRNet_T", 48, 32, 2, 0
        args.compile_model, args.compile_steps = "IFRNet_T", 4
        report["dry_run"] = "CPU dry run: toy sizes, gloo instead of nccl; the numbers mean nothing"
    else:
        report["gpu"] = torch.cuda.get_device_name(device)
    report["device"] = str(device)
    models = [m for m in args.models.split(",") if m]
    budget = Budget(args.budget_s)
    run_section(report, "environment", out, environment, device)
    run_section(report, "parity", out, parity, device, models, (256, 448) if device.type == "cuda" else (64, 96))
    with tempfile.TemporaryDirectory(prefix="ifrvp_gpu_check_") as tmp:
        workdir = Path(tmp)
        try:
            data_root = synthetic_root(workdir, device.type == "cpu")
        except Exception as error:  # noqa: BLE001
            report["sections"]["synthetic_data"] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            data_root = None
        if data_root is not None:
            run_section(report, "training", out, training, device, data_root, workdir, args, budget)
            if device.type == "cuda" or args.compile_on_cpu:
                run_section(report, "compile", out, compiled_training, device, data_root, args, budget)
            else:
                report["sections"]["compile"] = {"ok": True, "skipped": "CPU dry run without --compile-on-cpu"}
    run_section(report, "ddp_nccl", out, ddp_one_process, device, "nccl" if device.type == "cuda" else "gloo")
    run_section(report, "inference", out, inference, device, models, parse_sizes(args.sizes), args, budget)
    report["total_s"] = round(args.budget_s - budget.left(), 1)
    write_text_atomic(out, json.dumps(report, indent=1, default=str))
    print_summary(report)
    return 0 if all(result.get("ok", True) for result in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
