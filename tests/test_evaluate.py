"""Protocols, recursive rollouts, baselines, the evaluation loop and its result files."""
import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ifrvp_core import evaluate as E
from ifrvp_core import motion_prior as MP
from ifrvp_core import metrics as M
from ifrvp_core import protocols as P
from ifrvp_core import results as RS
from ifrvp_core import rollout as R
from ifrvp_core.models import build_model


def _write_png(path: Path, value: int = 0, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), value % 256, np.uint8))


def _names(files):
    return [Path(f).name for f in files]


# --------------------------------------------------------------------------------------------
# protocols


def test_protocol_table():
    assert P.list_protocols() == ["cityscapes", "kitti", "davis17", "vimeo90k", "vimeo90k_septuplet", "gopro", "frames", "frames_heldout", "synthetic"]
    city = P.get_protocol("cityscapes")
    assert (city.split, city.context_frames, city.steps, city.resolution) == ("val", 2, 5, (512, 1024))
    vimeo = P.get_protocol("Vimeo90K")
    assert (vimeo.split, vimeo.steps, vimeo.resolution, dict(vimeo.dataset_options)["variant"]) == ("test", 1, (256, 448), "triplet")
    gopro = P.get_protocol("gopro")
    assert (gopro.frame_stride, gopro.context_frames, gopro.steps) == (8, 2, 5)
    assert "epe" in P.get_protocol("synthetic").metrics
    with pytest.raises(ValueError, match="unknown protocol 'kitti2015'.*cityscapes"):
        P.get_protocol("kitti2015")
    kitti = P.get_protocol("kitti")
    assert kitti.for_dataset("KITTI") is kitti
    on_city = kitti.for_dataset("cityscapes")  # kitti's settings on another dataset: not the kitti protocol
    assert (on_city.name, on_city.dataset, on_city.split, on_city.resolution) == ("kitti on cityscapes", "cityscapes", "test", (256, 832))
    assert P.published_rows(on_city) == () and P.published_rows(kitti)


def test_vimeo90k_septuplet_protocol_uses_septuplet_test_list(tmp_path):
    (tmp_path / "sep_testlist.txt").write_text("00001/0001\n00002/0007\n")
    (tmp_path / "sep_trainlist.txt").write_text("00003/0001\n")
    for entry in ("00001/0001", "00002/0007", "00003/0001"):
        for i in range(1, 8):
            _write_png(tmp_path / "sequences" / entry / f"im{i}.png", i)
    dataset = P.get_protocol("vimeo90k_septuplet").build_dataset(tmp_path)
    assert len(dataset) == 2
    files = dataset.sample_files(1)
    assert [str(Path(f).relative_to(tmp_path)) for f in files["context"]] == ["sequences/00002/0007/im1.png", "sequences/00002/0007/im2.png"]
    assert _names(files["target"]) == ["im3.png"]


def test_cityscapes_protocol_picks_frames_2_to_8(tmp_path):
    city = tmp_path / "leftImg8bit_sequence" / "val" / "frankfurt"
    for frame in range(30):
        _write_png(city / f"frankfurt_000001_{frame:06d}_leftImg8bit.png", frame)
    dataset = P.get_protocol("cityscapes").build_dataset(tmp_path)
    assert len(dataset) == 1
    files = dataset.sample_files(0)
    # DMVFN's protocol (0-based): frames 2, 3 are the context, 4..8 the targets t+1..t+5
    assert _names(files["context"]) == [f"frankfurt_000001_{i:06d}_leftImg8bit.png" for i in (2, 3)]
    assert _names(files["target"]) == [f"frankfurt_000001_{i:06d}_leftImg8bit.png" for i in range(4, 9)]


def test_gopro_protocol_strides_by_eight(tmp_path):
    for frame in range(60):
        _write_png(tmp_path / "test" / "GOPR0384_11_00" / "sharp" / f"{frame:06d}.png", frame)
    dataset = P.get_protocol("gopro").build_dataset(tmp_path)
    files = dataset.sample_files(0)
    assert _names(files["context"]) == ["000000.png", "000008.png"]
    assert _names(files["target"]) == [f"{i:06d}.png" for i in (16, 24, 32, 40, 48)]


