"""--precision (bf16 / fp16 autocast), --channels_last and --compile for prediction and evaluation."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ifrvp_core.checkpoint import model_checkpoint, save_atomic
from ifrvp_core.cli import main
from ifrvp_core.evaluate import evaluate_model
from ifrvp_core.metrics import psnr
from ifrvp_core.models import build_model, prepare_for_inference
from ifrvp_core.precision import PRECISIONS, autocast_for, check_precision
from ifrvp_core.predict import predict_video
from ifrvp_core.results import RESULTS_META_KEYS
from ifrvp_core.rollout import ModelStep, standard_methods


def perturbed_prior_model(seed: int = 0):
    """A tiny IFRNet_T with the DIS prior whose decoders are not at their zero start (so the network matters)."""
    torch.manual_seed(seed)
    model = build_model("IFRNet_T", motion_prior="dis").eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model


@pytest.fixture(scope="module")
def moving_clip():
    """(frames (1, 2, 3, 48, 64), target (1, 3, 48, 64)): a smooth picture moving 2 px right per frame."""
    torch.manual_seed(1)
    base = F.interpolate(torch.rand(1, 3, 12, 16), size=(56, 72), mode="bicubic", align_corners=False).clamp(0, 1)
    frames = torch.stack([base[..., 4:52, 4:68], base[..., 4:52, 6:70]], dim=1)
    return frames, base[..., 4:52, 8:72]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu_is_close_to_fp32(moving_clip, precision):
    frames, target = moving_clip
    model = perturbed_prior_model()
    reference = model.predict(frames, 2.0)
    reduced = model.predict(frames, 2.0, precision=precision)
    assert reduced.dtype == torch.float32 and reduced.shape == (1, 3, 48, 64)
    assert 0.0 <= reduced.min() and reduced.max() <= 1.0
    difference = (reduced - reference).abs().max().item()
    # Measured on this torch: bf16 9.5e-4, fp16 1.4e-4. Zero would mean autocast did nothing.
    assert 0.0 < difference < 0.01
    assert abs(psnr(reduced, target).item() - psnr(reference, target).item()) < 0.1  # measured 0.01 dB


def test_the_dis_prior_stays_float32_under_autocast(moving_clip):
    frames, _ = moving_clip
    model = perturbed_prior_model()
    with torch.inference_mode():
        reference = model(frames, 2.0)["prior_flow"]
        with autocast_for("bf16", frames.device):
            output = model(frames, 2.0)
    assert output["prior_flow"].dtype == torch.float32
    assert torch.equal(output["prior_flow"], reference)  # the same DIS flow, bit for bit
    assert output["refined_features"][0].dtype == torch.bfloat16  # while the decoders did run in bf16


def test_bad_precision_names_the_flag_and_the_valid_values(moving_clip):
    frames, _ = moving_clip
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    with pytest.raises(ValueError, match=r"--precision must be one of fp32, bf16, fp16; got 'fp64' \(did you mean 'fp16'\?\)"):
        check_precision("fp64")
    with pytest.raises(ValueError, match="--precision must be one of fp32, bf16, fp16; got 'int8'"):
        perturbed_prior_model().predict(frames, 2.0, precision="int8")
    with pytest.raises(ValueError, match="--precision must be one of"):
        ModelStep(perturbed_prior_model(), precision="half")


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match="--precision bf16: this GPU has no bf16 support; use --precision fp16 or fp32"):
        check_precision("bf16", "cuda")


def test_channels_last_equals_fp32(moving_clip):
    frames, _ = moving_clip
    model = perturbed_prior_model()
    reference = model.predict(frames, 2.0)
    twin = prepare_for_inference(perturbed_prior_model(), channels_last=True)
    assert twin.encoder.pyramid1[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(twin.predict(frames, 2.0), reference, atol=1e-5, rtol=0)


def test_model_step_and_standard_methods_run_the_model_in_the_precision(moving_clip):
    frames, _ = moving_clip
    model = perturbed_prior_model()
    step = standard_methods(model, baselines=False, precision="bf16")["model"]
    assert step.precision == "bf16" and "precision='bf16'" in repr(step)
    prediction = step(frames)
    assert prediction.dtype == torch.float32
    assert torch.equal(prediction, model.predict(frames, 2.0, precision="bf16"))
    assert not torch.equal(prediction, ModelStep(model)(frames))
    assert step.flows(frames).dtype == torch.float32


def test_evaluate_model_records_the_precision(moving_clip):
    frames, target = moving_clip
    dataset = [dict(context=frames[0], target=target, target_times=torch.tensor([2.0]), name="clip")]
    model = perturbed_prior_model()
    results = evaluate_model(model, dataset, baselines=False, steps=1, precision="bf16", device="cpu", progress=False,
                             metrics=("psnr",))
    assert set(results.meta) == set(RESULTS_META_KEYS) and results.meta["precision"] == "bf16"
    expected = psnr(model.predict(frames, 2.0, precision="bf16"), target).item()
    assert results["model"]["t+1"]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert evaluate_model(None, dataset, steps=1, device="cpu", progress=False, metrics=("psnr",)).meta["precision"] is None


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory):
    """Four 40x56 PNG frames of a bar moving right."""
    from ifrvp_core.data.io import write_image_atomic

    folder = tmp_path_factory.mktemp("frames")
    for index in range(4):
        image = np.full((40, 56, 3), 30, np.uint8)
        image[8:32, 4 + 5 * index : 14 + 5 * index] = (220, 170, 50)
        write_image_atomic(folder / f"f_{index:03d}.png", image)
    return folder


def test_predict_video_in_bf16_writes_nearly_the_fp32_frames(frames_folder, tmp_path):
    from ifrvp_core.data.io import read_image

    model = perturbed_prior_model()
    predict_video(model, frames_folder, 2, tmp_path / "fp32", device="cpu", progress=False)
    info = predict_video(model, frames_folder, 2, tmp_path / "bf16", device="cpu", progress=False, precision="bf16")
    assert info["frames"] == 2
    differences = [np.abs(read_image(tmp_path / "fp32" / name).astype(int) - read_image(tmp_path / "bf16" / name).astype(int))
                   for name in ("pred_00000.png", "pred_00001.png")]
    # In uint8 levels. t+1: bf16 is < 0.01 from fp32 before rounding (measured: max 1 level).
    assert differences[0].max() <= 2
    # t+2 is predicted from the bf16 t+1 (DIS runs on it), so the bar's edges move a little
    # (measured: mean 0.17 levels, 0.5 % of values above 3).
    assert differences[1].mean() < 0.5 and (differences[1] > 3).mean() < 0.02


def test_cli_precision_and_channels_last_flags(frames_folder, tmp_path, capsys):
    checkpoint = tmp_path / "tiny.pt"
    save_atomic(model_checkpoint(perturbed_prior_model()), checkpoint)
    out = tmp_path / "pred"
    assert main(["predict", str(frames_folder), "--checkpoint", str(checkpoint), "--steps", "1", "--output", str(out),
                 "--precision", "bf16", "--channels-last", "--device", "cpu", "--no-progress"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["pred_00000.png"]
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(frames_folder), "--output", str(out), "--precision", "fp64"])
    assert exit_info.value.code == 2
    assert "argument --precision: must be one of fp32, bf16, fp16; got 'fp64'" in capsys.readouterr().err


def test_cli_evaluate_writes_the_precision_to_meta(tmp_path, capsys):
    from ifrvp_core.data.synthetic import write_synthetic

    root = tmp_path / "synthetic"
    write_synthetic(root, "test", 1, num_frames=4, height=32, width=48, seed=3, progress=False)
    checkpoint = tmp_path / "tiny.pt"
    save_atomic(model_checkpoint(perturbed_prior_model()), checkpoint)
    output = tmp_path / "results.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--data_root", str(root),
                 "--steps", "1", "--max_samples", "1", "--precision", "bf16", "--device", "cpu", "--output", str(output),
                 "--no_progress"]) == 0
    assert json.loads(output.read_text())["meta"]["precision"] == "bf16"


def test_predict_computes_the_prior_before_the_forward_pass_with_the_same_numbers(moving_clip):
    from ifrvp_core.motion_prior import constant_velocity_prior

    frames, _ = moving_clip
    model = perturbed_prior_model()
    with torch.inference_mode():
        in_forward = model(frames, 2.0)["prediction"]  # the prior computed inside forward
    assert torch.equal(model.predict(frames, 2.0), in_forward)
    assert torch.equal(model.predict(frames, 2.0, prior_flow=constant_velocity_prior(frames, 2.0)), in_forward)
    assert not torch.equal(model.predict(frames, 2.0, prior_flow=torch.zeros(1, 4, 48, 64)), in_forward)
