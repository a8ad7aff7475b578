"""The workbook: notebooks are committed clean, and all six run headless through papermill (tiny profile)."""
import json
import re
from pathlib import Path

import nbformat
import pytest

from ifrvp_core.workbook.runner import NOTEBOOKS_DIR, WorkbookError, list_notebooks, notebooks_with_outputs, run_workbook

EXPECTED = ["01_data_preparation", "02_architecture_exploration", "03_training_ddp", "04_flow_warp_visualisation", "05_evaluation"]
SEPARATE = ["06_ablations"]  # `make ablations`, not part of the default run


def test_notebooks_are_numbered_clean_and_parametrised():
    paths = list_notebooks()
    assert [p.stem for p in paths] == EXPECTED + SEPARATE
    assert notebooks_with_outputs(paths) == []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata["kernelspec"]["name"] == "ifrvp", path.name
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
        assert re.search(r"^profile = \"quick\"", tagged[0].source, re.M) and "work_dir = None" in tagged[0].source
        assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(f"# {path.stem[:2]}")


def test_output_check_flags_executed_notebooks(tmp_path):
    notebook = nbformat.read(NOTEBOOKS_DIR / "01_data_preparation.ipynb", as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello")]
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, path)
    (problem,) = notebooks_with_outputs([path])
    assert "dirty.ipynb" in problem and "[1]" in problem


# Training from a config file (profile < config < parameters), scored on other data than it trained on.
TINY_RECIPE = {"dataset": "synthetic", "loss_distillation_beta": 0.25, "run_name": "tiny_from_config"}


@pytest.fixture(scope="module")
def tiny_workbook(tmp_path_factory, tiny_data):
    root = tmp_path_factory.mktemp("workbook")
    recipe = root / "tiny_recipe.yaml"
    recipe.write_text("".join(f"{key}: {value}\n" for key, value in TINY_RECIPE.items()))
    result = run_workbook("tiny", reports_dir=root / "reports", work_dir=root / "work", echo=False,
                          parameters={"config": str(recipe), "eval_dataset": "synthetic", "eval_data_root": str(tiny_data)})
    result.recipe, result.eval_data_root = recipe, tiny_data
    return result


def test_every_notebook_runs_without_errors(tiny_workbook):
    assert [run.name for run in tiny_workbook.runs] == EXPECTED
    for run in tiny_workbook.runs:
        notebook = nbformat.read(run.executed, as_version=4)
        errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert errors == [], run.name
        injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "profile = \"tiny\"" in injected[0].source


def _images(html: str, kind: str = "png") -> int:
    return len(re.findall(rf"data:image/{kind};base64,", html))


def test_reports_embed_figures_and_hide_code(tiny_workbook):
    reports = tiny_workbook.reports_dir
    minimum = {"01_data_preparation": 2, "02_architecture_exploration": 4, "03_training_ddp": 1,
               "04_flow_warp_visualisation": 6, "05_evaluation": 2}
    for name, count in minimum.items():
        html = (reports / f"{name}.html").read_text()
        assert _images(html) >= count, f"{name}: {_images(html)} embedded PNGs"
        assert "import ifrvp_core.workbook" not in html, f"{name}: code should be hidden"
        assert "parameters of this run" in html
    assert _images((reports / "04_flow_warp_visualisation.html").read_text(), "gif") >= 1  # rollout animation


def test_outputs_chain_through_files(tiny_workbook):
    work = tiny_workbook.work_dir
    dataset = json.loads((work / "dataset.json").read_text())
    assert dataset["dataset"] == "synthetic" and dataset["splits"]["train"]["clips"] == 4
    assert dataset["teacher_flows_written"] > 0
    training = json.loads((work / "training.json").read_text())
    run_dir = Path(training["run_dir"])
    assert training["summary"]["world_size"] == 2 and training["summary"]["iterations"] == 4  # DDP from the cell
    for name in ("best.pt", "latest.pt", "log.jsonl", "config.json", "summary.json"):
        assert (run_dir / name).is_file(), name
    # the config file's values over the profile's, the profile's where the file is silent
    config = json.loads((run_dir / "config.json").read_text())
    assert training["config"] == str(tiny_workbook.recipe.resolve()) and run_dir.name == "tiny_from_config"
    assert (config["loss_distillation_beta"], config["batch_size"], config["crop_size"]) == (0.25, 2, 32)
    results = json.loads((tiny_workbook.reports_dir / "evaluation" / "results.json").read_text())
    assert list(results) == ["meta", "model", "copy_last", "dis_extrapolation", "prior_only"]
    assert list(results["model"]) == ["t+1", "t+2", "t+3", "t+1..t+1", "t+1..t+2", "t+1..t+3"]
    assert 5 < results["model"]["t+1"]["psnr"] < 60 and results["model"]["t+1"]["lpips"] is None  # no offline AlexNet weights
    meta = results["meta"]
    assert (meta["written_by"], meta["checkpoint"], meta["protocol"], meta["steps"]) == (
        "notebook 05_evaluation", str(Path(training["checkpoint"]).resolve()), "synthetic", 3)
    assert meta["variant"] == training["summary"]["model_name"] and meta["bgr_like_published"] is False
    # scored on eval_data_root, not on the data notebook 01 prepared and 03 trained on
    assert meta["data_root"] == str(tiny_workbook.eval_data_root) != dataset["data_root"] == config["data_root"]
    assert (tiny_workbook.reports_dir / "evaluation" / "results.csv").is_file()
    html = (tiny_workbook.reports_dir / "05_evaluation.html").read_text()
    assert "psnr frame t+3" in html and "psnr mean t+1..t+3" in html  # both forms in the headline tables


