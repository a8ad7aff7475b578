"""Export an IFRNet-family network to TorchScript or ONNX, and run the exported file.

The exported network is the model's forward pass with the motion prior as an explicit input,
because the "dis" prior is OpenCV DIS (not a torch op, so no exporter can capture it); the
"lucas_kanade" prior is an input too, so every exported file has the same inputs and the flow
stays outside the fixed-size trace:

    inputs   frames (B, K, 3, H, W) float32 in [0, 1], oldest first
             t (B,) float32 target times (2.0: the frame after the newest)
             prior_flow (B, 2K, H, W) float32, only for models with a motion prior
             (`motion_prior.constant_velocity_prior(frames, t, method)`, the model's method)
    output   prediction (B, 3, H, W) float32 in [0, 1]

**Fixed size.** Tracing (TorchScript) and the ONNX exporter record the Python control flow of
`IFRNetModel.forward` once: the replicate padding to a multiple of 16, the `scale_factor` resize
and the batch size are baked in for the H x W, batch and scale factor of the export. An exported
file therefore runs at exactly that H x W (and batch). `load_exported` reads these from the file,
refuses other frame sizes with a message naming them, and runs larger batches one export batch at
a time. Export once per frame size you deploy.

    >>> export_model(model, "ifrnet_t.ts", "torchscript", height=256, width=448)
    >>> predictor = load_exported("ifrnet_t.ts")
    >>> prediction = predictor(frames, 2.0)          # computes the prior (the model's method), then runs the file

The file's description (`ExportInfo`: model name, K, motion prior, H, W, batch, scale factor)
travels inside it: a TorchScript extra file ``ifrvp_export.json``, ONNX ``metadata_props``.
ONNX needs the optional extra ``pip install "ifrvp[export]"`` (onnx, onnxscript, onnxruntime).
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ifrvp_core.atomic import write_file_atomic
from ifrvp_core.flags import choice_error
from ifrvp_core.motion_prior import constant_velocity_prior

__all__ = ["EXPORT_FORMATS", "ExportInfo", "check_export_output", "ExportedPredictor", "PredictionNetwork", "export_model", "load_exported",
           "read_export_info", "verify_export"]

EXPORT_FORMATS = ("torchscript", "onnx")
INFO_NAME = "ifrvp_export.json"  # the TorchScript extra file and the ONNX metadata key
ONNX_OPSET = 18  # grid_sample needs >= 16
_SUFFIXES = {"torchscript": (".pt", ".ts", ".torchscript"), "onnx": (".onnx",)}


@dataclasses.dataclass(frozen=True)
class ExportInfo:
    """What an exported file computes and the sizes it was exported for."""

    format: str
    model_name: str
    context_frames: int
    motion_prior: str
    height: int
    width: int
    batch: int
    scale_factor: float

    @property
    def input_names(self) -> list[str]:
        return ["frames", "t", "prior_flow"] if self.motion_prior != "none" else ["frames", "t"]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path) -> "ExportInfo":
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {INFO_NAME} is not an ifrvp export description ({error})") from None


class PredictionNetwork(nn.Module):
    """The exportable part of a model: forward(frames (B,K,3,H,W), t (B,), [prior_flow (B,2K,H,W)]) -> (B,3,H,W).

    For models without a motion prior `prior_flow` must be left out (None).
    """

    def __init__(self, model: nn.Module, scale_factor: float = 1.0):
        super().__init__()
        self.model = model
        self.scale_factor = float(scale_factor)

    def forward(self, frames: torch.Tensor, t: torch.Tensor, prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(frames, t, scale_factor=self.scale_factor, prior_flow=prior_flow)["prediction"]


def check_export_output(format: str, output) -> str:
    """`format` if it is one of `EXPORT_FORMATS` and `output` has one of its suffixes; ValueError naming the flag otherwise."""
    if format not in EXPORT_FORMATS:
        raise ValueError(choice_error("--format", format, EXPORT_FORMATS))
    suffix = Path(output).suffix.lower()
    if suffix not in _SUFFIXES[format]:
        raise ValueError(f"--output {output}: --format {format} writes a file ending in {', '.join(_SUFFIXES[format])}")
    return format


def export_model(model: nn.Module, output, format: str = "torchscript", height: int = 256, width: int = 448,
                 scale_factor: float = 1.0, batch: int = 1) -> Path:
    """Write `model` as a TorchScript or ONNX file that runs at `height` x `width` (see the module docstring).

    Args:
        model: an IFRNet-family model (`build_model` / `load_model`); exported from the CPU in eval mode.
        output: the file (.pt/.ts/.torchscript for TorchScript, .onnx for ONNX), written atomically.
        format: "torchscript" (torch.jit.trace) or "onnx" (torch.onnx.export, opset 18).
        height, width: the frame size the file will run at (any size; padding to 16 is inside).
        scale_factor: the model's internal resize, baked in.
        batch: the batch size baked in (`load_exported` runs larger batches in chunks of it).

    Returns the written path. ValueError naming the flag for a bad format, suffix or size;
    ImportError naming the extra when ONNX's packages are missing.
    """
    check_export_output(format, output)
    for name, value in (("--height", height), ("--width", width), ("--batch", batch)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    motion_prior = getattr(model, "motion_prior", "none")
    k = int(getattr(model, "context_frames", 2))
    info = ExportInfo(format=format, model_name=getattr(model, "model_name", type(model).__name__), context_frames=k,
                      motion_prior=motion_prior, height=int(height), width=int(width), batch=int(batch),
                      scale_factor=float(scale_factor))
    network = PredictionNetwork(model.cpu().eval(), scale_factor).eval()
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(info.batch, k, 3, info.height, info.width, generator=generator)
    t = torch.full((info.batch,), 2.0)
    inputs = (frames, t) + ((constant_velocity_prior(frames, t, motion_prior),) if motion_prior != "none" else ())
    if format == "torchscript":
        return _export_torchscript(network, inputs, info, Path(output))
    return _export_onnx(network, inputs, info, Path(output))


def _export_torchscript(network: nn.Module, inputs: tuple, info: ExportInfo, output: Path) -> Path:
    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns that the padding's Python ints become constants: the documented fixed
            # size. Recent torch also marks torch.jit as deprecated (FutureWarning; docs/inference.md).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(network, inputs, check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={INFO_NAME: info.to_json()})

    return write_file_atomic(output, write)


def _jit_load(path: Path, extra_files: dict | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice (see _export_torchscript)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files or {})


def _onnx_modules():
    """(onnx, onnxruntime), or ImportError naming the optional extra."""
    try:
        import onnx  # optional extra: imported only for ONNX exports
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"ONNX export needs the optional extra: pip install 'ifrvp[export]' "
                          f"(onnx, onnxscript, onnxruntime); {error}") from None
    return onnx, onnxruntime


def _export_onnx(network: nn.Module, inputs: tuple, info: ExportInfo, output: Path) -> Path:
    onnx, _ = _onnx_modules()

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (fixed shapes are the documented contract)
            program = torch.onnx.export(network, inputs, input_names=info.input_names, output_names=["prediction"],
                                        opset_version=ONNX_OPSET, dynamo=True, verbose=False)
        proto = program.model_proto
        entry = proto.metadata_props.add()
        entry.key, entry.value = INFO_NAME, info.to_json()
        onnx.save(proto, str(tmp))

    return write_file_atomic(output, write)


def read_export_info(path) -> ExportInfo:
    """The `ExportInfo` stored in an exported file; ValueError naming the file when it has none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    if path.suffix.lower() == ".onnx":
        onnx, _ = _onnx_modules()
        props = {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}
        if INFO_NAME not in props:
            raise ValueError(f"{path} is an ONNX file without {INFO_NAME}: not written by ifrvp export")
        return ExportInfo.from_json(props[INFO_NAME], path)
    extra = {INFO_NAME: ""}
    try:
        _jit_load(path, extra)
    except RuntimeError as error:
        raise ValueError(f"{path} is not a TorchScript file ({str(error).splitlines()[0]})") from None
    if not extra[INFO_NAME]:
        raise ValueError(f"{path} is a TorchScript file without {INFO_NAME}: not written by ifrvp export")
    return ExportInfo.from_json(extra[INFO_NAME], path)


