"""The workbook meets the configs: make ARGS reach the runner, the runner checks parameters before any
notebook runs, training takes profile < config file < parameters, evaluation data can differ from training data.

Nothing here executes a notebook: the runner's notebook step is replaced by a recorder.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ifrvp_core.train.config import TrainConfig
from ifrvp_core.workbook import recipes, runner
from ifrvp_core.workbook.profiles import profile_settings, write_json

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent


def parameter_cell(name: str) -> dict:
    """{name: default} of a notebook's cell tagged `parameters`, read from the .ipynb JSON."""
    notebook = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


@pytest.fixture
def recorded(monkeypatch):
    """The parameters each notebook would run with; no kernel, no notebook executed."""
    calls = {}

    def record(path, run, parameters, reports_dir, kernel_name=None, timeout_s=None):
        calls[path.stem] = parameters
        return run

    monkeypatch.setattr(runner, "run_notebook", record)
    monkeypatch.setattr(runner, "check_kernel", lambda name: None)
    return calls


# ----------------------------------------------------------------------------- make ARGS
@pytest.mark.parametrize("target, only", [("workbook", ""), ("ablations", " --only 06")])
def test_make_passes_args_to_the_runner(target, only):
    args = "-p dataset=cityscapes -p data_root=/data/cityscapes"
    dry = subprocess.run(["make", "-n", target, "PROFILE=full", f"ARGS={args}", f"VENV={VENV}"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert f"{VENV}/bin/python -m ifrvp_core.workbook --profile full{only} {args}" in dry


def test_make_without_args_runs_the_runner_as_before():
    dry = subprocess.run(["make", "-n", "workbook", f"VENV={VENV}"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"{VENV}/bin/python -m ifrvp_core.workbook --profile quick" in [line.rstrip() for line in dry.splitlines()]


# ----------------------------------------------------------------------------- the runner's checks
def test_full_profile_without_data_root_stops_before_any_notebook(recorded, tmp_path, capsys):
    code = runner.main(["--profile", "full", "--work_dir", str(tmp_path / "work"), "--reports", str(tmp_path / "reports")])
    error = capsys.readouterr().err
    assert code == 1 and recorded == {}
    assert "needs the data_root parameter" in error and "dataset 'vimeo90k'" in error
    assert 'make workbook PROFILE=full ARGS="-p data_root=/path/to/vimeo90k"' in error
    assert "python -m ifrvp_core.workbook --profile full -p data_root=/path/to/vimeo90k" in error
    assert not (tmp_path / "reports").exists() and not (tmp_path / "work").exists()  # nothing was started


def test_missing_data_root_names_the_dataset_and_repeats_the_other_parameters(tmp_path):
    notebooks = runner.select_notebooks(runner.NOTEBOOKS_DIR)
    with pytest.raises(runner.WorkbookError) as caught:
        runner.check_parameters("full", {"dataset": "cityscapes", "nproc": 8}, notebooks, tmp_path, echo=False)
    assert 'ARGS="-p dataset=cityscapes -p nproc=8 -p data_root=/path/to/cityscapes"' in str(caught.value)
    with pytest.raises(runner.WorkbookError, match="data_root parameter: folder not found"):
        runner.check_parameters("full", {"dataset": "cityscapes", "data_root": str(tmp_path / "nope")}, notebooks, tmp_path)
    # the synthetic set is generated, a video decoded: neither needs data_root; nor do runs without notebook 01
    runner.check_parameters("full", {"dataset": "synthetic"}, notebooks, tmp_path)
    runner.check_parameters("full", {"video": str(tmp_path / "clip.mp4")}, notebooks, tmp_path)
    runner.check_parameters("full", {}, runner.select_notebooks(runner.NOTEBOOKS_DIR, ["04", "05"]), tmp_path)


def test_args_reach_the_notebooks_that_declare_them(recorded, tmp_path, monkeypatch):
    (tmp_path / "cityscapes").mkdir()
    monkeypatch.chdir(tmp_path)  # relative paths are the caller's, not notebooks/'s
    code = runner.main(["--profile", "full", "--work_dir", str(tmp_path / "work"), "--reports", str(tmp_path / "reports"),
                        "-p", "dataset=cityscapes", "-p", "data_root=cityscapes", "-p", "batch_size=4", "-p", "nproc=8"])
    assert code == 0 and list(recorded) == ["01_data_preparation", "02_architecture_exploration", "03_training_ddp",
                                            "04_flow_warp_visualisation", "05_evaluation"]
    root = str(tmp_path / "cityscapes")
    training = recorded["03_training_ddp"]
    assert (training["dataset"], training["data_root"], training["batch_size"], training["nproc"]) == ("cityscapes", root, 4, 8)
    assert training["profile"] == "full" and training["work_dir"] == str(tmp_path / "work")
    assert recorded["01_data_preparation"]["data_root"] == root and "batch_size" not in recorded["01_data_preparation"]
    assert recorded["05_evaluation"]["dataset"] == "cityscapes" and "nproc" not in recorded["05_evaluation"]


def test_config_parameter_is_found_from_the_repository_and_names_the_dataset(recorded, tmp_path, monkeypatch):
    (tmp_path / "kitti").mkdir()
    monkeypatch.chdir(tmp_path)  # configs/ is not here: the repository's copy is meant
    code = runner.main(["--profile", "full", "--work_dir", str(tmp_path / "work"), "--reports", str(tmp_path / "reports"),
                        "--only", "01", "03", "-p", "config=configs/kitti.yaml", "-p", f"data_root={tmp_path / 'kitti'}"])
    assert code == 0
    for name in ("01_data_preparation", "03_training_ddp"):
        assert recorded[name]["config"] == str(REPO / "configs" / "kitti.yaml"), name


@pytest.mark.parametrize("parameters, message", [
    ({"dataset_root": "/data"}, "unknown parameter(s) ['dataset_root']: no notebook's parameters cell has them; valid: "),
    ({"profile": "full"}, "profile is set with --profile"),
    ({"work_dir": "/tmp/w"}, "work_dir is set with --work_dir"),
    ({"dataset": "cityscape", "data_root": "/"}, "dataset parameter: unknown dataset 'cityscape'; choose from synthetic, vimeo90k"),
    ({"config": "configs/nope.yaml"}, "config parameter: file not found: configs/nope.yaml (the shipped recipes: configs/cityscapes.yaml"),
    ({"dataset": "cityscapes", "data_root": "/", "protocol": "davis"}, "unknown protocol 'davis'; choose from cityscapes"),
])
def test_bad_parameters_are_named_before_any_notebook_runs(recorded, tmp_path, parameters, message):
    with pytest.raises(runner.WorkbookError) as caught:
        runner.run_workbook("full", reports_dir=tmp_path / "reports", work_dir=tmp_path / "work", parameters=parameters, echo=False)
    assert message in str(caught.value) and recorded == {}


def test_a_parameter_of_a_notebook_not_in_the_run_is_noted_not_refused(recorded, tmp_path, capsys):
    runner.run_workbook("tiny", reports_dir=tmp_path / "reports", work_dir=tmp_path / "work", only=["02"],
                        parameters={"batch_size": 4, "models": ["IFRNet_T"]})
    assert "note: batch_size not used by 02_architecture_exploration" in capsys.readouterr().out
    assert recorded["02_architecture_exploration"]["models"] == ["IFRNet_T"]


def test_parameter_syntax_is_name_equals_value(capsys):
    with pytest.raises(SystemExit):
        runner.main(["-p", "data_root", "/data"])  # papermill's `-p name value` form is not this runner's
    assert "expected NAME=VALUE (e.g. -p data_root=/data/cityscapes), got 'data_root'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- training: profile < config < parameters
def test_full_profile_trains_the_datasets_config(tmp_path):
    full = profile_settings("full")
    values, path = recipes.training_values(full, tmp_path, dataset="cityscapes", data_root="/data/cityscapes")
    assert path == REPO / "configs" / "cityscapes.yaml"
    # the file over the profile's IFRNet schedule (batch 12, crop 224); the profile where the file is silent
    assert (values["batch_size"], values["crop_size"], values["val_samples"], values["seed"]) == (8, 256, 500, 1234)
    assert (values["log_interval"], values["max_steps"]) == (full["log_interval"], 0)
    assert (values["protocol"], values["run_name"], values["data_root"]) == ("cityscapes", "IFRNet_cityscapes", "/data/cityscapes")
    assert values["log_path"] == str(tmp_path / "runs")
    config = TrainConfig(**values)
    config.check()
    trainer_reads = TrainConfig.from_args(["--config", str(path)])  # the trainer's reader: same values for every key of the file
    assert {key: getattr(config, key) for key in yaml.safe_load(path.read_text())} == \
        {key: getattr(trainer_reads, key) for key in yaml.safe_load(path.read_text())}


def test_explicit_parameters_win_over_the_config_file(tmp_path):
    values, _ = recipes.training_values(profile_settings("full"), tmp_path, dataset="cityscapes", data_root="/d",
                                        batch_size=4, crop_size=None, run_name="mine", amp="bf16")
    assert (values["batch_size"], values["crop_size"], values["run_name"], values["amp"]) == (4, 256, "mine", "bf16")


def test_a_config_parameter_replaces_the_default_and_names_the_dataset(tmp_path):
    values, path = recipes.training_values(profile_settings("full"), tmp_path, REPO / "configs" / "cityscapes_k+1.yaml", data_root="/d")
    assert path.name == "cityscapes_k+1.yaml" and (values["dataset"], values["context_frames"]) == ("cityscapes", 4)
    recipe = tmp_path / "mine.json"
    recipe.write_text(json.dumps({"dataset": "synthetic", "batch_size": 3, "loss_geometry": 0.05}))
    values, path = recipes.training_values(profile_settings("tiny"), tmp_path, str(recipe), data_root=str(tmp_path))
    tiny = profile_settings("tiny")
    assert (values["batch_size"], values["loss_geometry"], values["crop_size"], values["max_steps"]) == (3, 0.05, tiny["crop_size"], 4)
    assert values["run_name"] == recipes.DEFAULT_RUN_NAME and path == recipe.resolve()


def test_profiles_without_dataset_configs_keep_their_budget(tmp_path):
    quick = profile_settings("quick")
    values, path = recipes.training_values(quick, tmp_path, dataset="cityscapes", data_root="/d")
    assert path is None and (values["batch_size"], values["crop_size"], values["max_steps"]) == (4, 96, 700)
    full = profile_settings("full")  # vimeo90k ships only an interpolation recipe: IFRNet's schedule of the profile
    values, path = recipes.training_values(full, tmp_path, dataset="vimeo90k", data_root="/d")
    assert path is None and (values["model_name"], values["batch_size"], values["crop_size"]) == ("IFRNet", 12, 224)


def test_training_without_data_parameters_uses_notebook_01s_data(tmp_path):
    write_json(tmp_path / "dataset.json", {"dataset": "gopro", "data_root": "/data/GOPRO"})
    values, path = recipes.training_values(profile_settings("full"), tmp_path)
    assert path.name == "gopro.yaml" and (values["dataset"], values["data_root"], values["frame_stride"]) == ("gopro", "/data/GOPRO", 8)


def test_bad_config_files_name_the_parameter_and_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="config parameter: file not found: .*missing.yaml"):
        recipes.training_values(profile_settings("tiny"), tmp_path, tmp_path / "missing.yaml", data_root="/d")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("batch: 4\nepochs: 3\n")
    with pytest.raises(ValueError, match=r"config parameter: .*wrong.yaml has keys that are no TrainConfig field: \['batch'\]"):
        recipes.training_values(profile_settings("tiny"), tmp_path, wrong, data_root="/d")
    with pytest.raises(ValueError, match=r"unknown training parameter\(s\) \['batchsize'\]"):
        recipes.training_values(profile_settings("tiny"), tmp_path, data_root="/d", batchsize=4)


# ----------------------------------------------------------------------------- evaluation data
def test_evaluation_defaults_to_the_training_data(tmp_path):
    write_json(tmp_path / "dataset.json", {"dataset": "synthetic", "data_root": "/data/synthetic"})
    chosen = recipes.evaluation_data(tmp_path)
    assert (chosen["protocol"].name, chosen["dataset"], chosen["data_root"]) == ("synthetic", "synthetic", "/data/synthetic")


def test_evaluation_on_other_data_than_training(tmp_path):
    write_json(tmp_path / "dataset.json", {"dataset": "cityscapes", "data_root": "/data/cityscapes"})
    chosen = recipes.evaluation_data(tmp_path, eval_dataset="kitti", eval_data_root="/data/kitti")
    assert (chosen["protocol"].name, chosen["dataset"], chosen["data_root"]) == ("kitti", "kitti", "/data/kitti")
    chosen = recipes.evaluation_data(tmp_path, protocol="cityscapes", eval_dataset="kitti", eval_data_root="/data/kitti")
    assert chosen["protocol"].name == "cityscapes on kitti"  # never under the cityscapes name
    with pytest.raises(ValueError, match="eval_data_root parameter is needed: the kitti protocol scores kitti data, "
                                         "but the training data is cityscapes"):
        recipes.evaluation_data(tmp_path, protocol="kitti")
    with pytest.raises(ValueError, match="eval_dataset parameter: unknown dataset 'kiti'; choose from"):
        recipes.evaluation_data(tmp_path, eval_dataset="kiti", eval_data_root="/d")


def test_evaluation_takes_the_protocol_the_training_recipe_names(tmp_path):
    write_json(tmp_path / "dataset.json", {"dataset": "ucf101", "data_root": "/data/UCF101"})
    write_json(tmp_path / "training.json", {"summary": {"protocol": "davis17"}})
    with pytest.raises(ValueError, match="davis17 protocol scores davis17 data, but the training data is ucf101; "
                                         "give its folder: eval_data_root=/path/to/davis17"):
        recipes.evaluation_data(tmp_path)
    chosen = recipes.evaluation_data(tmp_path, eval_data_root="/data/DAVIS")
    assert (chosen["protocol"].name, chosen["data_root"]) == ("davis17", "/data/DAVIS")
    assert recipes.evaluation_data(tmp_path, protocol="vimeo90k", eval_data_root="/v")["dataset"] == "vimeo90k"


def test_runner_asks_for_eval_data_root_when_the_recipe_scores_other_data(tmp_path):
    notebooks = runner.select_notebooks(runner.NOTEBOOKS_DIR)
    (tmp_path / "UCF101").mkdir()
    given = {"dataset": "ucf101", "data_root": str(tmp_path / "UCF101")}
    with pytest.raises(runner.WorkbookError) as caught:
        runner.check_parameters("full", given, notebooks, tmp_path, echo=False)
    assert "the davis17 protocol scores davis17 data, but the training data is ucf101" in str(caught.value)
    assert f'ARGS="-p dataset=ucf101 -p data_root={tmp_path / "UCF101"} -p eval_data_root=/path/to/davis17"' in str(caught.value)
    checked = runner.check_parameters("full", {**given, "eval_data_root": "davis"}, notebooks, tmp_path, echo=False)
    assert checked["eval_data_root"] == str(Path.cwd() / "davis")


# ----------------------------------------------------------------------------- the notebooks' parameter cells
def test_parameter_cells_declare_config_and_evaluation_data():
    data, training, evaluation = (parameter_cell(n) for n in ("01_data_preparation", "03_training_ddp", "05_evaluation"))
    assert data["config"] is None and data["dataset"] is None and data["data_root"] is None
    assert training["config"] is None and training["dataset"] is None and training["data_root"] is None
    # None everywhere a config file may set the value (a literal default there would hide the file's)
    knobs = ("model_name", "max_steps", "epochs", "batch_size", "crop_size", "lr_start", "lr_end", "num_workers", "val_samples",
             "amp", "run_name", "resume")
    assert {knob: training[knob] for knob in knobs} == dict.fromkeys(knobs)
    for name in ("dataset", "data_root", "eval_dataset", "eval_data_root", "protocol"):
        assert evaluation[name] is None, name


def test_the_quick_profile_trains_its_exact_flow_recipe_and_parameters_override_it(tmp_path):
    quick = profile_settings("quick")
    values, _ = recipes.training_values(quick, tmp_path, dataset="synthetic", data_root="/d")
    assert (values["prior_shift_input"], values["loss_distillation"], values["loss_distillation_beta"]) == (True, 0.1, 0.0)
    assert TrainConfig(**values).model_options()["prior_shift_input"] is True
    values, _ = recipes.training_values(quick, tmp_path, dataset="synthetic", data_root="/d", prior_shift_input=False)
    assert values["prior_shift_input"] is False
    full = profile_settings("full")  # the published recipe: none of the quick profile's options
    values, _ = recipes.training_values(full, tmp_path, dataset="vimeo90k", data_root="/d")
    assert "prior_shift_input" not in values and "loss_distillation" not in values
