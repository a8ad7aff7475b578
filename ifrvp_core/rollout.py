"""Step functions, the recursive rollout, and the baselines every table includes.

A *step function* maps context frames (B, K, 3, H, W) in [0, 1], oldest first, to the next frame
(B, 3, H, W). Models (`model_step_fn`) and the baselines (`copy_last`, `dis_extrapolation`) are
step functions; `rollout` applies one recursively, each prediction becoming the newest context
frame, which is how video prediction papers (DMVFN, section 4) produce t+2 ... t+5 (`iter_rollout`
yields the same predictions one at a time, for long rollouts at full resolution). A step function
may also have a ``flows(context) -> (B, 2K, H, W)`` method (flows from the predicted frame to each
of its K context frames, pixels) and a ``context_frames`` attribute (how many of the newest frames
it uses); with ground-truth flow (the synthetic set) `ifrvp_core.evaluate.evaluate` then reports
the t+1 flow EPE. A step function with a DIS motion prior also has ``prior_spec`` (K, t): its first
step's prior is `constant_velocity_prior(context[:, -K:], t, "dis")`, which it accepts precomputed as
``prior_flow`` (`FirstStepPriors` computes it one batch ahead on a background thread; see
`iter_rollout`'s `first_prior`).

The method keys of the results contract are ``model``, ``copy_last``, ``dis_extrapolation`` and
``prior_only`` (the untrained twin of a motion-prior model: what training adds is model minus
prior_only) (`standard_methods`).

    >>> predictions = rollout(model_step_fn(model), context, steps=5)   # (B, 5, 3, H, W)
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Mapping

import cv2
import torch

from ifrvp_core.motion_prior import FLOW_METHODS, constant_velocity_prior, dis_flow_batch, prior_prediction
from ifrvp_core.precision import autocast_for, check_precision
from ifrvp_core.warp import backward_warp

__all__ = [
    "BASELINE_KEYS",
    "DISExtrapolation",
    "FirstStepPriors",
    "METHOD_KEYS",
    "MODEL_KEY",
    "ModelStep",
    "PriorOnly",
    "StepFn",
    "copy_last",
    "dis_extrapolation",
    "iter_rollout",
    "model_step_fn",
    "next_context",
    "resolve_device",
    "rollout",
    "standard_methods",
]

StepFn = Callable[[torch.Tensor], torch.Tensor]

# The results contract (README "Evaluation and prediction"): these method keys, whoever writes
# results.json (`ifrvp evaluate`, notebook 05). The ablations (ablations.json) keep the baseline
# keys and name each trained variant instead of "model".
MODEL_KEY = "model"
BASELINE_KEYS = ("copy_last", "dis_extrapolation", "prior_only")
METHOD_KEYS = (MODEL_KEY,) + BASELINE_KEYS


def resolve_device(device=None) -> torch.device:
    """`device` as a torch.device; None picks CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)



def _check_context(context: torch.Tensor, needed: int = 1, who: str = "context") -> None:
    if not isinstance(context, torch.Tensor) or context.dim() != 5 or context.shape[2] != 3:
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"{who} must be (B, K, 3, H, W), got {shape}")
    if context.shape[1] < needed:
        raise ValueError(f"{who} has {context.shape[1]} frames but {needed} are needed")


def _newest_frames(context: torch.Tensor, count: int, who: str) -> torch.Tensor:
    """The newest `count` frames of a checked (B, K>=count, 3, H, W) context."""
    _check_context(context, count, who=who)
    return context[:, -count:]


