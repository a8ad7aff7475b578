"""IFRVP: IFRNet for video prediction.

The public names are imported lazily so that `import ifrvp_core` stays cheap and one broken
optional part cannot stop the rest from importing.
"""
from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "build_model": "ifrvp_core.models",
    "list_models": "ifrvp_core.models",
    "load_checkpoint": "ifrvp_core.checkpoint",
    "load_model": "ifrvp_core.checkpoint",
    "save_atomic": "ifrvp_core.checkpoint",
    "CheckpointError": "ifrvp_core.checkpoint",
    "backward_warp": "ifrvp_core.warp",
    "LossConfig": "ifrvp_core.losses",
    "PredictionLoss": "ifrvp_core.losses",
    "build_dataset": "ifrvp_core.data",
    "list_datasets": "ifrvp_core.data",
    "launch_training": "ifrvp_core.train.launch",
    "TrainConfig": "ifrvp_core.train",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ifrvp_core' has no attribute {name!r}")
