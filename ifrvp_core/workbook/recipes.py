"""Which recipe a workbook run trains and which data it scores: profile < config file < parameters.

Training (notebook 03) takes its values in this order, each over the one before:

1. the profile's defaults (`PROFILES`: model, schedule, batch, crop, ..., and its `train_options`: other
   `TrainConfig` fields of its recipe, such as the quick profile's `prior_shift_input`);
2. the `config` file (`configs/*.yaml` or JSON, read like `ifrvp train --config`); the `full`
   profile uses `configs/<dataset>.yaml` by default when that file exists (cityscapes, gopro,
   kitti, ucf101), so it trains the published recipe of the data it is given;
3. the parameters given explicitly (`-p batch_size=4`, or a notebook's parameters cell).

Evaluation (notebook 05) scores `eval_dataset` at `eval_data_root` with `protocol`; each
defaults to the training one: the data the model was trained on, and the protocol its recipe
names (ucf101's recipe names davis17, whose data has to be given as `eval_data_root`).
"""
from __future__ import annotations

from pathlib import Path

from ifrvp_core.data import list_datasets
from ifrvp_core.protocols import Protocol, get_protocol, list_protocols
from ifrvp_core.train.config import TrainConfig, read_config_file
from ifrvp_core.workbook.profiles import REPO, dataset_info, read_json

CONFIGS_DIR = REPO / "configs"
# The profile's values that notebook 03 trains with unless the config file or a parameter sets them.
TRAINING_KEYS = ("model_name", "max_steps", "epochs", "batch_size", "crop_size", "lr_start", "lr_end", "num_workers",
                 "val_samples", "log_interval")
DEFAULT_RUN_NAME = "workbook"