def _window_prior(prior_flow: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """A prior computed ahead, checked against the (B, K, 3, H, W) window it is for: (B, 2K, H, W) on its device."""
    b, k, _, h, w = window.shape
    if tuple(prior_flow.shape) != (b, 2 * k, h, w):
        raise ValueError(f"prior_flow must be (B, 2K, H, W) = {(b, 2 * k, h, w)} for this window, got {tuple(prior_flow.shape)}")
    return prior_flow.to(window.device)


def iter_rollout(step_fn: StepFn, context: torch.Tensor, steps: int, first_prior: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Predict `steps` frames recursively, yielding them one at a time.

    Args:
        step_fn: (B, K, 3, H, W) -> (B, 3, H, W), the frame after the newest context frame.
        context: (B, K, 3, H, W) context frames, oldest first.
        steps: number of future frames.
        first_prior: the first step's motion prior (B, 2K_fn, H, W), that of the step function's
            ``prior_spec``, passed to it as ``prior_flow``; None: the step computes its own. Only the
            first step's can come from outside: later contexts end with predictions.

    Returns:
        An iterator of `steps` predictions (B, 3, H, W): prediction k is made from the window
        that ends with predictions 1..k-1 (the oldest frames dropped), so errors compound as in
        deployment. Streaming: long rollouts at full resolution never hold all predictions at once.
        Bad arguments raise ValueError here, before the first prediction.
    """
    _check_context(context)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if first_prior is not None and getattr(step_fn, "prior_spec", None) is None:
        raise ValueError(f"first_prior given, but the step function {step_fn!r} takes no motion prior (no prior_spec)")
    return _recursive_predictions(step_fn, context, steps, first_prior)


def next_context(context: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """The context of the next recursive step: (B, K, 3, H, W) shifted by one, `frame` (B, 3, H, W) as its newest."""
    return torch.cat([context[:, 1:], frame.unsqueeze(1).to(context.dtype)], dim=1)


def _recursive_predictions(step_fn: StepFn, context: torch.Tensor, steps: int,
                           first_prior: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    window = context
    with torch.inference_mode():
        for step in range(steps):
            # the first window is the data, so its prior may be computed ahead; later ones end with predictions
            frame = step_fn(window, prior_flow=first_prior) if step == 0 and first_prior is not None else step_fn(window)
            if frame.shape != window[:, -1].shape:
                raise ValueError(
                    f"step function returned {tuple(frame.shape)}, expected {tuple(window[:, -1].shape)}"
                )
            yield frame
            window = next_context(window, frame)


def rollout(step_fn: StepFn, context: torch.Tensor, steps: int, first_prior: torch.Tensor | None = None) -> torch.Tensor:
    """Predict `steps` frames recursively (`iter_rollout`), all at once.

    Args:
        step_fn: (B, K, 3, H, W) -> (B, 3, H, W), the frame after the newest context frame.
        context: (B, K, 3, H, W) context frames, oldest first.
        steps: number of future frames.
        first_prior: optional (B, 2K_fn, H, W) motion prior of the first step (`iter_rollout`).

    Returns:
        (B, steps, 3, H, W): prediction k is made from the window that ends with predictions
        1..k-1 (the oldest frames dropped), so errors compound as in deployment.
    """
    return torch.stack(list(iter_rollout(step_fn, context, steps, first_prior)), dim=1)


class ModelStep:
    """An IFRNet-family model as a step function (extrapolation, t = 2).

    With the time convention of docs/architecture.md the newest context frame sits at t = 1, so
    the next frame is t = 2. The model uses the newest `model.context_frames` frames of the window.
    `precision` ("fp32", "bf16", "fp16") runs the model under autocast (`ifrvp_core.precision`);
    predictions and flows come back as float32 whatever the precision.
    """

    def __init__(self, model: torch.nn.Module, scale_factor: float = 1.0, target_time: float = 2.0,
                 precision: str = "fp32"):
        self.model = model
        self.scale_factor = float(scale_factor)
        self.target_time = float(target_time)
        self.precision = check_precision(precision)
        self.context_frames = int(getattr(model, "context_frames", 2))

    def _window(self, context: torch.Tensor) -> torch.Tensor:
        return _newest_frames(context, self.context_frames, f"context for {getattr(self.model, 'model_name', 'model')}")

    @property
    def prior_spec(self) -> tuple[int, float] | None:
        """(K, t) of the model's DIS prior, `constant_velocity_prior(context[:, -K:], t, "dis")`; None without one
        (and for "lucas_kanade", which the model computes in its forward pass, on its device)."""
        return None if getattr(self.model, "motion_prior", "none") != "dis" else (self.context_frames, self.target_time)

    def to(self, device) -> "ModelStep":
        self.model.to(device)
        return self

    def __call__(self, context: torch.Tensor, prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K>=model K, 3, H, W) -> (B, 3, H, W) predicted next frame (float32).

        `prior_flow`: the motion prior of `prior_spec` (B, 2K_model, H, W), computed ahead; None: computed here.
        """
        window = self._window(context)
        options = {} if prior_flow is None else {"prior_flow": self._checked_prior(prior_flow, window)}
        with autocast_for(self.precision, window.device):
            prediction = self.model.predict(window, t=self.target_time, scale_factor=self.scale_factor, **options)
        return prediction.float()

    def _checked_prior(self, prior_flow: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        if self.prior_spec is None:
            raise ValueError(f"{self!r} has no motion prior, but a prior_flow was given")
        return _window_prior(prior_flow, window)

    @torch.inference_mode()
    def flows(self, context: torch.Tensor, prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, 3, H, W) -> (B, 2K_model, H, W) float32 flows from the predicted frame to each context frame.

        `prior_flow`: as in `__call__`.
        """
        window = self._window(context)
        options = {}
        if prior_flow is not None:
            options["prior_flow"] = self._checked_prior(prior_flow, window)
        elif self.prior_spec is not None:  # DIS outside autocast and any compiled forward (lucas_kanade: in it, on the device)
            options["prior_flow"] = constant_velocity_prior(window, self.target_time, "dis")
        with autocast_for(self.precision, window.device):
            output = self.model(window, self.target_time, scale_factor=self.scale_factor, **options)
        return output["flows"][0].float()

    def __repr__(self) -> str:
        precision = f", precision={self.precision!r}" if self.precision != "fp32" else ""
        return (f"ModelStep({getattr(self.model, 'model_name', type(self.model).__name__)}, "
                f"scale_factor={self.scale_factor}{precision})")


def model_step_fn(model: torch.nn.Module, scale_factor: float = 1.0, precision: str = "fp32") -> ModelStep:
    """Wrap a model with `predict(frames, t, scale_factor)` as a step function predicting t = 2 (`ModelStep`)."""
    return ModelStep(model, scale_factor, precision=precision)


def copy_last(context: torch.Tensor) -> torch.Tensor:
    """Baseline: the newest context frame. (B, K, 3, H, W) -> (B, 3, H, W)."""
    _check_context(context)
    return context[:, -1]


copy_last.context_frames = 1


class DISExtrapolation:
    """Baseline: constant-velocity extrapolation with OpenCV DIS optical flow.

    The forward flow F (newest-1 -> newest, defined at pixels of frame newest-1) is computed with
    ``cv2.DISOpticalFlow_create(PRESET_MEDIUM)`` on gray uint8 frames and assumed constant. The
    next frame is ``newest(p - F(p))``, i.e. `backward_warp(newest, -F)` ("forward flow,
    backward-warped"): the exact constant-motion prediction samples ``-F`` at the *target* pixel,
    here approximated by F at the same pixel position, which is exact for uniform motion and
    blurs motion boundaries by one frame of displacement. Occlusions are not handled.
    """

    context_frames = 2

    def __init__(self, preset: int | None = None):
        self.preset = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset

    def forward_flow(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K>=2, 3, H, W) -> (B, 2, H, W) DIS flow from frame newest-1 to newest (pixels)."""
        _check_context(context, 2, who="context for DIS extrapolation")
        return dis_flow_batch(context[:, -2], context[:, -1], self.preset).to(device=context.device, dtype=torch.float32)

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K>=2, 3, H, W) -> (B, 3, H, W) newest frame warped one more step along the flow."""
        newest = context[:, -1]
        forward = self.forward_flow(context)
        return backward_warp(newest.float(), -forward).to(newest.dtype)

    def flows(self, context: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) -> (B, 2K, H, W) constant-velocity flows from the target to each frame.

        Context frame k (0 = oldest) is K - k frames before the target, so its flow is -(K - k) F.
        """
        k = context.shape[1]
        forward = self.forward_flow(context)
        return torch.cat([-(k - index) * forward for index in range(k)], dim=1)

    def __repr__(self) -> str:
        return f"DISExtrapolation(preset={self.preset})"


dis_extrapolation = DISExtrapolation()


class PriorOnly:
    """Baseline: the untrained twin of a motion-prior model, i.e. what training starts from.

    A motion-prior model's flow, mask and residual outputs start at zero, so before training it
    warps every context frame along the constant-velocity prior (`method`: the model's
    `motion_prior`, "dis" or "lucas_kanade") and blends the warps with
    fixed weights (0.88 on the newest frame for K = 2). `motion_prior.prior_prediction` computes
    exactly that without the network. The model minus `prior_only` is what training added; a model
    within noise of it has learned nothing, whatever it scores against the other baselines.
    """

    def __init__(self, context_frames: int = 2, target_time: float = 2.0, method: str = "dis"):
        if method not in FLOW_METHODS:
            raise ValueError(f"prior_only method must be one of {FLOW_METHODS}, got {method!r}")
        self.context_frames = int(context_frames)
        self.target_time = float(target_time)
        self.method = method

    @property
    def prior_spec(self) -> tuple[int, float] | None:
        """(K, t): its DIS prior is `constant_velocity_prior(context[:, -K:], t, "dis")`; None for another method."""
        return (self.context_frames, self.target_time) if self.method == "dis" else None

    def _window(self, context: torch.Tensor) -> torch.Tensor:
        return _newest_frames(context, self.context_frames, "context for the prior_only baseline")

    def _prior(self, window: torch.Tensor, prior_flow: torch.Tensor | None) -> torch.Tensor:
        """The float32 prior of a float32 `window`: `prior_flow` (computed ahead on the same frames) or computed now."""
        if prior_flow is None or prior_flow.dtype != torch.float32:  # one of another dtype came from other frames' dtype
            return constant_velocity_prior(window, self.target_time, self.method)
        return _window_prior(prior_flow, window)

    def __call__(self, context: torch.Tensor, prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K>=context_frames, 3, H, W) -> (B, 3, H, W) the untrained prior model's next frame.

        `prior_flow`: optional (B, 2K, H, W) prior of `prior_spec`, computed ahead.
        """
        window = self._window(context).float()
        return prior_prediction(window, self.target_time, self._prior(window, prior_flow)).to(context.dtype)

    def flows(self, context: torch.Tensor, prior_flow: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, 3, H, W) -> (B, 2K, H, W) the constant-velocity prior from the target to each frame."""
        window = self._window(context).float()
        return self._prior(window, prior_flow)

    def __repr__(self) -> str:
        method = f", method={self.method!r}" if self.method != "dis" else ""
        return f"PriorOnly(context_frames={self.context_frames}{method})"


class FirstStepPriors:
    """The first rollout step's motion priors of every batch, computed one batch ahead on a background thread.

    `iterate(batches)` yields each batch with ``{prior_spec: (B, 2K, H, W) float prior}`` (on the CPU,
    from the batch's CPU `context`), one per distinct ``prior_spec`` (K, t) of `methods` (a
    motion-prior model and its prior_only twin share one): while the caller runs the models on batch
    i, a thread runs DIS for batch i + 1 (OpenCV releases the GIL). Only the first step of a window
    can be computed ahead, its context being the data; every later rollout step's context ends with
    the model's own predictions, so its prior is computed in the step, after them. The priors are
    `constant_velocity_prior` of the same frames, so the results are those without it, bit for bit.
    """

    def __init__(self, methods: Mapping[str, StepFn]):
        self.specs = list(dict.fromkeys(spec for fn in methods.values() if (spec := getattr(fn, "prior_spec", None)) is not None))

    def compute(self, context: torch.Tensor) -> dict:
        """{(K, t): constant_velocity_prior(context[:, -K:], t, "dis")} for (B, K_max, 3, H, W) `context`."""
        return {(k, t): constant_velocity_prior(_newest_frames(context, k, "context for the motion prior"), t, "dis")
                for k, t in self.specs}

    def iterate(self, batches: Iterable[dict]) -> Iterator[tuple[dict, dict]]:
        """(batch, priors) for every batch (a dict with `context`); the priors of the next batch are under way meanwhile."""
        if not self.specs:  # nothing to compute: no thread
            for batch in batches:
                yield batch, {}
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="first-step-prior") as pool:
            iterator = iter(batches)
            batch = next(iterator, None)
            pending: Future | None = None if batch is None else pool.submit(self.compute, batch["context"])
            while batch is not None:
                following = next(iterator, None)  # loading it overlaps this batch's DIS
                ahead = None if following is None else pool.submit(self.compute, following["context"])
                yield batch, pending.result()
                batch, pending = following, ahead


def standard_methods(model: torch.nn.Module | None = None, baselines: bool = True, scale_factor: float = 1.0,
                     context_frames: int | None = None, precision: str = "fp32", motion_prior: str | None = None) -> dict:
    """The methods of the results contract: ``{"model", "copy_last", "dis_extrapolation", "prior_only"}``.

    Args:
        model: a model with ``predict`` (None: baselines only).
        baselines: add copy_last, dis_extrapolation and prior_only.
        scale_factor: the model's internal scale factor.
        context_frames: K of the prior_only twin (default: the model's, else 2).
        precision: the model's precision, "fp32", "bf16" or "fp16" (`ModelStep`; baselines run float32).
        motion_prior: the prior_only twin's flow method (default: the model's `motion_prior` when
            it has one, else "dis").
    """
    methods = {}
    if model is not None:
        methods[MODEL_KEY] = model_step_fn(model, scale_factor, precision=precision)
    if baselines:
        k = context_frames or int(getattr(model, "context_frames", 2))
        if motion_prior is None:  # the twin of the model: the same prior method
            motion_prior = getattr(model, "motion_prior", "none")
            motion_prior = motion_prior if motion_prior in FLOW_METHODS else "dis"
        methods.update(copy_last=copy_last, dis_extrapolation=DISExtrapolation(),
                       prior_only=PriorOnly(k, method=motion_prior))
    if not methods:
        raise ValueError("nothing to evaluate: pass a model, or baselines=True")
    return methods
