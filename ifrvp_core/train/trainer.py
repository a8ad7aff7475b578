"""The Trainer: setup from a `TrainConfig`, the training loop, one optimiser step, checkpoints.

The recipe is IFRNet's: AdamW (no weight decay), cosine LR per iteration from lr_start to lr_end,
Charbonnier (with a motion prior: per-sample RMSE) + census + geometry + flow distillation (`PredictionLoss`). One process or many
(`Dist`, DDP); only rank 0 writes. A run resumed from `latest.pt` continues bit-exactly.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ifrvp_core.checkpoint import init_from_weights
from ifrvp_core.data import DataError, build_dataset, loader_batches_per_epoch, make_loader, set_loader_epoch
from ifrvp_core.data.build import SYNTHETIC_DEFAULTS
from ifrvp_core.losses import PredictionLoss
from ifrvp_core.models import build_model
from ifrvp_core.rollout import next_context
from ifrvp_core.train.config import ConfigError, TrainConfig, existing_run_files
from ifrvp_core.train.distributed import Dist, StopFlag, all_reduce_sum, wrap_ddp
from ifrvp_core.train.guard import BadInputGuard
from ifrvp_core.train.runlog import RunLog, StepTimer, baseline_warnings, clear_run, run_summary
from ifrvp_core.train.state import RunCheckpoints, seed_everything, training_checkpoint
from ifrvp_core.train.validation import Validation


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # --amp values that autocast (on a GPU); "none": float32


class RunFolderInUse(ValueError):
    """The run folder already holds a run and neither `--resume` nor `--overwrite` was given."""


def claim_run_folder(config: TrainConfig, env: Dist) -> list[str]:
    """Refuse a run folder that already holds a run unless continuing (`--resume`) or `--overwrite`; returns the
    files `--overwrite` removed.

    Rank 0 (the only writer) decides and every rank learns its decision through one collective
    before anyone writes, so all ranks stop together or go on together.

    Raises:
        RunFolderInUse: naming the folder, what it holds and the flags that would accept it.
    """
    present = existing_run_files(config.run_dir) if env.main else []
    refuse = config.run_folder_refusal(present) is not None
    decision = all_reduce_sum(torch.tensor([float(refuse)], device=env.device), env)
    if decision.item() > 0:
        raise RunFolderInUse(config.run_folder_refusal(present or ["files rank 0 found"]))
    if config.overwrite and env.main and present:
        return clear_run(config.run_dir)
    return []


def check_crop(crop: int, height: int, width: int, where: str, by_default: bool = False) -> None:
    """A `ConfigError` naming `--crop_size` when a `crop` x `crop` training crop does not fit `height` x `width` frames.

    by_default: the crop is `--crop_size auto`'s (the message says so, since the user typed none).
    """
    if crop > height or crop > width:
        which = f"the default --crop_size (auto: {crop} for data on disk)" if by_default else f"--crop_size {crop}"
        raise ConfigError(f"{which} is larger than the training frames ({height}x{width}, {where}); "
                        f"pass --crop_size {min(height, width)} or smaller")


def smallest_frame_size(dataset, max_sources: int = 32) -> tuple[tuple[int, int], str] | None:
    """((H, W), source) of the smallest first frame among the training set's clips, as the model sees them.

    A dataset that resizes every frame at load has that size, and nothing is read. Otherwise clips
    may differ in size (a `frames` folder of videos), so one frame is read from each distinct clip
    (a frame folder or a video), at most `max_sources` of them spread over the set. None when
    unknown (WebDataset shards have no random access; an unreadable frame is the bad-sample guard's).
    """
    if not hasattr(dataset, "windows") or len(dataset) == 0:
        return None
    if dataset.resize is not None:
        width, height = dataset.resize
        return (height, width), f"{dataset.root} (resized at load)"
    firsts: dict = {}
    for window in dataset.windows:  # the windows' own first frames: no per-sample drawing, no IO
        frame = window.frames[0] if window.frames else (window.video, 0)  # random-stride windows: their video
        firsts.setdefault(frame.parent if isinstance(frame, Path) else frame[0], frame)
    sources = list(firsts)
    chosen = sources[:: max(1, len(sources) // max_sources)][:max_sources]
    smallest = None
    for source in chosen:
        try:
            height, width = dataset.load_frame(firsts[source]).shape[:2]
        except (DataError, OSError):
            continue
        if smallest is None or min(height, width) < min(smallest[0]):
            smallest = ((height, width), str(source))
    return smallest


def cosine_lr(iteration: int, total: int, lr_start: float, lr_end: float) -> float:
    """Per-iteration cosine decay from lr_start (iteration 0) to lr_end (iteration total)."""
    progress = min(iteration / max(total, 1), 1.0)
    return lr_end + 0.5 * (lr_start - lr_end) * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """One training run of `config` in this process (rank `env.rank` of `env.world_size`).

    Building it seeds every generator, checks the config, builds the model, datasets, loader,
    optimiser and loss, and resumes from a checkpoint when asked; `run()` trains and returns
    the summary (also written to summary.json).
    """

    def __init__(self, config: TrainConfig, env: Dist):
        self.config, self.env = config, env
        config.check()
        self.run_dir = config.run_dir
        self.log = RunLog(self.run_dir, env.main)
        removed = claim_run_folder(config, env)
        if removed:
            self.log.text(f"--overwrite: deleted the previous run's {', '.join(removed)} in {self.run_dir}")
        self.train_set = self._training_data()
        # --val_samples 0: no validation, so data without a validation split (short clips) can train
        self.val_set = (build_dataset(config.dataset, self.train_set.root, config.val_split, **config.val_data_options())
                        if config.val_samples > 0 else [])
        seed_everything(config.seed)  # right before the weights are drawn: the same weights as before the data was built
        self.model = build_model(config.model_name, **config.model_options())
        if config.init_from is not None:  # before DDP and the optimiser; a continued run's checkpoint overrides it (_resume)
            self._init_from(config.init_from)
        self.model.to(env.device)
        self.ddp = wrap_ddp(self.model, env)
        self.validation = Validation(self.val_set, config.val_samples, config.val_batch_size, config.task, env)
        self.loader = make_loader(self.train_set, config.batch_size, True, config.num_workers, config.seed, env.rank, env.world_size)
        self.steps_per_epoch = loader_batches_per_epoch(self.loader)
        self.total_steps = config.total_steps(self.steps_per_epoch)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.resolved_lr_start(), weight_decay=0.0)
        self.loss_fn = PredictionLoss(config.loss_config())
        self.iteration, self.epoch, self.best_psnr = 0, config.resume_epoch, -math.inf
        self.guard = BadInputGuard(config.max_bad_samples, config.max_bad_steps, env, self.log)
        self.checkpoints = RunCheckpoints(self.run_dir, env, self.log)
        self.log.recipe(config, self.train_set.teacher_source, self.loss_fn.config)
        self.amp_dtype = AMP_DTYPES.get(config.amp)
        if self.amp_dtype is not None and env.device.type != "cuda":
            self.log.text(f"warning: --amp {config.amp} needs a GPU; training in float32 on {env.device}")
            self.amp_dtype = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self._resume()

    def _training_data(self):
        """The training set, after checking that the crop fits its frames (before the synthetic set is generated,
        and on the first sample's first frame before the model and the workers are built)."""
        config, crop = self.config, self.config.resolved_crop_size()
        if config.augment and config.dataset.lower() == "synthetic" and config.data_root is None:
            check_crop(crop, SYNTHETIC_DEFAULTS["height"], SYNTHETIC_DEFAULTS["width"], "the generated synthetic set",
                       config.crop_size is None)
        seed_everything(config.seed)
        train_set = build_dataset(config.dataset, config.data_root, "train", **config.train_data_options())
        smallest = smallest_frame_size(train_set) if config.augment else None
        if smallest is not None:
            (height, width), source = smallest
            check_crop(crop, height, width, f"the smallest training clip of {config.dataset}: {source}", config.crop_size is None)
        return train_set

    # ------------------------------------------------------------------ checkpoints
    def _init_from(self, path: str) -> None:
        report = init_from_weights(self.model, path)
        widened = f", {len(report['widened'])} first convs given zero prior-shift channels" if report["widened"] else ""
        widened += ", decoder1's output given a zero prior-shift gate" if report["gate_added"] else ""
        restart = "; output layers reset to zero: training starts at the motion prior" if report["restarted_at_prior"] else ""
        self.log.text(f"--init_from: weights from {report['source']} ({report['copied']} tensors copied{widened}){restart}")

    def _resume(self) -> None:
        path = self.checkpoints.resume_source(self.config)
        if not path:
            return
        state = self.checkpoints.load(path, self.model, self.optimizer)
        if state is None:  # weights only (e.g. an official IFRNet checkpoint): the seed project's --resume_epoch
            self.iteration = self.epoch * self.steps_per_epoch
            self.log.text(f"loaded weights from {path}; starting at epoch {self.epoch}")
            return
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.best_psnr = float(state.get("best_psnr", -math.inf))
        self.guard.load_state_dict(state.get("robustness"))
        self.log.text(f"resumed from {path} at epoch {self.epoch}, iteration {self.iteration}")

    def checkpoint(self, metrics: dict | None = None) -> dict:
        return training_checkpoint(self.model, self.optimizer, iteration=self.iteration, epoch=self.epoch, total_steps=self.total_steps,
                                   best_psnr=self.best_psnr, config=self.config.to_dict(), metrics=metrics, robustness=self.guard.state_dict())

    def save(self, name: str, metrics: dict | None = None) -> bool:
        """Write `name` atomically (rank 0); a model with non-finite weights is never written (returns False)."""
        return self.checkpoints.save(name, self.model, lambda: self.checkpoint(metrics), self.iteration)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: dict) -> tuple[float, dict, bool]:
        """One optimiser step on target[:, 0] at target_times[:, 0], unless the step is not finite.

        After backward (and AMP unscaling) the gradient norm is computed (and clipped with
        `--grad_clip`); when this rank's loss or the norm is NaN/inf on any rank, every rank skips
        the optimiser step together (the fp16 scaler still lowers its scale). The check costs one
        host sync per step (as the fp16 scaler's own check does).

        Args:
            batch: `context` (B,K,3,H,W), `target` (B,n,3,H,W), `target_times` (B,n), optional
                `teacher_flow` (B,2K,H,W) for the distillation term and `prior_flow` (B,2K,H,W), the
                motion prior at `target_times[:, 0]` (the model computes it when it is absent).
        Returns:
            (lr used, {"loss": total, **terms, "grad_norm": norm} as detached scalars of this rank,
            whether the step was taken).
        """
        device = self.env.device
        frames = batch["context"].to(device, non_blocking=True)
        target = batch["target"][:, 0].to(device, non_blocking=True)
        times = batch["target_times"][:, 0].to(device)
        teacher = batch["teacher_flow"].to(device) if "teacher_flow" in batch else None
        # the motion prior, computed in the loader workers: no OpenCV in the training step
        prior = batch["prior_flow"].to(device, non_blocking=True) if "prior_flow" in batch else None
        lr = cosine_lr(self.iteration, self.total_steps, self.config.resolved_lr_start(), self.config.lr_end)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            output = self.ddp(frames, times, target=target, prior_flow=prior)
            loss, terms = self.loss_fn(output, target, teacher)
            if self.config.rollout_steps > 1:
                loss, terms = self.rollout_loss(batch, frames, times, output, loss, terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # a no-op without the fp16 scaler
        if self.config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=device)
        loss = loss.detach()
        bad = (~(torch.isfinite(loss) & torch.isfinite(grad_norm))).float().reshape(1)
        if self.env.world_size > 1:  # the loss is per rank: all ranks skip together
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        ok = not bool(bad.item())
        if ok:
            self.scaler.step(self.optimizer)
        self.scaler.update()  # after a skipped fp16 step: lowers the scale (unscale_ recorded the infs)
        return lr, {"loss": loss, **terms, "grad_norm": grad_norm.detach()}, ok

    def rollout_loss(self, batch: dict, frames: torch.Tensor, times: torch.Tensor, output: dict, loss, terms: dict):
        """The mean loss over `--rollout_steps` recursive steps, gradients through every prediction.

        Step k's context is the previous step's context shifted by one frame with its prediction as
        the newest frame, so the target time stays `times` (the next frame); its motion prior is
        computed by the model from that context (DIS in this process: the workers cannot know the
        prediction). Only step 1 has a teacher flow. Returns (loss, terms) with `terms` also holding
        `step<k>` (each step's loss, detached).
        """
        steps, total = self.config.rollout_steps, loss
        terms = {**terms, "step1": loss.detach()}
        for step in range(1, steps):
            frames = next_context(frames, output["prediction"])
            target = batch["target"][:, step].to(self.env.device, non_blocking=True)
            output = self.ddp(frames, times, target=target)
            step_loss, _ = self.loss_fn(output, target, None)
            terms[f"step{step + 1}"] = step_loss.detach()
            total = total + step_loss
        return total / steps, terms

    def validate(self) -> dict:
        """The model's (and the baselines') t+1 scores on the validation samples (see `Validation`)."""
        return self.validation(self.model)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Train to `total_steps` (at most `epochs`), validating and saving on the way; returns the summary.

        Stopped by SIGTERM/SIGINT after a step: `latest.pt` is saved and {"stopped_by_signal", "iteration"} returned.
        """
        config, env = self.config, self.env
        stop, started, metrics = StopFlag(), time.time(), {}
        self._start()
        while self.iteration < self.total_steps and self.epoch < config.epochs:
            set_loader_epoch(self.loader, self.epoch, skip_batches=max(self.iteration - self.epoch * self.steps_per_epoch, 0))
            timer = StepTimer(env.world_size)
            for batch in self.loader:
                timer.batch_ready()
                self.guard.note_bad_samples(batch, self.iteration, self.epoch)
                lr, terms, ok = self.train_step(batch)
                self.iteration += 1  # a skipped step still consumes its batch and moves the LR schedule on
                self.guard.note_step(ok, terms, self.iteration, self.epoch, (self.checkpoints.latest, self.checkpoints.last_latest_iteration))
                grad_norm = terms.pop("grad_norm")
                timer.step_done(batch["context"].shape[0])
                self.log.progress.update(1)
                if self.iteration % config.log_interval == 0 or self.iteration == self.total_steps:
                    self._log_train_step(lr, terms, grad_norm, timer, started)
                if config.save_interval_steps and self.iteration % config.save_interval_steps == 0 and ok:
                    self.save("latest.pt")  # not after a skipped step: latest.pt is the state after a good one
                if stop.should_stop(env) or self.iteration >= self.total_steps:
                    break
                timer.wait_started()
            if stop.signal is not None:
                return self._stop_on_signal(stop)
            metrics = self._end_epoch(metrics)
        return self._finish(stop, started, metrics)

    def _start(self) -> None:
        config = self.config
        self.log.start(config.to_dict())
        self.log.text(
            f"run folder {self.run_dir}\n{config.model_name} on {config.dataset} ({len(self.train_set)} train / "
            f"{len(self.val_set)} val samples), {self.env.world_size} process(es) on {self.env.device}, "
            f"batch {config.batch_size}/process, {self.steps_per_epoch} steps/epoch, {self.total_steps} steps"
        )
        self.log.open_progress(self.total_steps, self.iteration)
        self.model.train()

    def _log_train_step(self, lr: float, terms: dict, grad_norm: torch.Tensor, timer: StepTimer, started: float) -> None:
        """The "train" record: loss and terms averaged over ranks, throughput since the last record, bad-input counts.

        `main_process_dis_calls`: the DIS flows the training processes themselves computed (summed
        over ranks) while fetching and stepping the record's batches, validation excluded; 0 when the
        loader workers compute the motion prior (more with `--num_workers 0` or `--rollout_steps` > 1).
        """
        # reduced on the process's device: nccl has no CPU tensors; the last entry is the DIS count
        device = self.env.device
        stacked = torch.stack([v.float().to(device) for v in terms.values()] + [torch.tensor(float(timer.dis_calls), device=device)])
        summed = all_reduce_sum(stacked, self.env).cpu()
        values = summed[:-1] / self.env.world_size
        record = {
            "kind": "train", "iteration": self.iteration, "epoch": self.epoch, "lr": lr,
            "loss": values[0].item(), "terms": {k: v.item() for k, v in zip(list(terms)[1:], values[1:])},
            **timer.rates(), "main_process_dis_calls": int(summed[-1].item()), "elapsed_s": time.time() - started,
            "grad_norm": grad_norm.item(), **self.guard.counts(),
        }
        self.log.write(record)
        self.log.progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
        timer.reset()

    def _end_epoch(self, metrics: dict) -> dict:
        """After the loader stopped (epoch end or last step): validate when due, save latest.pt; the latest metrics."""
        epoch_done = self.iteration >= (self.epoch + 1) * self.steps_per_epoch
        finished = self.iteration >= self.total_steps
        if epoch_done:
            self.epoch += 1
        if self.config.val_samples > 0 and (finished or (epoch_done and self.epoch % self.config.eval_interval == 0)):
            metrics = self.validate()
            self.log.validation(self.iteration, self.epoch, metrics, self.validation.baselines)
            if math.isfinite(metrics["psnr"]) and metrics["psnr"] > self.best_psnr:
                self.best_psnr = metrics["psnr"]
                self.save("best.pt", metrics)
        self.save("latest.pt", metrics)
        return metrics

    def _stop_on_signal(self, stop: StopFlag) -> dict:
        self.save("latest.pt")
        self.log.text(f"signal {stop.signal}: saved {self.run_dir / 'latest.pt'} at iteration {self.iteration}")
        self.log.progress.close()
        stop.restore()
        return {"stopped_by_signal": stop.signal, "iteration": self.iteration}

    def _finish(self, stop: StopFlag, started: float, metrics: dict) -> dict:
        self.log.progress.close()
        stop.restore()
        self.log.close()
        summary = run_summary(
            self.config, run_dir=self.run_dir, iterations=self.iteration, epochs=self.epoch, world_size=self.env.world_size,
            wall_time_s=time.time() - started, final=metrics, best_psnr=self.best_psnr, teacher_flow=self.train_set.teacher_source,
            baselines=self.validation.baselines, bad_input=self.guard.summary_counts(),
        )
        for line in filter(None, [self.guard.report(), *baseline_warnings(summary)]):
            self.log.text(line)
        self.log.write_summary(summary)
        return summary