def test_index_links_reports_and_shows_headline(tiny_workbook):
    html = (tiny_workbook.reports_dir / "index.html").read_text()
    for name in EXPECTED:
        assert f"href='{name}.html'" in html
    assert "t+1 on the synthetic protocol" in html and "copy_last" in html and "dis_extrapolation" in html
    # what training added: the verdict against the untrained twin, next to the other baselines
    assert "prior_only" in html and "its untrained twin (prior_only" in html
    headline = json.loads((tiny_workbook.reports_dir / "evaluation" / "headline.json").read_text())
    assert set(headline["t+1"]) == {"model", "copy_last", "dis_extrapolation", "prior_only"}
    assert set(headline["model_beats_prior_only_t1"]) == {"psnr", "ssim"}
    assert "frame t+1 and mean t+1..t+1 coincide" in html
    assert "depend on the CPU type" in html and "reproduce every number exactly" in html  # next to the figures
    assert html.count("class='ok'") == 5


def test_every_report_file_is_readable_by_other_users(tiny_workbook):
    import os
    import stat

    from ifrvp_core.checkpoint import current_umask

    expected = 0o666 & ~current_umask()  # 0644 under the default umask 022: a web server can serve them
    files = [p for p in tiny_workbook.reports_dir.rglob("*") if p.is_file()]
    assert len(files) >= 10
    modes = {str(p.relative_to(tiny_workbook.reports_dir)): oct(stat.S_IMODE(os.stat(p).st_mode)) for p in files}
    assert modes == {name: oct(expected) for name in modes}
    run_dir = Path(json.loads((tiny_workbook.work_dir / "training.json").read_text())["run_dir"])
    for name in ("best.pt", "latest.pt", "summary.json", "config.json"):
        assert stat.S_IMODE(os.stat(run_dir / name).st_mode) == expected, name