def test_frames_protocol_uses_last_ten_percent(tmp_path):
    for frame in range(100):
        _write_png(tmp_path / "clip" / f"{frame:04d}.png", frame)
    dataset = P.get_protocol("frames").build_dataset(tmp_path / "clip")
    assert len(dataset) == 1  # frames 90..99 hold one 7-frame window
    files = dataset.sample_files(0)
    assert _names(files["context"]) == ["0090.png", "0091.png"]
    assert _names(files["target"]) == [f"{i:04d}.png" for i in range(92, 97)]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from ifrvp_core.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, "test", 3, num_frames=8, height=64, width=96, seed=3, progress=False)
    write_synthetic(root, "train", 1, num_frames=8, height=64, width=96, seed=3, progress=False)
    return root


def test_synthetic_protocol_uses_test_split_with_flow(synthetic_root):
    dataset = P.get_protocol("synthetic").build_dataset(synthetic_root, steps=3)
    assert len(dataset) == 3
    files = dataset.sample_files(0)
    assert [str(Path(f).relative_to(synthetic_root)) for f in files["context"]] == ["test/clip_00000/00000.png", "test/clip_00000/00001.png"]
    assert _names(files["target"]) == ["00002.png", "00003.png", "00004.png"]
    sample = dataset[0]
    assert sample["gt_flow"].shape == (4, 64, 96) and sample["gt_valid"].shape == (2, 64, 96)


# --------------------------------------------------------------------------------------------
# rollouts and step functions


def test_rollout_of_last_frame_step_equals_copy_last():
    context = torch.rand(2, 3, 3, 8, 10)
    rolled = R.rollout(lambda frames: frames[:, -1].clone(), context, 4)
    assert rolled.shape == (2, 4, 3, 8, 10)
    for k in range(4):
        assert torch.equal(rolled[:, k], R.copy_last(context))


def test_rollout_feeds_predictions_back():
    values = torch.tensor([0.0, 0.3, 0.6])
    context = values.view(1, 3, 1, 1, 1).expand(1, 3, 3, 4, 4).clone()
    rolled = R.rollout(lambda frames: frames.mean(dim=1), context, 3)
    # p1 = mean(0, .3, .6) = .3; p2 = mean(.3, .6, .3) = .4; p3 = mean(.6, .3, .4) = 13/30
    expected = torch.tensor([0.3, 0.4, 13 / 30])
    assert torch.allclose(rolled[0, :, 0, 0, 0], expected, atol=1e-6)
    assert torch.allclose(rolled.amax(dim=(2, 3, 4)), rolled.amin(dim=(2, 3, 4)))  # constant images
    with pytest.raises(ValueError, match=r"step function returned \(1, 1, 4, 4\)"):
        R.rollout(lambda frames: frames[:, -1, :1], context, 1)


def test_iter_rollout_streams_the_same_recursion():
    from ifrvp_core.predict import iter_rollout

    context = torch.rand(2, 3, 3, 8, 10)
    step = lambda frames: frames.mean(dim=1)  # noqa: E731
    streamed = list(R.iter_rollout(step, context, 4))
    assert len(streamed) == 4 and torch.equal(torch.stack(streamed, dim=1), R.rollout(step, context, 4))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        R.iter_rollout(step, context, 0)  # before the first prediction, not on the first next()
    assert iter_rollout is R.iter_rollout  # predict streams the one recursion


class LastFrameModel(torch.nn.Module):
    """Stand-in for an IFRNet-family model: predicts the newest frame, records its calls."""

    def __init__(self, context_frames=2):
        super().__init__()
        self.context_frames = context_frames
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def predict(self, frames, t, scale_factor=1.0):
        self.calls.append((frames.shape[1], float(t), scale_factor))
        return frames[:, -1].clone()

    def forward(self, frames, t, scale_factor=1.0):
        b, k, _, h, w = frames.shape
        return {"prediction": frames[:, -1], "flows": [torch.zeros(b, 2 * k, h, w)]}


def test_model_step_fn_extrapolates_at_t2_with_newest_frames():
    model = LastFrameModel(context_frames=2)
    step = R.model_step_fn(model, scale_factor=0.5)
    context = torch.rand(1, 4, 3, 8, 8)
    assert torch.equal(step(context), context[:, -1])
    assert model.calls == [(2, 2.0, 0.5)]
    assert step.flows(context).shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="has 1 frames but 2 are needed"):
        step(context[:, :1])


def _translating_frames(shift_per_frame=2, frames=3, height=64, width=96):
    """A smooth random texture moving right by `shift_per_frame` px per frame: (1, frames, 3, H, W)."""
    gen = torch.Generator().manual_seed(7)
    wide = width + shift_per_frame * frames + 16
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, height // 4, wide // 4, generator=gen), size=(height, wide), mode="bicubic", align_corners=False).clamp(0, 1)
    origin = shift_per_frame * frames + 8
    crops = [texture[..., origin - shift_per_frame * k : origin - shift_per_frame * k + width] for k in range(frames)]
    return torch.stack(crops, dim=1)