class ExportedPredictor:
    """An exported file as a predictor: computes the motion prior (when the model has one, with its method), then runs the file.

    `predictor(frames (B, K, 3, H, W), t float | (B,)) -> (B, 3, H, W)` float32 in [0, 1], on
    the CPU. H x W must be the export's; any B (run in chunks of the export batch). `predict(frames,
    t, scale_factor)` makes it usable where a model is (`rollout.ModelStep`), at the export's
    scale factor only.
    """

    def __init__(self, path, providers=None):
        self.path = Path(path)
        self.info = read_export_info(self.path)
        self.context_frames = self.info.context_frames
        self.model_name = f"{self.info.model_name} ({self.info.format})"
        if self.info.format == "onnx":
            _, onnxruntime = _onnx_modules()
            self._session = onnxruntime.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])
            self._run = self._run_onnx
        else:
            self._module = _jit_load(self.path)
            self._run = self._run_torchscript

    def _run_torchscript(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return self._module(*inputs)

    def _run_onnx(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        feeds = {name: tensor.numpy() for name, tensor in zip(self.info.input_names, inputs)}
        return torch.from_numpy(self._session.run(["prediction"], feeds)[0])

    def _check(self, frames: torch.Tensor) -> None:
        info = self.info
        if frames.dim() != 5 or tuple(frames.shape[1:3]) != (info.context_frames, 3):
            raise ValueError(f"frames must be (B, {info.context_frames}, 3, H, W) for {self.path}, got {tuple(frames.shape)}")
        if tuple(frames.shape[-2:]) != (info.height, info.width):
            raise ValueError(f"{self.path} was exported for {info.height}x{info.width} frames, got "
                             f"{frames.shape[-2]}x{frames.shape[-1]}: export again with --height {frames.shape[-2]} "
                             f"--width {frames.shape[-1]}")

    def __call__(self, frames: torch.Tensor, t=2.0) -> torch.Tensor:
        """(B, K, 3, H, W) in [0, 1], t float or (B,) -> (B, 3, H, W) float32 prediction (CPU)."""
        self._check(frames)
        frames = frames.detach().float().cpu().contiguous()
        b = frames.shape[0]
        times = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(b).contiguous()
        prior = constant_velocity_prior(frames, times, self.info.motion_prior) if self.info.motion_prior != "none" else None
        chunk, outputs = self.info.batch, []
        for start in range(0, b, chunk):
            stop = min(start + chunk, b)
            pieces = [frames[start:stop], times[start:stop]] + ([prior[start:stop]] if prior is not None else [])
            if stop - start < chunk:  # pad the last chunk to the baked-in batch, drop the padding after
                pieces = [torch.cat([p, p[-1:].expand(chunk - (stop - start), *p.shape[1:])]) for p in pieces]
            outputs.append(self._run(pieces)[: stop - start])
        return torch.cat(outputs).float()

    def predict(self, frames: torch.Tensor, t=2.0, scale_factor: float = 1.0) -> torch.Tensor:
        """`__call__`, for code that calls `model.predict`; `scale_factor` must be the export's."""
        if float(scale_factor) != self.info.scale_factor:
            raise ValueError(f"{self.path} was exported with scale_factor {self.info.scale_factor}, got {scale_factor}")
        return self(frames, t).to(frames.device)

    def __repr__(self) -> str:
        info = self.info
        return f"ExportedPredictor({self.path.name}: {info.model_name}, {info.format}, {info.height}x{info.width}, K={info.context_frames})"


def verify_export(model: nn.Module, path, seed: int = 0) -> float:
    """Max |exported - PyTorch| of the predictions on random frames of the export's size (CPU, float32).

    `model` is the exported model; both get the same motion prior. Exports match to ~1e-5.
    """
    predictor = load_exported(path)
    info = predictor.info
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand(info.batch, info.context_frames, 3, info.height, info.width, generator=generator)
    expected = model.cpu().eval().predict(frames, 2.0, scale_factor=info.scale_factor)
    return float((predictor(frames, 2.0) - expected).abs().max())


def load_exported(path, providers=None) -> ExportedPredictor:
    """An exported file (TorchScript or ONNX, by its suffix) as an `ExportedPredictor`.

    `providers`: onnxruntime execution providers (default: CPU). ValueError naming the file
    when it was not written by `export_model`.
    """
    return ExportedPredictor(path, providers)
