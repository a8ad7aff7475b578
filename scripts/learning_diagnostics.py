"""What did training change? Evidence for a run folder written by `ifrvp train`.

    python scripts/learning_diagnostics.py RUN_DIR [--checkpoint latest.pt] [--batches 4]
        [--test_dataset frames --test_root data/real/heldout/bikes]

Prints, for the run's model:
1. the gradient norm of every part (encoder, each decoder's body and output layer) at step 0,
   on the run's own first training batches: zero-initialised output layers pass no gradient
   upstream until they have moved;
2. how far each part's weights moved from their initial values (the initial model is rebuilt
   from the run's config and seed, as the trainer builds it), absolute and relative;
3. each loss term's weighted value and its share of the total loss, over the first and the last
   tenth of the logged training steps, and the learning rate at start, middle and end;
4. with a motion prior, what the trained model does differently from it on test windows (the
   run's own test split, or `--test_dataset/--test_root`): the mean flow correction against the
   prior's magnitude, the older frame's blend weight (0.119 before training) and the residual.

Everything is read from the run folder (config.json, log.jsonl, the checkpoint), so the same
command explains any run. Figures quoted in docs/learning.md come from this script.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ifrvp_core.checkpoint import load_file, load_model
from ifrvp_core.data import build_dataset, collate
from ifrvp_core.losses import PredictionLoss
from ifrvp_core.models import build_model
from ifrvp_core.train import TrainConfig
from ifrvp_core.train.runlog import read_log
from ifrvp_core.train.state import seed_everything


def part_of(name: str) -> str:
    """encoder, decoderN (body) or decoderN.out (the last, transposed conv) for a parameter name."""
    top = name.split(".")[0]
    if top.startswith("decoder") and name.startswith(f"{top}.convblock.2."):
        return f"{top}.out"
    return top


def grouped_norms(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    squares: dict[str, float] = {}
    for name, value in tensors.items():
        squares[part_of(name)] = squares.get(part_of(name), 0.0) + float(value.double().pow(2).sum())
    return {part: total ** 0.5 for part, total in squares.items()}


def initial_model(config: TrainConfig) -> torch.nn.Module:
    seed_everything(config.seed)  # the trainer seeds, then builds the model first
    return build_model(config.model_name, **config.model_options())


def step0_gradients(config: TrainConfig, batches: int) -> dict[str, float]:
    """Gradient norms per part of the initial model on the first `batches` batches of the training set."""
    model = initial_model(config)
    dataset = build_dataset(config.dataset, config.data_root, "train", **config.train_data_options())
    loss_fn = PredictionLoss(config.loss_config())
    indices = list(range(min(len(dataset), batches * config.batch_size)))
    for start in range(0, len(indices), config.batch_size):
        batch = collate([dataset[i] for i in indices[start : start + config.batch_size]])
        target = batch["target"][:, 0]
        output = model(batch["context"], batch["target_times"][:, 0], target=target)
        loss, _ = loss_fn(output, target, batch.get("teacher_flow"))
        (loss / max(1, len(indices) // config.batch_size)).backward()
    return grouped_norms({n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()})


def weight_movement(config: TrainConfig, checkpoint: Path) -> dict[str, tuple[float, float]]:
    """{part: (|W - W0|, |W - W0| / |W0|)} between the initial and the trained weights."""
    start = initial_model(config).state_dict()
    trained = load_file(checkpoint)["model"]
    moved = grouped_norms({k: trained[k].float() - start[k].float() for k in start if k in trained and start[k].is_floating_point()})
    size = grouped_norms({k: v for k, v in start.items() if v.is_floating_point()})
    return {part: (moved[part], moved[part] / size[part] if size[part] > 0 else float("inf")) for part in moved}


def loss_shares(config: TrainConfig, run_dir: Path) -> list[dict]:
    """Weighted loss terms and their share of the total over the first and last tenth of the logged steps."""
    records = read_log(run_dir, kind="train")
    weights = config.loss_config().to_dict()
    rows = []
    tenth = max(1, len(records) // 10)
    for label, part in (("first tenth", records[:tenth]), ("last tenth", records[-tenth:])):
        weighted = {term: sum(weights[term] * r["terms"][term] for r in part) / len(part) for term in part[0]["terms"]}
        total = sum(weighted.values())
        rows.append({"steps": f"{label} ({part[0]['iteration']}..{part[-1]['iteration']})",
                     **{term: f"{value:.5f} ({100 * value / total:.0f} %)" for term, value in weighted.items()}})
    rows.append({"steps": "learning rate", **{f"iteration {r['iteration']}": f"{r['lr']:.2e}"
                                              for r in (records[0], records[len(records) // 2], records[-1])}})
    return rows


@torch.no_grad()
def prediction_changes(checkpoint: Path, dataset: str, root, samples: int = 16) -> dict:
    """Mean |flow - prior| (px), mean |prior| (px), the older frame's blend weight and mean |residual| on test windows."""
    model = load_model(checkpoint)
    options = {"test_fraction": 1.0} if dataset == "frames" else {}
    test_set = build_dataset(dataset, root, "test", teacher_flow=False, context_frames=model.context_frames, **options)
    totals = {"flow correction (px)": 0.0, "prior |flow| (px)": 0.0, "older frame weight": 0.0, "|residual|": 0.0}
    picked = range(0, len(test_set), max(1, len(test_set) // samples))
    for index in picked:
        sample = collate([test_set[index]])
        output = model(sample["context"], sample["target_times"][:, 0])
        totals["flow correction (px)"] += (output["flows"][0] - output["prior_flow"]).abs().mean().item()
        totals["prior |flow| (px)"] += output["prior_flow"].abs().mean().item()
        totals["older frame weight"] += output["mask"][:, 0].mean().item()
        totals["|residual|"] += output["residual"].abs().mean().item()
    return {key: value / len(picked) for key, value in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default="latest.pt", help="checkpoint file in the run folder (default latest.pt)")
    parser.add_argument("--batches", type=int, default=4, help="training batches for the step-0 gradients (default 4)")
    parser.add_argument("--test_dataset", help="dataset of the test windows for part 4 (default: the run's)")
    parser.add_argument("--test_root", help="its root (default: the run's data root)")
    args = parser.parse_args(argv)
    config_file = args.run_dir / "config.json"
    if not config_file.is_file():
        raise SystemExit(f"{config_file} not found: RUN_DIR must be a folder written by ifrvp train")
    config = TrainConfig(**{k: v for k, v in json.loads(config_file.read_text()).items() if not TrainConfig.unknown_keys({k: v})})
    torch.set_grad_enabled(True)
    gradients = step0_gradients(config, args.batches)
    movement = weight_movement(config, args.run_dir / args.checkpoint)
    print(f"{config.model_name} on {config.dataset}, motion prior {config.resolved_motion_prior()}, lr {config.resolved_lr_start()} -> {config.lr_end}")
    print(f"{'part':16s} {'grad norm, step 0':>18s} {'|W - W0|':>10s} {'relative':>9s}")
    for part in gradients:
        moved, relative = movement.get(part, (float("nan"), float("nan")))
        print(f"{part:16s} {gradients[part]:18.3e} {moved:10.4f} {relative:9.4f}")
    for row in loss_shares(config, args.run_dir):
        print("  ".join(f"{key}: {value}" for key, value in row.items()))
    if config.resolved_motion_prior() != "none":
        dataset, root = args.test_dataset or config.dataset, args.test_root or config.data_root
        changes = prediction_changes(args.run_dir / args.checkpoint, dataset, root)
        print(f"on {dataset} test windows ({root}): " + ", ".join(f"{key} {value:.4f}" for key, value in changes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
