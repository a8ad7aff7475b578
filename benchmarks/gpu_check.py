"""GPU check: the GPU code paths that CPU-only sessions cannot run, in one script (bounded by --budget_s 420).

    python benchmarks/gpu_check.py --out gpu_check.json           # on a machine with one CUDA GPU
    python benchmarks/gpu_check.py --out dry.json --cpu-dry-run     # the same sections, tiny, on CPU
    python benchmarks/gpu_check.py --sections prior_share,export_parity,inference   # some sections only

Sections (each one's failure is recorded in the JSON with its error; the others still run; the
JSON is rewritten atomically after every section, so a killed run leaves what it measured):

- `environment`: GPU name, memory, compute capability, torch / CUDA / cuDNN / NCCL versions.
- `parity`: every variant built with the same seed on CPU and on the GPU, fp32 outputs at
  256x448 compared (TF32 off): max abs difference < 1e-4 is the bar.
- `training`: the real trainer (`ifrvp_core.train.Trainer`) for 200 steps on synthetic data with
  `--amp none`, `bf16` and `fp16` (`--motion_prior none`, see `training`): the loss must decrease (mean of the last 20 steps below the
  first 20), no non-finite steps but fp16's first scaler calibration; samples/s and steps/s. Then
  `extrapolation`: the default extrapolation recipe (the trainer's defaults: `--motion_prior auto`,
  i.e. DIS, the prior computed in the loader workers; fp32) for as many steps: steps/s, every step
  finite (its loss starts at the prior's quality and need not fall in 200 steps).
- `compile`: training steps of a `torch.compile`d model against eager (same seed, same batch):
  compile time, step times, loss decreasing, forward difference against eager at the initial weights.
- `prior_share`: the motion prior's share of one inference of the extrapolation model
  (`--train_model` with `motion_prior="dis"`, `predict` at 256x448 and 1024x2048: OpenCV DIS
  `constant_velocity_prior` alone, the whole `predict`, and the network with the prior passed in),
  and of one training step of the default recipe: the same batch stepped with its `prior_flow`
  (as the loader workers give it) and without (the model computes DIS in the step), interleaved.
  A torch prior such as "lucas_kanade" is timed too when `ifrvp_core.motion_prior.MOTION_PRIORS`
  has it: `constant_velocity_prior(..., method=)` alone and its model's `predict` (which computes
  it on the GPU), and a training step of its recipe (no `prior_flow` in the batches: the step
  computes it on the device).
- `ddp_nccl`: one-process `init_process_group("nccl")` + DistributedDataParallel: an all-reduce,
  and 3 SGD steps equal to the same steps without DDP.
- `export_parity`: `ifrvp_core.export`'s network (`PredictionNetwork`, the DIS prior as an input)
  of a small extrapolation model (IFRNet_T with the DIS prior, perturbed weights, 120x200) traced
  to TorchScript on the GPU, saved, loaded back and run there against PyTorch on the GPU (TF32
  off): max abs difference < 1e-4. The CPU-traced file `export_model` writes is also loaded onto
  the GPU and recorded, not required (tracing bakes the CPU device into it). ONNX in onnxruntime
  too when the optional extra is installed (recorded as skipped, with the reason, otherwise).
- `inference`: latency (median), frames/s and peak memory of `predict` for every variant at
  256x448 and 1024x2048, batch 1, fp32, bf16 and fp16 autocast, and the same for the
  extrapolation models (`--extrapolation_models`, with the DIS prior, whose `predict` includes
  DIS on the CPU) (IFRNet's published time: 25 ms at 256x448 on one GPU).

`--budget_s` (default 420) bounds the whole run: a section that starts late shrinks or records
what it skipped, so the check fits in 8 minutes with start-up. Without CUDA the script prints that no GPU is present and exits 0 (the JSON
says so too); `--cpu-dry-run` then runs every section at toy sizes on the CPU (gloo instead of
nccl, no compile unless `--compile-on-cpu`) to check the script itself.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import json
import math
import platform
import socket
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from ifrvp_core.checkpoint import write_text_atomic  # noqa: E402
from ifrvp_core.data import build_dataset, collate, ensure_synthetic, set_loader_epoch  # noqa: E402
from ifrvp_core.export import PredictionNetwork, export_model  # noqa: E402
from ifrvp_core.losses import PredictionLoss  # noqa: E402
from ifrvp_core.models import build_model, list_models, prepare_for_inference  # noqa: E402
from ifrvp_core.motion_prior import MOTION_PRIORS, constant_velocity_prior  # noqa: E402
from ifrvp_core.precision import PRECISIONS, check_precision  # noqa: E402
from ifrvp_core.profiling import time_call  # noqa: E402 - the timing loop of benchmarks/model_speed.py
from ifrvp_core.train import Dist, TrainConfig, Trainer  # noqa: E402

NO_GPU = "no GPU present (torch.cuda.is_available() is False) — nothing to check"
PARITY_TOLERANCE = 1e-4
EXPORT_TOLERANCE = 1e-4
SECTIONS = ("environment", "parity", "training", "compile", "prior_share", "ddp_nccl", "export_parity", "inference")
# motion priors timed by prior_share besides DIS, when ifrvp_core.motion_prior offers them
OTHER_PRIORS = ("lucas_kanade",)
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the optional extra ifrvp[export]
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


TRAINING_RUNS = {  # run name -> (--amp, --motion_prior)
    "none": ("none", "none"), "bf16": ("bf16", "none"), "fp16": ("fp16", "none"),
    "extrapolation": ("none", "auto"),  # the default recipe: the DIS prior (auto), computed in the loader workers
}


def training(device: torch.device, data_root: Path, workdir: Path, args, budget: Budget) -> dict:
    """The real trainer, `args.train_steps` steps per run: --amp none / bf16 / fp16, and the default extrapolation recipe.

    The amp runs go without the motion prior: the DIS-prior recipe starts at the prior's quality,
    and 200 steps of IFRNet_T on this data did not lower its loss (CPU, 64 crops, batch 8: 0.0214
    -> 0.0232, first vs last 20 steps), while without the prior it fell 0.0704 -> 0.0657 (every
    20-step mean below the first); they must lower the loss. The `extrapolation` run is the default
    recipe (`--motion_prior auto`: DIS, the prior computed in the loader workers, fp32): its steps/s,
    and every step finite; its loss need not fall in so few steps.
    """
    runs, ok = {}, True
    for run, (amp, motion_prior) in TRAINING_RUNS.items():
        if budget.left() < 30:
            runs[run] = {"ok": False, "error": "skipped: time budget spent"}
            ok = False
            continue
        config = TrainConfig(
            model_name=args.train_model, dataset="synthetic", data_root=str(data_root), crop_size=args.train_crop,
            batch_size=args.train_batch, num_workers=args.num_workers, max_steps=args.train_steps, epochs=10_000,
            eval_interval=10_000, val_samples=8, val_batch_size=4, log_interval=1, log_path=str(workdir / "runs"),
            run_name=f"train_{run}", amp=amp, seed=0, motion_prior=motion_prior,
        )
        started = time.perf_counter()
        try:
            summary = Trainer(config, Dist(device=device)).run()
        except Exception as error:  # noqa: BLE001 - recorded, the next run still runs
            runs[run] = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
            ok = False
            continue
        records = [json.loads(line) for line in (config.run_dir / "log.jsonl").read_text().splitlines()]
        train = [r for r in records if r["kind"] == "train"]
        losses = [float(r["loss"]) for r in train]
        rates = [r["samples_per_s"] for r in train[len(train) // 4 :]]  # after warm-up
        samples_per_s = statistics.median(rates) if rates else None
        row = {
            "amp": amp, "motion_prior": config.resolved_motion_prior(), "steps": summary["iterations"],
            "wall_s": time.perf_counter() - started, **loss_trend(losses, 20), "bad_steps": summary["bad_steps"],
            "all_losses_finite": len(losses) == len(train) and all(math.isfinite(x) for x in losses),
            "samples_per_s_median": samples_per_s, "steps_per_s_median": samples_per_s / args.train_batch if samples_per_s else None,
            "val_psnr": summary["final"].get("psnr"), "model": args.train_model, "crop": args.train_crop, "batch": args.train_batch,
        }
        complete = row["steps"] == args.train_steps
        if run == "extrapolation":  # starts at the prior: finite steps, no loss trend required
            row["ok"] = complete and row["bad_steps"] == 0 and row["all_losses_finite"]
        else:  # fp16's GradScaler starts at 2**16 and may overflow in its first steps (skipped and counted): allowed
            row["ok"] = row["loss_decreased"] and complete and (row["bad_steps"] == 0 or (amp == "fp16" and row["bad_steps"] <= 10))
        ok = ok and row["ok"]
        runs[run] = row
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


def median_ms(function, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median milliseconds of `function()` over `repeats` timed calls (after `warmup`), synchronised on CUDA."""
    return 1e3 * statistics.median(time_call(function, repeats, warmup, (lambda: synchronize(device))))