def config_path(config) -> Path:
    """The `config` parameter as a file: as given (relative to the current folder), else relative to the repository.

    The repository fallback lets `config=configs/cityscapes.yaml` work from the notebooks/ folder too.
    """
    path = Path(config).expanduser()
    if not path.is_absolute() and not path.is_file() and (REPO / path).is_file():
        path = REPO / path
    if not path.is_file():
        shipped = ", ".join(f"configs/{p.name}" for p in sorted(CONFIGS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"config parameter: file not found: {config} (the shipped recipes: {shipped})")
    return path.resolve()


def read_recipe(config) -> dict:
    """The keys of a training config file (YAML or JSON), checked against `TrainConfig`'s fields."""
    path = config_path(config)
    values = read_config_file(path)
    if not isinstance(values, dict):
        raise ValueError(f"config parameter: {path} holds no key: value mapping")
    unknown = TrainConfig.unknown_keys(values)
    if unknown:
        raise ValueError(f"config parameter: {path} has keys that are no TrainConfig field: {unknown}")
    return values


def dataset_config(dataset: str) -> Path | None:
    """`configs/<dataset>.yaml`, the dataset's prediction recipe, when it ships (None otherwise)."""
    path = CONFIGS_DIR / f"{dataset}.yaml"
    return path if path.is_file() else None


def recipe_dataset(config) -> str | None:
    """The dataset a config file trains on (None without a config, or when it names none)."""
    return read_recipe(config).get("dataset") if config else None


def training_recipe(settings: dict, dataset: str, config=None) -> tuple[Path | None, dict]:
    """(config file, its values) for a run on `dataset`: the `config` parameter, else the profile's default."""
    if config is None and settings.get("use_dataset_config"):
        config = dataset_config(dataset)
    if config is None:
        return None, {}
    return config_path(config), read_recipe(config)


def training_values(settings: dict, work_dir, config=None, dataset=None, data_root=None, **explicit) -> tuple[dict, Path | None]:
    """The TrainConfig values notebook 03 trains with, and the config file they came from (or None).

    Order: the profile's `settings` < the config file < `explicit` (None values are not given). The
    data is `dataset` / `data_root`, else the config's dataset, else what notebook 01 prepared
    (`work_dir/dataset.json`); the run always goes under `work_dir/runs`.
    """
    given = Path(config) if config is not None else None
    recipe = read_recipe(given) if given is not None else {}
    info = dataset_info(work_dir, dataset or recipe.get("dataset"), data_root or recipe.get("data_root"))
    path, recipe = training_recipe(settings, info["dataset"], given)
    values = {key: settings[key] for key in TRAINING_KEYS}
    values.update(settings.get("train_options") or {})  # the profile's recipe flags (quick: the exact-flow recipe)
    values["run_name"] = DEFAULT_RUN_NAME
    values.update(recipe)
    values.update({key: value for key, value in explicit.items() if value is not None})
    values.update(dataset=info["dataset"], data_root=info["data_root"], log_path=str(Path(work_dir) / "runs"))
    unknown = TrainConfig.unknown_keys(values)
    if unknown:
        raise ValueError(f"unknown training parameter(s) {unknown}; see ifrvp_core.train.TrainConfig")
    return values, path


# ----------------------------------------------------------------------------- evaluation
def evaluation_protocol(protocol=None, eval_dataset=None, trained_protocol=None, train_dataset=None) -> Protocol:
    """The protocol notebook 05 scores with: `protocol`, else `eval_dataset`'s, else the recipe's, else the training data's.

    A protocol on another dataset than its own becomes "X on Y" (as `ifrvp evaluate --protocol X --dataset Y`).
    """
    if eval_dataset is not None and eval_dataset not in list_datasets():
        raise ValueError(f"eval_dataset parameter: unknown dataset {eval_dataset!r}; choose from {', '.join(list_datasets())}")
    name = protocol or eval_dataset or trained_protocol or train_dataset
    if name is None:
        raise ValueError("protocol parameter: no protocol given and no training data to take it from")
    try:
        chosen = get_protocol(name)
    except ValueError:
        which = "protocol parameter" if protocol else f"the data {name!r} has no protocol of its own; give the protocol parameter"
        raise ValueError(f"{which}: unknown protocol {name!r}; choose from {', '.join(list_protocols())}") from None
    return chosen.for_dataset(eval_dataset) if eval_dataset else chosen


def missing_eval_root(protocol: Protocol, train_dataset: str) -> str:
    """Why notebook 05 needs `eval_data_root`: its protocol scores other data than the training data."""
    return (f"the eval_data_root parameter is needed: the {protocol.name} protocol scores {protocol.dataset} data, "
            f"but the training data is {train_dataset}")


def trained_protocol(work_dir) -> str | None:
    """The protocol notebook 03's recipe names (`training.json`), if that file is there."""
    path = Path(work_dir) / "training.json"
    return read_json(path, "training.json").get("summary", {}).get("protocol") if path.is_file() else None


def evaluation_data(work_dir, protocol=None, eval_dataset=None, eval_data_root=None, dataset=None, data_root=None) -> dict:
    """What notebook 05 scores: {"protocol": Protocol, "dataset", "data_root"}.

    `eval_dataset` / `eval_data_root` default to the training data (`dataset` / `data_root`, else
    notebook 01's `dataset.json`); `protocol` to `evaluation_protocol`'s choice.
    """
    train = None
    if eval_data_root is None or not (protocol or eval_dataset):
        train = dataset_info(work_dir, dataset, data_root)
    chosen = evaluation_protocol(protocol, eval_dataset, trained_protocol(work_dir), train and train["dataset"])
    if eval_data_root is None:
        if chosen.dataset != train["dataset"]:
            raise ValueError(f"{missing_eval_root(chosen, train['dataset'])}; give its folder: eval_data_root=/path/to/{chosen.dataset}")
        eval_data_root = train["data_root"]
    return {"protocol": chosen, "dataset": chosen.dataset, "data_root": str(eval_data_root)}


__all__ = [
    "CONFIGS_DIR", "DEFAULT_RUN_NAME", "TRAINING_KEYS", "config_path", "dataset_config", "evaluation_data",
    "evaluation_protocol", "missing_eval_root", "read_recipe", "recipe_dataset", "trained_protocol", "training_recipe",
    "training_values",
]