def test_ablations_notebook_trains_every_variant_and_keeps_the_index(tiny_workbook):
    from ifrvp_core.workbook.ablations import ABLATION_VARIANTS, DEFAULT_VARIANT

    result = run_workbook("tiny", reports_dir=tiny_workbook.reports_dir, work_dir=tiny_workbook.work_dir, only=["06"], echo=False)
    assert [run.name for run in result.runs] == SEPARATE
    notebook = nbformat.read(result.runs[0].executed, as_version=4)
    assert [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"] == []
    saved = json.loads((tiny_workbook.reports_dir / "ablations" / "ablations.json").read_text())
    assert list(saved["variants"]) == list(ABLATION_VARIANTS)
    assert saved["meta"]["steps"] == 3 and list(saved["results"]["copy_last"])[-1] == "t+1..t+3"
    names = [row["variant"] for row in saved["rows"]]
    assert names[: len(ABLATION_VARIANTS)] == [n + (" (training default)" if n == DEFAULT_VARIANT else "") for n in ABLATION_VARIANTS]
    assert names[-3:] == ["copy_last", "dis_extrapolation", "prior_only"]  # the baselines on the same windows
    prior_row = saved["rows"][-1]
    assert isinstance(prior_row["psnr frame t+1"], float)  # what every variant's training added is read against it
    default = saved["rows"][list(ABLATION_VARIANTS).index(DEFAULT_VARIANT)]
    for key in ("psnr frame t+1", "ssim frame t+3", "ms_ssim frame t+1", "EPE t+1 (px)", "train time (s)"):
        assert isinstance(default[key], float), key
    for name, variant in saved["variants"].items():
        config = json.loads((Path(variant["run_dir"]) / "config.json").read_text())
        assert config["max_steps"] == 3 and config["seed"] == 0, name  # same budget and batches for every variant
    # the real column: every variant trained on the real training clips, scored on the held-out clip's windows
    real = saved["real"]
    assert Path(real["heldout_root"]).name == "bikes" and real["meta"]["protocol"] == "frames_heldout"
    assert real["test_samples"] == 2 and list(real["results"]["prior_only"])[:3] == ["t+1", "t+2", "t+3"]
    assert [row["variant"] for row in real["rows"]] == names
    for name, variant in real["variants"].items():
        config = json.loads((Path(variant["run_dir"]) / "config.json").read_text())
        assert (config["dataset"], config["max_steps"], Path(config["data_root"]).name) == ("frames", 2, "train"), name
    gains = {row["variant"]: row for row in saved["gains"]}
    assert gains["prior_only"]["real t+3 − prior_only"] == 0.0 and gains["prior_only"]["synthetic t+1 − prior_only"] == 0.0
    default_gain = gains[DEFAULT_VARIANT + " (training default)"]
    expected = real["results"][DEFAULT_VARIANT]["t+1"]["psnr"] - real["results"]["prior_only"]["t+1"]["psnr"]
    assert default_gain["real t+1 − prior_only"] == pytest.approx(expected)
    html = (tiny_workbook.reports_dir / "06_ablations.html").read_text()
    assert _images(html) >= 2 and "training default" in html
    index = (tiny_workbook.reports_dir / "index.html").read_text()
    assert all(f"href='{name}.html'" in index for name in EXPECTED + SEPARATE)  # earlier reports stay linked


def test_failing_notebook_is_named_with_its_cell(tmp_path):
    (tmp_path / "empty").mkdir()  # passes the runner's checks (it exists); notebook 01 finds no Vimeo90K in it
    with pytest.raises(WorkbookError) as caught:
        run_workbook("tiny", reports_dir=tmp_path / "reports", work_dir=tmp_path / "work", only=["01"],
                     parameters={"dataset": "vimeo90k", "data_root": str(tmp_path / "empty")}, echo=False)
    message = str(caught.value)
    assert "notebook 01_data_preparation failed in cell" in message and "vimeo90k at" in message and "has problems" in message
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "failed" in index and (tmp_path / "reports" / "01_data_preparation.html").is_file()


def test_unknown_profile_and_unknown_notebook_are_rejected(tmp_path):
    with pytest.raises(WorkbookError, match="unknown profile 'fast'"):
        run_workbook("fast", reports_dir=tmp_path, echo=False)
    with pytest.raises(WorkbookError, match="matches none"):
        run_workbook("tiny", reports_dir=tmp_path, work_dir=tmp_path / "w", only=["09"], echo=False)


def test_profile_settings_overrides_and_errors():
    from ifrvp_core.workbook.profiles import profile_settings

    quick = profile_settings("quick", max_steps=None, batch_size=2)
    assert quick["max_steps"] == 700 and quick["batch_size"] == 2 and quick["profile"] == "quick"
    full = profile_settings("full")
    assert full["model_name"] == "IFRNet" and full["batch_size"] == 12 and full["lr_start"] == 1e-4 and full["nproc"] >= 1
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profile_settings("fast")


def test_dataset_info_without_notebook_01_names_the_missing_file(tmp_path):
    from ifrvp_core.workbook.profiles import dataset_info, trained_checkpoint

    with pytest.raises(FileNotFoundError, match="dataset.json written by 01_data_preparation"):
        dataset_info(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoint parameter: file not found"):
        trained_checkpoint(tmp_path, tmp_path / "missing.pt")


def test_workbook_kernels_run_encrypted_without_the_tcp_warning(tmp_path, capfd):
    """ipykernel warns 'Kernel is running over TCP without encryption' unless the manager provisions CurveZMQ keys."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "ifrvp", "display_name": "IFRVP (Python 3)", "language": "python"}
    parameters = nbformat.v4.new_code_cell('profile = "quick"\nwork_dir = None')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("print(6 * 7)")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(notebook, tmp_path / "notebooks" / "01_probe.ipynb")
    result = run_workbook("tiny", reports_dir=tmp_path / "reports", work_dir=tmp_path / "work", echo=False,
                          notebooks_dir=tmp_path / "notebooks")
    executed = nbformat.read(result.runs[0].executed, as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == "42"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out


def test_index_says_next_to_the_figures_how_much_they_vary_with_the_cpu(tmp_path):
    from ifrvp_core.workbook.runner import FIGURES_VARY_NOTE, WorkbookResult, cpu_name, write_index

    (tmp_path / "evaluation").mkdir()
    scores = {"psnr": 30.0, "ssim": 0.9}
    (tmp_path / "evaluation" / "headline.json").write_text(json.dumps(
        {"protocol": "synthetic", "samples": 24, "t+1": {"model": scores, "copy_last": scores, "dis_extrapolation": scores}}))
    html = write_index(WorkbookResult("quick", tmp_path, tmp_path / "work")).read_text()
    figures, note = html.index("t+1 on the synthetic protocol"), html.index("depend on the CPU type")
    assert figures < note < html.index("results.csv")  # right under the headline table
    assert "0.20 dB (30.18 vs 29.98)" in FIGURES_VARY_NOTE and "-0.003 dB" in FIGURES_VARY_NOTE and cpu_name() in html


def test_split_sizes_skips_the_splits_that_do_not_exist_and_raises_real_errors(tiny_data, monkeypatch):
    from ifrvp_core.data import DataError
    from ifrvp_core.workbook import data_views

    # the synthetic set has train/ and test/ but no val/: the data layer's DataError means "no such split"
    assert data_views.split_sizes("synthetic", tiny_data) == {"train": {"windows": 16, "clips": 4}, "test": {"windows": 4, "clips": 2}}
    real_build = data_views.build_dataset

    def unreadable_test_split(name, root, split, **options):
        if split == "test":
            raise PermissionError(f"[Errno 13] Permission denied: {root / split}")
        return real_build(name, root, split, **options)

    monkeypatch.setattr(data_views, "build_dataset", unreadable_test_split)
    with pytest.raises(PermissionError, match="Permission denied"):  # a real error is not taken for a missing split
        data_views.split_sizes("synthetic", tiny_data)

    def no_such_split(name, root, split, **options):
        raise DataError(f"synthetic split folder not found: {root / split}")

    monkeypatch.setattr(data_views, "build_dataset", no_such_split)
    assert data_views.split_sizes("synthetic", tiny_data) == {}


def test_split_sizes_asks_protocol_datasets_only_for_their_splits(tmp_path, monkeypatch):
    from ifrvp_core.workbook import data_views

    asked = []

    def record(name, root, split, **options):
        asked.append((name, split))
        raise data_views.DataError("no files")

    monkeypatch.setattr(data_views, "build_dataset", record)
    for dataset in ("davis17", "kitti", "ucf101", "gopro"):
        data_views.split_sizes(dataset, tmp_path)
    assert asked == [("davis17", "train"), ("davis17", "val"), ("kitti", "train"), ("kitti", "test"), ("ucf101", "train"),
                     ("ucf101", "test"), ("gopro", "train"), ("gopro", "val"), ("gopro", "test")]


def test_baseline_verdicts_in_the_tables_and_in_the_index():
    from ifrvp_core.workbook.verdicts import beats_baseline, verdict_cell, verdict_verb

    assert beats_baseline({"psnr": 30.0, "ssim": 0.90, "lpips": 0.1}, {"psnr": 29.0, "ssim": 0.91}) == {"psnr": True, "ssim": False}
    cases = {"both": {"psnr": True, "ssim": True}, "psnr": {"psnr": True, "ssim": False},
             "ssim": {"psnr": False, "ssim": True}, "neither": {"psnr": False, "ssim": False}}
    assert {case: verdict_cell(beats) for case, beats in cases.items()} == {"both": "yes", "psnr": "PSNR only", "ssim": "NO", "neither": "NO"}
    assert {case: verdict_verb(beats) for case, beats in cases.items()} == {
        "both": "beats", "psnr": "does NOT beat", "ssim": "does NOT beat", "neither": "does NOT beat"}
    assert verdict_cell({}) == "NO" and verdict_cell(None) == "NO"  # a baseline the run did not score


def test_old_import_paths_keep_working():
    import ifrvp_core.ablations as old_ablations
    import ifrvp_core.notebook_helpers as old_helpers
    import ifrvp_core.workbook as workbook
    from ifrvp_core.workbook import ablations

    assert all(getattr(old_helpers, name) is getattr(workbook, name) for name in old_helpers.__all__)
    assert all(getattr(old_ablations, name) is getattr(ablations, name) for name in ablations.__all__)
    assert old_ablations.test_dataset is ablations.evaluated_test_set  # the old name, for old notebooks


def test_table_columns_name_the_step_form():
    from ifrvp_core.workbook.display import step_column

    assert step_column("psnr", "t+3") == "psnr frame t+3"
    assert step_column("ssim", "t+1..t+3") == "ssim mean t+1..t+3"
    assert step_column("psnr", "t+1..t+1") == "psnr mean t+1..t+1"
