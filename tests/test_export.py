"""ifrvp export: TorchScript and ONNX files of the network with the motion prior as an input.

The ONNX tests need the optional extra (pip install 'ifrvp[export]': onnx, onnxscript,
onnxruntime) and skip without it; the TorchScript tests need only torch.
"""
import sys

import pytest
import torch

from ifrvp_core.checkpoint import model_checkpoint, save_atomic
from ifrvp_core.cli import main
from ifrvp_core.export import ExportInfo, export_model, load_exported, read_export_info, verify_export
from ifrvp_core.models import build_model
from ifrvp_core.motion_prior import constant_velocity_prior
from ifrvp_core.rollout import ModelStep, rollout

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # torch marks torch.jit as deprecated

HEIGHT, WIDTH = 36, 52  # not multiples of 16: the padding is inside the exported graph


def perturbed_model(motion_prior="dis", seed=0):
    """A tiny IFRNet_T whose decoders are off their zero start (so the network, not only the prior, matters)."""
    torch.manual_seed(seed)
    model = build_model("IFRNet_T", motion_prior=motion_prior).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model


def clip(batch=1, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2, 3, HEIGHT, WIDTH, generator=generator)


def test_torchscript_export_matches_pytorch_with_the_prior_as_input(tmp_path):
    model = perturbed_model()
    path = export_model(model, tmp_path / "tiny.ts", "torchscript", height=HEIGHT, width=WIDTH)
    frames, t = clip(), torch.tensor([2.0])
    prior = constant_velocity_prior(frames, t)
    module = torch.jit.load(str(path))
    exported = module(frames, t, prior)
    expected = model.predict(frames, 2.0, prior_flow=prior)
    assert exported.shape == (1, 3, HEIGHT, WIDTH)
    assert (exported - expected).abs().max() < 1e-4
    # The prior really is an input: another prior gives another prediction.
    assert (module(frames, t, prior + 1.0) - exported).abs().max() > 1e-3
    assert read_export_info(path) == ExportInfo("torchscript", "IFRNet_T", 2, "dis", HEIGHT, WIDTH, 1, 1.0)


def test_load_exported_computes_the_prior_and_runs_any_batch(tmp_path):
    model = perturbed_model()
    predictor = load_exported(export_model(model, tmp_path / "tiny.pt", "torchscript", height=HEIGHT, width=WIDTH))
    frames = clip(batch=3)
    times = torch.tensor([2.0, 2.0, 1.5])
    prediction = predictor(frames, times)  # batch 3 through a batch-1 file
    assert prediction.shape == (3, 3, HEIGHT, WIDTH) and prediction.dtype == torch.float32
    assert (prediction - model.predict(frames, times)).abs().max() < 1e-4
    # Usable where a model is: the recursive rollout of the file equals the model's.
    context = clip(batch=1, seed=2)
    assert (rollout(ModelStep(predictor), context, 2) - rollout(ModelStep(model), context, 2)).abs().max() < 1e-4


def test_exported_file_refuses_other_frame_sizes_and_scale_factors(tmp_path):
    predictor = load_exported(export_model(perturbed_model(), tmp_path / "tiny.ts", height=HEIGHT, width=WIDTH))
    with pytest.raises(ValueError, match=r"exported for 36x52 frames, got 48x64: export again with --height 48 --width 64"):
        predictor(torch.rand(1, 2, 3, 48, 64))
    with pytest.raises(ValueError, match=r"frames must be \(B, 2, 3, H, W\)"):
        predictor(torch.rand(1, 3, 3, HEIGHT, WIDTH))
    with pytest.raises(ValueError, match="exported with scale_factor 1.0, got 0.5"):
        predictor.predict(clip(), 2.0, scale_factor=0.5)


def test_scale_factor_is_baked_in_and_models_without_a_prior_have_two_inputs(tmp_path):
    model = perturbed_model(motion_prior="none")
    path = export_model(model, tmp_path / "plain.ts", height=HEIGHT, width=WIDTH, scale_factor=0.5)
    info = read_export_info(path)
    assert (info.motion_prior, info.scale_factor, info.input_names) == ("none", 0.5, ["frames", "t"])
    frames = clip()
    exported = torch.jit.load(str(path))(frames, torch.tensor([2.0]))
    assert (exported - model.predict(frames, 2.0, scale_factor=0.5)).abs().max() < 1e-4
    assert verify_export(model, path) < 1e-4


def test_bad_export_arguments_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"--format must be one of torchscript, onnx; got 'tflite'"):
        export_model(perturbed_model(), tmp_path / "x.ts", "tflite")
    with pytest.raises(ValueError, match=r"--output .*x.ts: --format onnx writes a file ending in .onnx"):
        export_model(perturbed_model(), tmp_path / "x.ts", "onnx")
    not_ours = tmp_path / "other.ts"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(not_ours))
    with pytest.raises(ValueError, match="TorchScript file without ifrvp_export.json"):
        load_exported(not_ours)


def test_onnx_export_matches_pytorch_in_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="optional extra ifrvp[export]")
    pytest.importorskip("onnx", reason="optional extra ifrvp[export]")
    pytest.importorskip("onnxscript", reason="optional extra ifrvp[export]")
    model = perturbed_model()
    path = export_model(model, tmp_path / "tiny.onnx", "onnx", height=HEIGHT, width=WIDTH)
    frames, t = clip(), torch.tensor([2.0])
    prior = constant_velocity_prior(frames, t)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frames", "t", "prior_flow"]
    (exported,) = session.run(["prediction"], {"frames": frames.numpy(), "t": t.numpy(), "prior_flow": prior.numpy()})
    assert (torch.from_numpy(exported) - model.predict(frames, 2.0, prior_flow=prior)).abs().max() < 1e-4
    predictor = load_exported(path)
    assert predictor.info.format == "onnx"
    assert (predictor(clip(batch=2), 2.0) - model.predict(clip(batch=2), 2.0)).abs().max() < 1e-4


def test_cli_export_torchscript_and_errors(tmp_path, capsys, monkeypatch):
    checkpoint = tmp_path / "tiny.pt"
    save_atomic(model_checkpoint(perturbed_model()), checkpoint)
    output = tmp_path / "tiny.ts"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--output", str(output),
                 "--height", str(HEIGHT), "--width", str(WIDTH)]) == 0
    printed = capsys.readouterr().out
    assert "frames (1,2,3,36,52), t (1,), prior_flow (1,4,36,52) -> prediction (1,3,36,52)" in printed
    difference = float(printed.rsplit(" ", 1)[-1])
    assert difference < 1e-4
    assert read_export_info(output).height == HEIGHT
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "x.ts")]) == 2
    assert "--format onnx writes a file ending in .onnx" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the optional extra were not installed
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "x.onnx"),
                 "--height", "16", "--width", "16"]) == 2
    assert "ONNX export needs the optional extra: pip install 'ifrvp[export]'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(checkpoint), "--format", "tflite", "--output", str(output)])
    assert "argument --format: must be one of torchscript, onnx; got 'tflite'" in capsys.readouterr().err