def other_priors() -> list[str]:
    """The priors of `OTHER_PRIORS` that this checkout's `ifrvp_core.motion_prior.MOTION_PRIORS` offers."""
    return [name for name in OTHER_PRIORS if name in MOTION_PRIORS]


def prior_share_inference(device: torch.device, name: str, size: tuple[int, int], repeats: int, warmup: int) -> dict:
    """One `predict` of the DIS extrapolation model at `size`: the prior's time, the whole call and the network alone."""
    height, width = size
    frames = torch.rand(1, 2, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    model = prepare_for_inference(build_model(name, motion_prior="dis"), device=device)
    prior = constant_velocity_prior(frames, 2.0)
    row = {"size": f"{height}x{width}", "model": name, "repeats": repeats}
    row["dis_prior_ms"] = median_ms(lambda: constant_velocity_prior(frames, 2.0), repeats, device, warmup)
    row["predict_ms"] = median_ms(lambda: model.predict(frames, 2.0), repeats, device, warmup)
    row["network_ms"] = median_ms(lambda: model.predict(frames, 2.0, prior_flow=prior), repeats, device, warmup)  # the prior given
    row["dis_share"] = row["dis_prior_ms"] / row["predict_ms"]
    for other in other_priors():  # a torch prior: computed on the frames' device, by its model inside forward
        alternative = None
        try:
            alternative = prepare_for_inference(build_model(name, motion_prior=other), device=device)
            row[f"{other}_prior_ms"] = median_ms(lambda: constant_velocity_prior(frames, 2.0, method=other), repeats, device, warmup)
            row[f"{other}_predict_ms"] = median_ms(lambda: alternative.predict(frames, 2.0), repeats, device, warmup)
            row[f"{other}_share"] = row[f"{other}_prior_ms"] / row[f"{other}_predict_ms"]
        except Exception as error:  # noqa: BLE001 - recorded in the row
            row[f"{other}_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        del alternative
    del model
    return row


def prior_share_training(device: torch.device, data_root: Path, workdir: Path, args, rounds: int) -> dict:
    """One training step of the default extrapolation recipe with the prior given (as the loader workers pass it) vs computed.

    The same batch each time; "computed" drops the batch's `prior_flow`, so the model runs DIS in
    the step (in the main process), as training did before the prior moved to the workers. The
    two are interleaved round by round.
    """
    config = TrainConfig(model_name=args.train_model, dataset="synthetic", data_root=str(data_root), crop_size=args.train_crop,
                         batch_size=args.train_batch, num_workers=0, val_samples=0, log_path=str(workdir / "runs"),
                         run_name="prior_share", seed=0)  # the defaults otherwise: --motion_prior auto (dis)
    trainer = Trainer(config, Dist(device=device))
    trainer.model.train()
    set_loader_epoch(trainer.loader, 0)
    given = next(iter(trainer.loader))
    if "prior_flow" not in given:
        raise RuntimeError(f"the default recipe's batches carry no prior_flow (motion prior {config.resolved_motion_prior()})")
    computed = {key: value for key, value in given.items() if key != "prior_flow"}
    times = {"given": [], "computed": []}
    finite = True
    for round_ in range(rounds + 1):  # round 0: warm-up
        for mode in ("given", "computed") if round_ % 2 else ("computed", "given"):
            started = time.perf_counter()
            _, terms, taken = trainer.train_step(given if mode == "given" else computed)  # ends on a host sync
            if round_:
                times[mode].append(time.perf_counter() - started)
            finite = finite and taken and math.isfinite(float(terms["loss"]))
    context, target_times = given["context"], given["target_times"][:, 0]
    dis = time_call(lambda: constant_velocity_prior(context, target_times), max(2, rounds))
    given_ms, computed_ms = (1e3 * statistics.median(times[mode]) for mode in ("given", "computed"))
    result = {"model": args.train_model, "motion_prior": config.resolved_motion_prior(), "batch": args.train_batch,
              "crop": args.train_crop, "rounds": rounds, "step_ms_prior_given": given_ms, "step_ms_prior_computed": computed_ms,
              "prior_share_of_step": (computed_ms - given_ms) / computed_ms, "dis_prior_ms_per_batch": 1e3 * statistics.median(dis),
              "steps_finite": finite}
    for other in other_priors():  # its recipe: no prior_flow in the batches, the model computes it on the device in the step
        try:
            trainer = Trainer(dataclasses.replace(config, motion_prior=other, run_name=f"prior_share_{other}"), Dist(device=device))
            trainer.model.train()
            steps = []
            for round_ in range(rounds + 1):
                started = time.perf_counter()
                _, terms, taken = trainer.train_step(computed)
                if round_:
                    steps.append(time.perf_counter() - started)
                result["steps_finite"] = result["steps_finite"] and taken and math.isfinite(float(terms["loss"]))
            result[f"step_ms_{other}_computed"] = 1e3 * statistics.median(steps)
        except Exception as error:  # noqa: BLE001 - recorded
            result[f"{other}_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return result


def prior_share(device: torch.device, data_root: Path, workdir: Path, args, budget: Budget) -> dict:
    """The motion prior's share of one extrapolation inference (per size) and of one training step of the default recipe."""
    result = {"model": args.train_model, "other_priors": other_priors(), "inference": [], "ok": True,
              "note": "dis_share = DIS prior / predict; network_ms = predict with the prior passed in"}
    for height, width in parse_sizes(args.prior_sizes):
        if budget.left() < 20:
            result["inference"].append({"size": f"{height}x{width}", "error": "skipped: time budget spent"})
            result["ok"] = False
            continue
        large = height * width > 1_000_000
        try:
            row = prior_share_inference(device, args.train_model, (height, width), args.repeats_large if large else args.repeats,
                                        args.warmup)
        except Exception as error:  # noqa: BLE001 - recorded, the next size still runs
            row = {"size": f"{height}x{width}", "error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
        result["ok"] = result["ok"] and "error" not in row and not any(key.endswith("_error") for key in row)
        result["inference"].append(row)
    if budget.left() < 20:
        result["training"] = {"error": "skipped: time budget spent"}
        result["ok"] = False
    else:
        result["training"] = prior_share_training(device, data_root, workdir, args, args.prior_rounds)
        result["ok"] = result["ok"] and result["training"]["steps_finite"] and not any(key.endswith("_error") for key in result["training"])
    return result


def perturbed_extrapolation_model(seed: int = 0):
    """A tiny IFRNet_T with the DIS prior whose decoders are off their zero start (the network, not only the prior, matters)."""
    torch.manual_seed(seed)
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model


def export_parity(device: torch.device, workdir: Path, size: tuple[int, int]) -> dict:
    """`ifrvp_core.export` of a small extrapolation model, run on `device` against PyTorch on `device` (TF32 off).

    - `torchscript`: the exported network (`PredictionNetwork`, the DIS prior as an input) traced on
      `device`, saved, loaded back there and run: max abs difference < `EXPORT_TOLERANCE` (required).
    - `torchscript_cpu_file`: the file `export_model` writes (traced on the CPU, as `ifrvp export`
      does) loaded onto `device`: recorded, not required, because tracing bakes the CPU device into
      the tensors the graph creates (`cpu_device_in_graph`), so such a file is meant for the CPU.
    - `onnx`: `export_model`'s ONNX file in onnxruntime (its CUDA provider when present) when the
      optional extra is installed; recorded as skipped, with the reason, otherwise.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    height, width = size
    model = perturbed_extrapolation_model()
    generator = torch.Generator().manual_seed(1)
    frames, t = torch.rand(1, 2, 3, height, width, generator=generator), torch.tensor([2.0])
    prior = constant_velocity_prior(frames, t)
    result = {"model": "IFRNet_T", "motion_prior": "dis", "size": f"{height}x{width}", "tolerance": EXPORT_TOLERANCE}
    cpu_file = export_model(model, workdir / "export_parity.ts", "torchscript", height=height, width=width)  # moves it to the CPU
    inputs = [frames.to(device), t.to(device), prior.to(device)]
    reference = model.to(device).predict(inputs[0], 2.0, prior_flow=inputs[2])

    def load(path: Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # recent torch marks torch.jit as deprecated (docs/inference.md)
            return torch.jit.load(str(path), map_location=device)

    def compare(module) -> dict:
        with torch.inference_mode():
            exported = module(*inputs)
        diff = (exported.float() - reference).abs().max().item()
        return {"max_abs_diff": diff, "ok": diff < EXPORT_TOLERANCE, "output_device": str(exported.device)}

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the fixed size, torch.jit's deprecation (see ifrvp_core.export)
        traced = torch.jit.trace(PredictionNetwork(model).eval(), tuple(inputs), check_trace=False)
        torch.jit.save(traced, str(workdir / "export_parity_device.ts"))
    result["torchscript"] = {"traced_on": str(device), **compare(load(workdir / "export_parity_device.ts"))}
    module = load(cpu_file)
    entry = {"traced_on": "cpu", "cpu_device_in_graph": 'value="cpu"' in str(module.inlined_graph), "required": False}
    try:
        entry.update(compare(module))
    except Exception as error:  # noqa: BLE001 - recorded: a CPU-traced file may not run on the GPU
        entry["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    result["torchscript_cpu_file"] = entry
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        result["onnx"] = {"skipped": f"{', '.join(missing)} not installed (the optional extra: pip install 'ifrvp[export]')"}
    else:
        # the optional extra, imported only when installed (found just above)
        import onnxruntime

        onnx_path = export_model(model, workdir / "export_parity.onnx", "onnx", height=height, width=width)
        available = onnxruntime.get_available_providers()
        providers = (["CUDAExecutionProvider"] if device.type == "cuda" and "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
        session = onnxruntime.InferenceSession(str(onnx_path), providers=providers)
        (output,) = session.run(["prediction"], {"frames": frames.numpy(), "t": t.numpy(), "prior_flow": prior.numpy()})
        diff = (torch.from_numpy(output) - reference.cpu()).abs().max().item()
        result["onnx"] = {"max_abs_diff": diff, "ok": diff < EXPORT_TOLERANCE, "providers": session.get_providers()}
    result["ok"] = all(result[kind].get("ok", True) for kind in ("torchscript", "onnx"))
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
    """Median `predict` latency, frames/s and peak memory per variant, size and precision (batch 1).

    Every variant of `models` as published (no prior, t = 2.0), then each of
    `args.extrapolation_models` with the DIS prior (its `predict` runs OpenCV DIS on the CPU
    first, part of the time). fp32, and bf16 / fp16 autocast (`predict(..., precision=)`); a
    precision the device cannot run is recorded as skipped with the reason.
    """
    rows, ok = [], True
    variants = [(name, "none") for name in models] + [(name, "dis") for name in args.extrapolation_models.split(",") if name]
    for name, prior in variants:
        model = prepare_for_inference(build_model(name, **({} if prior == "none" else {"motion_prior": prior})), device=device)
        for height, width in sizes:
            for precision in PRECISIONS:
                row = {"model": name, "prior": prior, "size": f"{height}x{width}", "precision": precision}
                rows.append(row)
                try:
                    check_precision(precision, device)
                except ValueError as error:
                    row["skipped"] = str(error)
                    continue
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
                    times = time_call(lambda: model.predict(frames, 2.0, precision=precision),
                                      args.repeats_large if large else args.repeats, args.warmup, lambda: synchronize(device))
                    median = statistics.median(times)
                    row.update(ms_median=1e3 * median, ms_min=1e3 * min(times), frames_per_s=1.0 / median)
                    if device.type == "cuda":
                        row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
                    if (height, width) == (256, 448) and name in PUBLISHED_MS and precision == "fp32" and prior == "none":
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
    for name, run in sections.get("training", {}).get("runs", {}).items():
        if "error" in run:
            print(f"  train {name:<13} FAILED {run['error']}")
        else:
            print(f"  train {name:<13} (amp {run['amp']}, prior {run['motion_prior']}) loss {run['loss_first']:.4f} -> "
                  f"{run['loss_last']:.4f} over {run['steps']} steps, {run['steps_per_s_median'] or 0:.2f} steps/s "
                  f"({run['samples_per_s_median'] or 0:.1f} samples/s), bad steps {run['bad_steps']}  {'ok' if run['ok'] else 'FAILED'}")
    compiled = sections.get("compile", {})
    if "compiled" in compiled:
        print(f"  compile {compiled['model']}: step {compiled['eager']['step_ms_median']:.1f} ms eager, "
              f"{compiled['compiled']['step_ms_median']:.1f} ms compiled (first step {compiled['compiled']['first_step_s']:.1f} s), "
              f"forward diff {compiled['forward_max_abs_diff_vs_eager']:.2e}")
    shares = sections.get("prior_share", {})
    for row in shares.get("inference", []):
        if "error" in row:
            print(f"  prior share {row['size']:>10}: FAILED {row['error']}")
            continue
        others = "".join(f", {name} {100 * row[f'{name}_share']:.0f} %" for name in shares.get("other_priors", []) if f"{name}_share" in row)
        print(f"  prior share {row['model']} {row['size']:>10}: DIS {row['dis_prior_ms']:.1f} of {row['predict_ms']:.1f} ms per "
              f"predict ({100 * row['dis_share']:.0f} %{others}; network alone {row['network_ms']:.1f} ms)")
    step = shares.get("training", {})
    if "step_ms_prior_given" in step:
        others = "".join(f"; {name} computed in the step {step[f'step_ms_{name}_computed']:.1f} ms"
                         for name in shares.get("other_priors", []) if f"step_ms_{name}_computed" in step)
        print(f"  prior share of a training step (batch {step['batch']}, crop {step['crop']}): {step['step_ms_prior_given']:.1f} ms "
              f"given (workers), {step['step_ms_prior_computed']:.1f} ms computed in the step ({100 * step['prior_share_of_step']:.0f} %)"
              f"{others}")
    exported = sections.get("export_parity", {})
    for kind in ("torchscript", "torchscript_cpu_file", "onnx"):
        if kind in exported:
            entry = exported[kind]
            text = entry.get("skipped") or entry.get("error") or \
                f"max |exported - pytorch| = {entry['max_abs_diff']:.2e}  {'ok' if entry['ok'] else 'FAILED'}"
            note = " (not required: traced on the CPU)" if kind == "torchscript_cpu_file" else ""
            print(f"  export {kind:<20} {text}{note}")
    ddp = sections.get("ddp_nccl", {})
    if "backend" in ddp:
        print(f"  DDP ({ddp['backend']}, 1 process): max param diff vs plain {ddp['max_param_diff_vs_plain']:.2e}  {'ok' if ddp['ok'] else 'FAILED'}")
    rows = sections.get("inference", {}).get("rows", [])
    if rows:
        print(f"  {'model':<12} {'prior':<5} {'size':>10} {'prec':>5} {'ms':>8} {'frames/s':>9} {'peak MiB':>9}")
        for row in rows:
            label = f"  {row['model']:<12} {row['prior']:<5} {row['size']:>10} {row['precision']:>5}"
            if "error" in row or "skipped" in row:
                print(f"{label}  {row.get('error') or 'skipped: ' + row['skipped']}")
            else:
                peak = f"{row['peak_memory_mib']:9.0f}" if "peak_memory_mib" in row else f"{'':>9}"
                print(f"{label} {row['ms_median']:8.2f} {row['frames_per_s']:9.1f} {peak}")
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
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before the timed inference repeats")
    parser.add_argument("--train_model", default="IFRNet_S")
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--train_crop", type=int, default=128)
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=4)
    parser.add_argument("--extrapolation_models", default="IFRNet_S,IFRNet",
                        help="variants also timed with the DIS prior in the inference section")
    parser.add_argument("--prior_sizes", default="256x448,1024x2048", help="sizes HxW of the prior_share section")
    parser.add_argument("--prior_rounds", type=int, default=10, help="prior_share: training steps timed per mode (given, computed)")
    parser.add_argument("--sections", default="all", help=f"comma-separated sections to run (all: {', '.join(SECTIONS)})")
    parser.add_argument("--compile_model", default="IFRNet_S")
    parser.add_argument("--compile_steps", type=int, default=30)
    parser.add_argument("--cpu-dry-run", dest="cpu_dry_run", action="store_true",
                        help="without a GPU: every section at toy sizes on the CPU (checks this script)")
    parser.add_argument("--compile-on-cpu", dest="compile_on_cpu", action="store_true", help="with --cpu-dry-run: run the compile section too")
    args = parser.parse_args(argv)
    chosen = list(SECTIONS) if args.sections == "all" else [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)} (or all)")
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
        args.models, args.sizes, args.repeats, args.repeats_large, args.warmup = "IFRNet_T", "64x96", 1, 1, 1
        args.train_model, args.train_steps, args.train_crop, args.train_batch, args.num_workers = "IFRNet_T", 48, 32, 2, 0
        args.compile_model, args.compile_steps = "IFRNet_T", 4
        args.extrapolation_models, args.prior_sizes, args.prior_rounds = "IFRNet_T", "64x96", 1
        report["dry_run"] = "CPU dry run: toy sizes, gloo instead of nccl; the numbers mean nothing"
    else:
        report["gpu"] = torch.cuda.get_device_name(device)
    report["device"] = str(device)
    models = [m for m in args.models.split(",") if m]
    budget = Budget(args.budget_s)
    dry = device.type == "cpu"
    if "environment" in chosen:
        run_section(report, "environment", out, environment, device)
    if "parity" in chosen:
        run_section(report, "parity", out, parity, device, models, (64, 96) if dry else (256, 448))
    with tempfile.TemporaryDirectory(prefix="ifrvp_gpu_check_") as tmp:
        workdir = Path(tmp)
        data_root = None
        if {"training", "compile", "prior_share"} & set(chosen):
            try:
                data_root = synthetic_root(workdir, dry)
            except Exception as error:  # noqa: BLE001
                report["sections"]["synthetic_data"] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        if data_root is not None:
            if "training" in chosen:
                run_section(report, "training", out, training, device, data_root, workdir, args, budget)
            if "compile" in chosen and (not dry or args.compile_on_cpu):
                run_section(report, "compile", out, compiled_training, device, data_root, args, budget)
            elif "compile" in chosen:
                report["sections"]["compile"] = {"ok": True, "skipped": "CPU dry run without --compile-on-cpu"}
            if "prior_share" in chosen:
                run_section(report, "prior_share", out, prior_share, device, data_root, workdir, args, budget)
        if "ddp_nccl" in chosen:
            run_section(report, "ddp_nccl", out, ddp_one_process, device, "gloo" if dry else "nccl")
        if "export_parity" in chosen:
            if budget.left() < 20:
                report["sections"]["export_parity"] = {"ok": False, "error": "skipped: time budget spent"}
            else:
                run_section(report, "export_parity", out, export_parity, device, workdir, (36, 52) if dry else (120, 200))
    if "inference" in chosen:
        run_section(report, "inference", out, inference, device, models, parse_sizes(args.sizes), args, budget)
    report["total_s"] = round(args.budget_s - budget.left(), 1)
    write_text_atomic(out, json.dumps(report, indent=1, default=str))
    print_summary(report)
    return 0 if all(result.get("ok", True) for result in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
