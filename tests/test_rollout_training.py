"""Multi-step training (`--rollout_steps N`): N recursive steps with gradients through every prediction."""
import json

import pytest
import torch

from ifrvp_core.train import Dist, TrainConfig, Trainer
from ifrvp_core.train.config import ConfigError
from test_train import run_cli
from tiny_training import tiny_args


def records(run_dir, kind="train"):
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_rollout_steps_score_every_step_and_train_other_weights(tiny_data, tmp_path):
    one = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "one", max_steps=2, val_samples=0)), Dist())
    one.run()
    three = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "three", max_steps=2, val_samples=0, rollout_steps=3)), Dist())
    three.run()
    assert next(iter(three.loader))["target"].shape[1] == 3  # the windows hold the three true frames
    terms = records(three.run_dir)[0]["terms"]
    assert {"step1", "step2", "step3"} <= set(terms)
    # the loss is the mean of the steps'
    assert records(three.run_dir)[0]["loss"] == pytest.approx((terms["step1"] + terms["step2"] + terms["step3"]) / 3, rel=1e-5)
    assert terms["step3"] > terms["step1"]  # errors compound along the rollout
    a, b = one.model.state_dict(), three.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_rollout_gradient_reaches_the_first_prediction(tiny_data, tmp_path):
    """Step 2's loss is differentiated through step 1's prediction (not a detached copy)."""
    trainer = Trainer(TrainConfig.from_args(tiny_args(tiny_data, tmp_path, "grad", max_steps=1, val_samples=0, rollout_steps=2)), Dist())
    batch = next(iter(trainer.loader))
    seen = {}
    forward = trainer.ddp.forward

    def spy(frames, *args, **kwargs):
        output = forward(frames, *args, **kwargs)
        seen.setdefault("first", output["prediction"]).retain_grad()
        return output

    trainer.ddp.forward = spy
    trainer.train_step(batch)
    assert seen["first"].grad is not None and seen["first"].grad.abs().sum() > 0


def test_rollout_steps_must_be_positive_and_only_for_extrapolation():
    with pytest.raises(ConfigError, match="--rollout_steps"):
        TrainConfig.from_args(["--rollout_steps", "0"]).check()
    with pytest.raises(ConfigError, match="--rollout_steps"):
        TrainConfig.from_args(["--rollout_steps", "2", "--task", "interpolate"]).check()


def test_rollout_training_runs_under_ddp(tiny_data, tmp_path):
    result = run_cli(tiny_args(tiny_data, tmp_path, "ddp", max_steps=2, val_samples=0, rollout_steps=2), nproc=2, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"step1", "step2"} <= set(records(tmp_path / "ddp")[0]["terms"])