def test_dis_extrapolation_beats_copy_last_on_translation():
    clip = _translating_frames()
    context, truth = clip[:, :2], clip[:, 2]
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    dis_psnr = M.psnr(R.dis_extrapolation(context)[interior].clamp(0, 1), truth[interior]).item()
    copy_psnr = M.psnr(R.copy_last(context)[interior], truth[interior]).item()
    assert dis_psnr > copy_psnr + 8.0, (dis_psnr, copy_psnr)
    flows = R.dis_extrapolation.flows(context)  # target -> newest is (-2, 0), -> oldest (-4, 0)
    centre = flows[0, :, 16:-16, 16:-16].mean(dim=(1, 2))
    assert torch.allclose(centre, torch.tensor([-4.0, 0.0, -2.0, 0.0]), atol=0.3)


# --------------------------------------------------------------------------------------------
# the evaluation loop


def test_evaluate_schema_values_and_per_sample_scores(synthetic_root, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    dataset = P.get_protocol("synthetic").build_dataset(synthetic_root, steps=3)
    methods = {"last-frame-model": R.model_step_fn(LastFrameModel()), "copy-last": R.copy_last, "DIS": R.dis_extrapolation}
    results = E.evaluate(methods, dataset, steps=3, batch_size=2, device="cpu", progress=False)

    assert list(results) == list(methods)
    for method in methods:
        assert list(results[method]) == ["t+1", "t+2", "t+3", "t+1..t+1", "t+1..t+2", "t+1..t+3"]
        for step in results[method]:
            assert set(results[method][step]) >= {"psnr", "ssim", "ms_ssim", "lpips"}
            assert results[method][step]["lpips"] is None
    assert "alexnet-owt-7be5be79.pth" in results.unavailable["lpips"]
    assert set(results.meta) == set(RS.RESULTS_META_KEYS)
    assert (results.meta["samples"], results.meta["steps"], results.meta["bgr_like_published"]) == (3, 3, False)
    assert results.meta["protocol"] is None and results.meta["unavailable"] == results.unavailable
    assert results.meta["step_forms"] == RS.STEP_FORMS

    # Running means: the mean of the per-frame means t+1..t+k (DMVFN's order), which equals the
    # mean of the per-sample running means; EPE stays a t+1-only score.
    dis = results["DIS"]
    for k in (1, 2, 3):
        for metric in ("psnr", "ssim", "ms_ssim"):
            expected_mean = np.mean([dis[f"t+{j}"][metric] for j in range(1, k + 1)])
            assert dis[f"t+1..t+{k}"][metric] == pytest.approx(expected_mean, rel=1e-12)
            per_sample = results.per_sample["DIS"][f"t+1..t+{k}"][metric]
            by_hand = np.mean([results.per_sample["DIS"][f"t+{j}"][metric] for j in range(1, k + 1)], axis=0)
            assert per_sample.shape == (3,) and np.allclose(per_sample, by_hand, rtol=1e-12)
            assert per_sample.mean() == pytest.approx(dis[f"t+1..t+{k}"][metric], rel=1e-9)
    assert dis["t+1..t+1"]["psnr"] == dis["t+1"]["psnr"] and dis["t+1..t+3"]["psnr"] > dis["t+3"]["psnr"]
    assert "epe" in dis["t+1"] and "epe" not in dis["t+1..t+1"]

    # Hand-computed copy-last PSNR at t+2 (newest context frame vs the second future frame).
    expected = np.mean([M.psnr(dataset[i]["context"][-1:], dataset[i]["target"][1:2]).item() for i in range(len(dataset))])
    assert math.isclose(results["copy-last"]["t+2"]["psnr"], expected, rel_tol=1e-6)
    # A model that returns its newest input is exactly copy-last, at every step.
    for step in ("t+1", "t+2", "t+3"):
        for metric in ("psnr", "ssim", "ms_ssim"):
            assert results["last-frame-model"][step][metric] == pytest.approx(results["copy-last"][step][metric], abs=1e-9)
    # EPE: only methods with flows; DIS beats the zero-flow stand-in on moving content.
    assert "epe" not in results["copy-last"]["t+1"]
    assert results["DIS"]["t+1"]["epe"] < results["last-frame-model"]["t+1"]["epe"]

    assert results.sample_names == [dataset[i]["name"] for i in range(3)] and results.sample_indices == [0, 1, 2]
    scores = results.per_sample["DIS"]["t+1"]["psnr"]
    assert scores.shape == (3,) and math.isclose(scores.mean(), results["DIS"]["t+1"]["psnr"], rel_tol=1e-6)
    best, worst = results.best_worst("DIS", "psnr", "t+1", count=2)
    assert best[0][2] == scores.max() and worst[0][2] == scores.min() and best[0][1] == results.sample_names[int(scores.argmax())]
    best_epe, _ = results.best_worst("DIS", "epe", "t+1", count=1)
    assert best_epe[0][2] == results.per_sample["DIS"]["t+1"]["epe"].min()  # lower is better

    # Batching does not change the numbers; max_samples limits them.
    one_by_one = E.evaluate({"DIS": R.dis_extrapolation}, dataset, steps=3, batch_size=1, progress=False, metrics=("psnr", "ssim"))
    assert one_by_one["DIS"]["t+3"]["psnr"] == pytest.approx(results["DIS"]["t+3"]["psnr"], abs=1e-9)
    limited = E.evaluate({"c": R.copy_last}, dataset, steps=1, max_samples=2, progress=False, metrics=("psnr",))
    assert limited.sample_indices == [0, 1] and limited.per_sample["c"]["t+1"]["psnr"].shape == (2,)


def test_evaluate_from_protocol_name_caps_steps(synthetic_root):
    with pytest.warns(UserWarning, match="scores 5 future frame"):
        results = E.evaluate({"copy-last": R.copy_last}, "synthetic", steps=8, root=synthetic_root, progress=False, metrics=("psnr",))
    assert RS.frame_steps(results["copy-last"]) == [f"t+{k}" for k in range(1, 6)]
    assert RS.running_steps(results["copy-last"]) == [f"t+1..t+{k}" for k in range(1, 6)]
    assert results.protocol == "synthetic" and results.steps == 5


def test_evaluate_rejects_interpolation_data_and_bad_arguments(synthetic_root):
    from ifrvp_core.data import build_dataset

    interpolation = build_dataset("synthetic", synthetic_root, split="test", task="interpolate")
    with pytest.raises(ValueError, match=r"t = \[2.0\].*\[0.5\]"):
        E.evaluate({"c": R.copy_last}, interpolation, steps=1, progress=False, metrics=("psnr",))
    with pytest.raises(ValueError, match="unknown metrics"):
        E.evaluate({"c": R.copy_last}, interpolation, metrics=("fid",))
    with pytest.raises(ValueError, match="methods is empty"):
        E.evaluate({}, interpolation)


def test_running_means_follow_the_published_order_and_propagate_none():
    table = {"t+1": {"psnr": 30.0, "lpips": None, "epe": 1.0}, "t+2": {"psnr": 26.0, "lpips": None}, "t+3": {"psnr": 22.0, "lpips": None}}
    per_sample = {"t+1": {"psnr": np.array([31.0, 29.0])}, "t+2": {"psnr": np.array([27.0, 25.0])}, "t+3": {"psnr": np.array([20.0, 24.0])}}
    means, samples = RS.running_means(table, per_sample)
    assert means == {"t+1..t+1": {"psnr": 30.0, "lpips": None}, "t+1..t+2": {"psnr": 28.0, "lpips": None},
                     "t+1..t+3": {"psnr": 26.0, "lpips": None}}
    assert np.allclose(samples["t+1..t+3"]["psnr"], [26.0, 26.0]) and np.allclose(samples["t+1..t+2"]["psnr"], [29.0, 27.0])
    assert "lpips" not in samples.get("t+1..t+1", {})  # no per-sample scores of an unavailable metric
    with pytest.raises(ValueError, match=r"consecutive steps t\+1..t\+k, got \['t\+1', 't\+3'\]"):
        RS.running_means({"t+1": {"psnr": 1.0}, "t+3": {"psnr": 1.0}})
    assert [RS.step_number(s) for s in ("t+1", "t+5", "t+1..t+1", "t+1..t+5")] == [1, 5, 1, 5]
    for bad in ("t+0", "t+2..t+5", "meta", "t+x"):
        with pytest.raises(ValueError, match="not a step name"):
            RS.step_number(bad)


def test_one_parser_reads_step_names():
    assert [RS.parse_step(s) for s in ("t+1", "t+12", "t+1..t+1", "t+1..t+5")] == [(1, False), (12, False), (1, True), (5, True)]
    assert RS.is_running_step("t+1..t+3") and not RS.is_running_step("t+3")
    for bad in ("t+1..", "t+0", "t+2..t+5", "t+1..t+0", "meta", "t+x"):
        for read in (RS.parse_step, RS.step_number, RS.is_running_step):
            with pytest.raises(ValueError, match="not a step name"):
                read(bad)
    assert RS.frame_steps(["t+10", "t+1..t+2", "t+2", "t+1"]) == ["t+1", "t+2", "t+10"]
    assert RS.running_steps(["t+1..t+10", "t+1", "t+1..t+2"]) == ["t+1..t+2", "t+1..t+10"]


def test_standard_methods_use_the_contract_keys():
    model = LastFrameModel()
    methods = R.standard_methods(model, scale_factor=0.5)
    assert list(methods) == list(R.METHOD_KEYS) == ["model", "copy_last", "dis_extrapolation", "prior_only"]
    assert methods["model"].scale_factor == 0.5 and methods["copy_last"] is R.copy_last
    assert list(R.standard_methods(None)) == ["copy_last", "dis_extrapolation", "prior_only"]
    assert list(R.standard_methods(model, baselines=False)) == ["model"]
    with pytest.raises(ValueError, match="nothing to evaluate"):
        R.standard_methods(None, baselines=False)


def test_evaluate_model_records_variant_checkpoint_and_bgr_option(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    model = LastFrameModel()
    model.model_name = "IFRNet_T"
    results = E.evaluate_model(model, "synthetic", root=synthetic_root, checkpoint=tmp_path / "best.pt", steps=2,
                               written_by="a test", progress=False, metrics=("psnr",), bgr_like_published=True)
    assert list(results) == ["model", "copy_last", "dis_extrapolation", "prior_only"]
    meta = results.meta
    assert set(meta) == set(RS.RESULTS_META_KEYS)
    assert (meta["variant"], meta["checkpoint"], meta["written_by"], meta["scale_factor"]) == ("IFRNet_T", str(tmp_path / "best.pt"), "a test", 1.0)
    assert (meta["protocol"], meta["dataset"], meta["data_root"], meta["steps"], meta["samples"]) == ("synthetic", "synthetic", str(synthetic_root), 2, len(P.get_protocol("synthetic").build_dataset(synthetic_root, steps=2)))
    assert meta["samples"] == len(results.sample_names) > 0
    assert meta["bgr_like_published"] is True and meta["metrics"] == ["psnr"]
    # the model predicts its newest frame: exactly copy_last, in both forms
    for step in ("t+1", "t+2", "t+1..t+2"):
        assert results["model"][step]["psnr"] == pytest.approx(results["copy_last"][step]["psnr"], abs=1e-9)
    baselines = E.evaluate_model(None, "synthetic", root=synthetic_root, progress=False, metrics=("psnr",))
    assert list(baselines) == ["copy_last", "dis_extrapolation", "prior_only"] and baselines.meta["variant"] is None
    assert list(baselines["copy_last"])[-1] == "t+1..t+5"  # steps default: the protocol's 5
    with pytest.raises(ValueError, match="'meta' cannot be a method name"):
        E.evaluate({"meta": R.copy_last}, "synthetic", root=synthetic_root, progress=False)



def test_priors_computed_ahead_give_the_same_results_bit_for_bit(synthetic_root, tmp_path, monkeypatch):
    """A motion-prior model and the baselines, 3 samples in batches of 2, 3 steps, with the flow EPE:
    the first step's priors from the background thread change no score, and save DIS calls."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    torch.manual_seed(0)
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    options = dict(root=synthetic_root, steps=3, batch_size=2, device="cpu", progress=False, metrics=("psnr", "ssim"))
    counted = {}
    for prefetch in (False, True):
        before = MP.dis_call_count()
        counted[prefetch] = E.evaluate_model(model, "synthetic", prefetch_priors=prefetch, **options), MP.dis_call_count() - before
    (plain, plain_calls), (ahead, ahead_calls) = counted[False], counted[True]
    assert list(ahead) == ["model", "copy_last", "dis_extrapolation", "prior_only"] and "epe" in ahead["model"]["t+1"]
    assert ahead.sample_names == plain.sample_names and len(ahead.sample_names) == 3
    for method in plain:
        assert ahead[method] == plain[method], method  # the means, exactly
        for step, values in plain.per_sample[method].items():
            for metric, scores in values.items():
                assert np.array_equal(ahead.per_sample[method][step][metric], scores), (method, step, metric)
    # t+1 of the model and prior_only (calls and flows: 4 priors) share one prior per sample: 3 fewer DIS per sample
    assert plain_calls - ahead_calls == 3 * 3, (plain_calls, ahead_calls)


def test_first_step_priors_run_one_batch_ahead_and_only_for_prior_methods():
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    methods = R.standard_methods(model)
    priors = R.FirstStepPriors(methods)
    assert priors.specs == [(2, 2.0)]  # the model and its prior_only twin share one
    assert R.FirstStepPriors({"c": R.copy_last, "DIS": R.dis_extrapolation}).specs == []
    # the torch prior runs in the model's forward pass, on its device: nothing to compute ahead on the CPU
    assert R.FirstStepPriors(R.standard_methods(build_model("IFRNet_T", motion_prior="lucas_kanade"))).specs == []
    batches = [{"context": _translating_frames(shift_per_frame=s)[:, :2]} for s in (1, 2, 3)]
    seen = list(priors.iterate(iter(batches)))
    assert [batch for batch, _ in seen] == batches
    for batch, computed in seen:
        assert torch.equal(computed[(2, 2.0)], MP.constant_velocity_prior(batch["context"], 2.0))
    assert list(priors.iterate(iter([]))) == []
    with pytest.raises(ValueError, match="takes no motion prior"):
        R.rollout(R.copy_last, batches[0]["context"], 1, first_prior=seen[0][1][(2, 2.0)])
    with pytest.raises(ValueError, match="prior_flow must be"):
        R.rollout(methods["model"], batches[0]["context"], 1, first_prior=torch.zeros(1, 2, 64, 96))

def test_bgr_like_published_changes_lpips_only(synthetic_root, seeded_alexnet_weights):
    """With LPIPS weights present (here a seeded random AlexNet trunk: the real ImageNet file is
    not available offline, but the channel dependence is a property of any trunk), the quirk
    changes LPIPS and nothing else."""
    dataset = P.get_protocol("synthetic").build_dataset(synthetic_root, steps=2)
    methods = {"copy_last": R.copy_last, "dis_extrapolation": R.dis_extrapolation}
    rgb = E.evaluate(methods, dataset, steps=2, progress=False)
    bgr = E.evaluate(methods, dataset, steps=2, progress=False, bgr_like_published=True)
    assert rgb.meta["bgr_like_published"] is False and bgr.meta["bgr_like_published"] is True
    for method in methods:
        for step in ("t+1", "t+2", "t+1..t+2"):
            for metric in ("psnr", "ssim"):
                assert bgr[method][step][metric] == rgb[method][step][metric]
            assert bgr[method][step]["ms_ssim"] == pytest.approx(rgb[method][step]["ms_ssim"], abs=1e-6)  # per-channel mean
            assert rgb[method][step]["lpips"] is not None
            assert abs(bgr[method][step]["lpips"] - rgb[method][step]["lpips"]) > 1e-4, (method, step)
    assert "BGR channel order" in RS.format_table(bgr) and "BGR channel order" not in RS.format_table(rgb)


def test_save_load_results_and_table(tmp_path):
    results = RS.EvaluationResults({
        "IFRNet_T": {f"t+{k}": {"psnr": 30.0 - k, "ssim": 0.9, "ms_ssim": 0.95, "lpips": None} for k in range(1, 6)},
        "copy-last": {f"t+{k}": {"psnr": 25.0 - k, "ssim": 0.8, "ms_ssim": 0.85, "lpips": None} for k in range(1, 6)},
    })
    results.unavailable = {"lpips": "AlexNet ImageNet weights not found at /x/alexnet-owt-7be5be79.pth"}
    results.sample_names, results.sample_indices = ["a", "b"], [0, 1]
    results.per_sample = {"IFRNet_T": {"t+1": {"psnr": np.array([28.0, 30.0])}}}
    written = RS.save_results(results, tmp_path / "out" / "eval.json")
    assert written["json"].is_file() and written["csv"] == tmp_path / "out" / "eval.csv"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.csv", "eval.json", "eval_per_sample.csv"]  # no temp files

    data = json.loads(written["json"].read_text())
    assert data["IFRNet_T"]["t+3"] == {"psnr": 27.0, "ssim": 0.9, "ms_ssim": 0.95, "lpips": None}
    rows = list(csv.DictReader(written["csv"].open()))
    assert len(rows) == 2 * 5 * 4
    lpips_row = next(r for r in rows if r["metric"] == "lpips")
    assert lpips_row["value"] == "" and lpips_row["note"].startswith("n/a (AlexNet ImageNet weights not found")

    loaded = RS.load_results(written["json"])
    assert loaded == results and loaded.unavailable == results.unavailable and loaded.steps == 5
    assert loaded.best_worst("IFRNet_T", "psnr", "t+1", count=1) == ([(1, "b", 30.0)], [(0, "a", 28.0)])

    table = RS.format_table(results)
    header = next(line for line in table.splitlines() if "method" in line)
    assert header.split()[1:] == ["frame", "t+1*", "frame", "t+2", "frame", "t+3*", "frame", "t+4", "frame", "t+5*"]
    psnr_row = next(line for line in table.splitlines() if line.strip().startswith("IFRNet_T"))
    assert psnr_row.split()[1:] == ["29.00", "28.00", "27.00", "26.00", "25.00"]
    assert "n/a" in table and "lpips: n/a (AlexNet ImageNet weights not found" in table
    with pytest.raises(ValueError, match="must end in .json"):
        RS.save_results(results, tmp_path / "eval.txt")


def test_saved_means_that_are_not_finite_are_null(tmp_path):
    results = RS.EvaluationResults({"copy_last": {"t+1": {"psnr": float("inf"), "ssim": 1.0, "ms_ssim": float("nan"),
                                                          "lpips": None, "epe": float("-inf")}}})
    written = RS.save_results(results, tmp_path / "r.json")
    text = written["json"].read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["copy_last"]["t+1"] == {"psnr": None, "ssim": 1.0, "ms_ssim": None, "lpips": None, "epe": None}
    rows = {r["metric"]: r["value"] for r in csv.DictReader(written["csv"].open())}
    assert rows == {"psnr": "", "ssim": "1.0", "ms_ssim": "", "lpips": "", "epe": ""}
    assert results["copy_last"]["t+1"]["psnr"] == math.inf  # the results in memory keep the score
    assert RS.load_results(written["json"])["copy_last"]["t+1"]["psnr"] is None


def _contract_results():
    """Results as `evaluate_model` makes them: both forms, meta, per-sample scores of both."""
    results = RS.EvaluationResults()
    results.sample_names, results.sample_indices = ["a", "b"], [0, 1]
    for method, base in (("model", 30.0), ("copy_last", 25.0), ("dis_extrapolation", 27.0), ("prior_only", 28.0)):
        table = {f"t+{k}": {"psnr": base - 2 * k, "ssim": 0.9 - 0.1 * k, "ms_ssim": 0.95 - 0.05 * k, "lpips": 0.05 * k} for k in range(1, 6)}
        scores = {f"t+{k}": {"psnr": np.array([base - 2 * k - 1, base - 2 * k + 1])} for k in range(1, 6)}
        means, samples = RS.running_means(table, scores)
        results[method] = {**table, **means}
        results.per_sample[method] = {**scores, **samples}
    results.protocol = "cityscapes"
    results.meta = {key: None for key in RS.RESULTS_META_KEYS}
    results.meta.update(format=RS.RESULTS_FORMAT, variant="IFRNet_S", checkpoint="/runs/best.pt", protocol="cityscapes", steps=5,
                        samples=2, bgr_like_published=False, step_forms=dict(RS.STEP_FORMS), unavailable={})
    return results


def test_results_contract_round_trip_csv_forms_and_published_rows(tmp_path):
    results = _contract_results()
    written = RS.save_results(results, tmp_path / "results.json")
    data = json.loads(written["json"].read_text())
    assert list(data) == ["meta", "model", "copy_last", "dis_extrapolation", "prior_only"]
    assert data["meta"]["variant"] == "IFRNet_S" and data["meta"]["checkpoint"] == "/runs/best.pt"
    assert list(data["model"]) == [f"t+{k}" for k in range(1, 6)] + [f"t+1..t+{k}" for k in range(1, 6)]
    assert data["model"]["t+1..t+3"]["psnr"] == pytest.approx((28 + 26 + 24) / 3)  # running mean
    assert data["model"]["t+3"]["psnr"] == 24.0  # frame t+3 alone
    rows = list(csv.DictReader(written["csv"].open()))
    assert len(rows) == 4 * 10 * 4
    row = next(r for r in rows if r["method"] == "copy_last" and r["step"] == "t+1..t+5" and r["metric"] == "lpips")
    assert row["form"] == "running_mean" and float(row["value"]) == pytest.approx(0.15)
    assert {r["form"] for r in rows if r["step"] == "t+5"} == {"frame"}
    samples = list(csv.DictReader(written["per_sample"].open()))
    assert {r["form"] for r in samples} == {"frame", "running_mean"}

    loaded = RS.load_results(written["json"])
    assert "meta" not in loaded and list(loaded) == ["model", "copy_last", "dis_extrapolation", "prior_only"]
    assert loaded == results and loaded.meta == results.meta and loaded.protocol == "cityscapes" and loaded.steps == 5
    assert np.allclose(loaded.per_sample["model"]["t+1..t+2"]["psnr"], results.per_sample["model"]["t+1..t+2"]["psnr"])

    table = RS.format_table(loaded)
    lines = table.splitlines()
    # The published rows sit in the running-mean block only, under the columns they were published for.
    running_psnr = lines.index(next(l for l in lines if l.startswith("PSNR") and "mean t+1..t+k" in l))
    assert lines[running_psnr + 1].split()[1:3] == ["mean", "t+1..t+1*"]
    demo = lines[running_psnr + 6]  # after the header, the column line and the four methods
    assert demo.split() == ["DMVFN", "(published,", "demo)", "30.01", "-", "26.64", "-", "24.74"]
    frame_psnr = lines.index(next(l for l in lines if l.startswith("PSNR") and "frame t+k" in l))
    assert not any("DMVFN" in l for l in lines[frame_psnr : running_psnr])
    ms_ssim_block = lines[lines.index(next(l for l in lines if l.startswith("MS-SSIM") and "mean t+1..t+k" in l)):]
    assert ms_ssim_block[6].split()[3:] == ["0.9573", "-", "-", "-", "-"]  # paper: t+1 only
    assert "DMVFN (published, demo): DMVFN's official Cityscapes demo notebook" in table
    assert "DMVFN (published" not in RS.format_table(loaded, published=False)
    loaded.protocol = loaded.meta["protocol"] = "synthetic"
    assert "DMVFN (published" not in RS.format_table(loaded)  # no published figures for this protocol


def test_load_results_reads_files_without_meta_and_names_bad_content(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"IFRNet_T": {"t+1": {"psnr": 30.0}, "t+2": {"psnr": 28.0}}, "copy-last": {"t+1": {"psnr": 25.0}}}))
    loaded = RS.load_results(old)
    assert list(loaded) == ["IFRNet_T", "copy-last"] and loaded.meta == {} and loaded.steps == 2
    assert list(loaded["IFRNet_T"]) == ["t+1", "t+2"]  # no running means invented
    assert "frame t+2" in RS.format_table(loaded) and "mean t+1" not in RS.format_table(loaded)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"t+1": {"psnr": 1.0}, "final": {"psnr": 1.0}}}))
    with pytest.raises(ValueError, match=r"bad.json: method 'model': not a step name: 'final'"):
        RS.load_results(bad)
    bad.write_text(json.dumps({"meta": [1], "model": {}}))
    with pytest.raises(ValueError, match="'meta' must be an object"):
        RS.load_results(bad)
    results = _contract_results()
    results["meta"] = {}
    with pytest.raises(ValueError, match="'meta' is not a method name"):
        RS.save_results(results, tmp_path / "r.json")


def test_evaluate_still_offers_the_names_of_protocols_rollout_and_results():
    """The trainer, the notebooks and the workbook import these from ifrvp_core.evaluate."""
    moved = {name: module for module in (P, R, RS) for name in module.__all__}
    for name in ("BASELINE_KEYS", "DEFAULT_METRICS", "DISExtrapolation", "EvaluationResults", "METHOD_KEYS", "METRIC_LABELS",
                 "MODEL_KEY", "PROTOCOLS", "PUBLISHED", "RESULTS_FORMAT", "RESULTS_META_KEYS", "RUNNING_MEAN_METRICS",
                 "STEP_FORMS", "ModelStep", "Protocol", "StepFn", "copy_last", "dis_extrapolation", "format_table",
                 "frame_steps", "get_protocol", "is_running_step", "list_protocols", "load_results", "model_step_fn",
                 "published_rows", "resolve_device", "results_protocol", "rollout", "running_means", "running_step_name",
                 "running_steps", "save_results", "standard_methods", "step_name", "step_number"):
        assert name in E.__all__ and getattr(E, name) is getattr(moved[name], name), name
