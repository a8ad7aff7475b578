"""Run the numbered notebooks headless (papermill) and render them into reports.

    python -m ifrvp_core.workbook                      # `make workbook`: the quick profile, 01 -> 05
    python -m ifrvp_core.workbook --profile full -p dataset=cityscapes -p data_root=/data/cityscapes -p nproc=8
    python -m ifrvp_core.workbook --only 04 05         # re-render from the outputs already on disk
    python -m ifrvp_core.workbook --only 06            # `make ablations`: the recipe ablations (own budget)

`-p NAME=VALUE` (`make workbook ARGS="-p NAME=VALUE ..."`) sets a parameter in every notebook
whose parameters cell has NAME; VALUE is JSON when it parses (8, null, [1, 2]), else a string.
Paths (config, data_root, eval_data_root, video, checkpoint) are taken relative to the current
folder. Before any notebook runs, the parameters are checked: a name no notebook declares, an
unknown dataset or a profile's missing parameter (the full profile's data_root) stop the run with
the command that gives it. Training takes profile < config file < `-p` (`ifrvp_core.workbook.recipes`).

Each notebook runs with the `ifrvp` kernel and its `parameters` cell overridden (profile,
work_dir, interactive=False and the paths of the earlier notebooks' outputs), then is written to
`reports/executed/NN_name.ipynb` and rendered to `reports/NN_name.html` (code hidden, figures and
animations embedded). `reports/index.html` links the reports with the headline metrics. A failing
notebook stops the run with a non-zero exit that names the notebook and the cell; its partly
executed copy (with the traceback) is still written and rendered.
"""
from __future__ import annotations

import argparse
import ast
import html
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill as pm
import torch
import zmq
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbconvert import HTMLExporter
import traitlets

from ifrvp_core.checkpoint import write_text_atomic
from ifrvp_core.data import list_datasets
from ifrvp_core.workbook.display import html_table
from ifrvp_core.workbook.profiles import PROFILES, REPO, default_work_dir, profile_settings, read_json
from ifrvp_core.workbook.recipes import (
    config_path,
    evaluation_protocol,
    missing_eval_root,
    recipe_dataset,
    trained_protocol,
    training_recipe,
)
from ifrvp_core.workbook.verdicts import BASELINE_LABELS, verdict_verb

NOTEBOOKS_DIR = REPO / "notebooks"
KERNEL_NAME = "ifrvp"


class WorkbookError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


@dataclass
class NotebookRun:
    name: str
    executed: Path
    html: Path | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class WorkbookResult:
    profile: str
    reports_dir: Path
    work_dir: Path
    index: Path | None = None
    runs: list[NotebookRun] = field(default_factory=list)
    seconds: float = 0.0


# Notebooks that train several models run only when named with --only (`make ablations`), so the
# default run (`make workbook`, 01 -> 05) keeps its time budget.
SEPARATE_NOTEBOOKS = ("06",)


def list_notebooks(notebooks_dir=NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (`NN_name.ipynb`), in order."""
    paths = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    return paths


def check_kernel(kernel_name: str) -> None:
    if kernel_name not in KernelSpecManager().find_kernel_specs():
        raise WorkbookError(
            f"Jupyter kernel {kernel_name!r} is not installed in this environment; run `make install` "
            f"(or `python -m ipykernel install --sys-prefix --name {kernel_name}`)"
        )


def encrypted_kernel_manager_class():
    """The kernel manager papermill uses: local kernels with CurveZMQ transport encryption.

    ipykernel warns "Kernel is running over TCP without encryption ..." on every start when the
    manager does not provision CurveZMQ keys (jupyter_client's default), which put the warning in
    every notebook's log. With `transport_encryption="auto"` the manager provisions keys whenever
    the kernelspec declares `"supported_encryption": ["curve"]` (the `ifrvp` kernelspec that
    `make install` writes does), so the kernel runs encrypted and says nothing. Without CurveZMQ
    in this pyzmq (libzmq built without libsodium) the default manager is kept.
    """
    if not zmq.has("curve"):
        return AsyncKernelManager

    class EncryptedKernelManager(AsyncKernelManager):
        @traitlets.default("transport_encryption")
        def _transport_encryption_default(self):
            return "auto"

    return EncryptedKernelManager


def notebook_parameters(name: str, profile: str, work_dir: Path, reports_dir: Path, extra: dict) -> dict:
    """The parameters injected into notebook `name`: shared ones, then per-notebook paths, then `extra`."""
    params = {"profile": profile, "work_dir": str(work_dir)}
    number = name[:2]
    if number == "04":
        params["interactive"] = False  # no widget frontend under papermill: the static grid instead
    if number == "05":
        params["results_dir"] = str(reports_dir / "evaluation")
    if number == "06":
        params["results_dir"] = str(reports_dir / "ablations")
    for key, value in extra.items():
        params[key] = value
    return params


def _accepted_parameters(path: Path) -> set[str]:
    """Names assigned in a notebook's `parameters` cell (papermill would inject others silently)."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}
    raise WorkbookError(f"{path.name} has no cell tagged 'parameters'")


def render_html(executed: Path, target: Path, title: str) -> Path:
    """nbconvert HTML (lab template) with code cells hidden; images stay embedded as base64."""
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata["title"] = title
    body, _ = exporter.from_notebook_node(notebook)
    return write_text_atomic(target, body)


def _failure_message(name: str, error, executed: Path) -> str:
    cell = getattr(error, "cell_index", None)
    count = getattr(error, "exec_count", None)
    ename, evalue = getattr(error, "ename", type(error).__name__), getattr(error, "evalue", str(error))
    where = f"cell {cell}" + (f" (execution count {count})" if count is not None else "") if cell is not None else "an unknown cell"
    source = ""
    if getattr(error, "source", None):
        first = error.source.strip().splitlines()
        source = f"\n  cell starts: {first[0][:120]}" if first else ""
    return f"notebook {name} failed in {where}: {ename}: {evalue}{source}\n  executed copy with the traceback: {executed}"


def run_workbook(
    profile: str = "quick",
    reports_dir=REPO / "reports",
    work_dir=None,
    only: list[str] | None = None,
    parameters: dict | None = None,
    kernel_name: str = KERNEL_NAME,
    notebooks_dir=NOTEBOOKS_DIR,
    timeout_s: int | None = None,
    echo: bool = True,
) -> WorkbookResult:
    """Execute the notebooks in order, render each to HTML, then write `reports/index.html`.

    Args:
        profile: tiny | quick | full (`ifrvp_core.workbook.profiles.PROFILES`).
        reports_dir: where the HTML reports, `executed/` notebooks and `evaluation/` results go.
        work_dir: data, runs and animations (default `<repo>/workbook_runs/<profile>`).
        only: notebook numbers or names to run (default all); the others' outputs must be on disk.
        parameters: extra parameters for every notebook that declares them (others ignore them).
        timeout_s: per-cell execution timeout (None: no limit).

    Raises:
        WorkbookError naming the notebook and cell when one fails (after rendering its report).
    """
    if profile not in PROFILES:
        raise WorkbookError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    started = time.perf_counter()
    reports_dir = Path(reports_dir).resolve()
    work_dir = Path(work_dir).resolve() if work_dir else default_work_dir(profile)
    notebooks = select_notebooks(notebooks_dir, only)
    extra = check_parameters(profile, dict(parameters or {}), notebooks, work_dir, notebooks_dir, echo=echo)
    check_kernel(kernel_name)
    (reports_dir / "executed").mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    result = WorkbookResult(profile, reports_dir, work_dir)
    for path in notebooks:
        name = path.stem
        accepted = _accepted_parameters(path)
        params = notebook_parameters(name, profile, work_dir, reports_dir, {k: v for k, v in extra.items() if k in accepted})
        run = NotebookRun(name, reports_dir / "executed" / path.name)
        result.runs.append(run)
        if echo:
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        run_notebook(path, run, params, reports_dir, kernel_name, timeout_s)
        if run.error:
            result.seconds = time.perf_counter() - started
            result.index = write_index(result)
            raise WorkbookError(run.error)
        if echo:
            print(f"[{time.strftime('%H:%M:%S')}] {name} done in {run.seconds:.0f} s -> {run.html}", flush=True)
    result.seconds = time.perf_counter() - started
    result.index = write_index(result)
    return result


# Set by the runner's own options; a `-p` for them would contradict the option.
RUNNER_OPTIONS = {"profile": "--profile", "work_dir": "--work_dir"}
# Parameters that name files or folders: made absolute, since the notebooks run in notebooks/.
PATH_PARAMETERS = ("config", "data_root", "eval_data_root", "video", "checkpoint")


def command_with(profile: str, parameters: dict, name: str, value: str) -> str:
    """The make and python commands of this run with `-p name=value` added (for error messages)."""
    given = [f"-p {key}={json.dumps(v) if not isinstance(v, str) else v}" for key, v in parameters.items() if key != name]
    args = " ".join([*given, f"-p {name}={value}"])
    return f'make workbook PROFILE={profile} ARGS="{args}"  (or: python -m ifrvp_core.workbook --profile {profile} {args})'


def missing_parameter(profile: str, parameters: dict, numbers: set[str], work_dir: Path) -> str | None:
    """Why this run cannot start, naming the parameter and the command that gives it; None when it can.

    Checks, without running anything: the training dataset is known, notebook 01 has the
    `data_root` a real dataset needs (the full profile's), and notebook 05 has `eval_data_root`
    when its protocol scores other data than the training data (a recipe such as ucf101's).
    """
    settings = profile_settings(profile)
    config = parameters.get("config")
    prepared = Path(work_dir) / "dataset.json"
    on_disk = read_json(prepared, "dataset.json")["dataset"] if "01" not in numbers and prepared.is_file() else None
    dataset = parameters.get("dataset") or recipe_dataset(config) or on_disk or settings["dataset"]
    if parameters.get("video"):  # notebook 01 decodes it into a frames dataset
        dataset = "frames"
    if dataset not in list_datasets():
        return f"dataset parameter: unknown dataset {dataset!r}; choose from {', '.join(list_datasets())}"
    data_root = parameters.get("data_root")
    if "01" in numbers and dataset != "synthetic" and not parameters.get("video"):  # synthetic data is generated
        if data_root is None:
            return (f"profile {profile!r} trains on dataset {dataset!r}, which needs the data_root parameter (the folder in "
                    f"its published layout); give it: {command_with(profile, parameters, 'data_root', f'/path/to/{dataset}')}")
        if not Path(data_root).exists():
            return f"data_root parameter: folder not found: {data_root}"
    if "05" in numbers and parameters.get("eval_data_root") is None:
        recipe = training_recipe(settings, dataset, config)[1] if "03" in numbers else {}
        trained = recipe.get("protocol") if "03" in numbers else trained_protocol(work_dir)
        protocol = evaluation_protocol(parameters.get("protocol"), parameters.get("eval_dataset"), trained, dataset)
        if protocol.dataset != dataset:
            command = command_with(profile, parameters, "eval_data_root", f"/path/to/{protocol.dataset}")
            return f"{missing_eval_root(protocol, dataset)}; give it: {command}"
    return None


def check_parameters(profile: str, parameters: dict, notebooks: list[Path], work_dir: Path, notebooks_dir=NOTEBOOKS_DIR,
                     echo: bool = True) -> dict:
    """The `-p` parameters checked before any notebook runs, with their paths made absolute.

    Raises:
        WorkbookError: a runner option given as `-p`, a name no notebook's parameters cell has (with
            the valid names), a missing file, or `missing_parameter`'s reason.
    """
    for name, option in RUNNER_OPTIONS.items():
        if name in parameters:
            raise WorkbookError(f"{name} is set with {option}, not with -p {name}=...")
    declared = set().union(*(_accepted_parameters(path) for path in list_notebooks(notebooks_dir))) - set(RUNNER_OPTIONS)
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise WorkbookError(f"unknown parameter(s) {unknown}: no notebook's parameters cell has them; valid: {', '.join(sorted(declared))}")
    running = set().union(*(_accepted_parameters(path) for path in notebooks))
    unused = sorted(set(parameters) - running)
    if unused and echo:
        print(f"note: {', '.join(unused)} not used by {', '.join(p.stem for p in notebooks)}", flush=True)
    checked = dict(parameters)
    try:
        for name in PATH_PARAMETERS:
            if isinstance(checked.get(name), str):
                checked[name] = str(config_path(checked[name]) if name == "config" else Path(checked[name]).expanduser().resolve())
        problem = missing_parameter(profile, checked, {path.stem[:2] for path in notebooks}, work_dir)
    except (ValueError, FileNotFoundError) as error:
        raise WorkbookError(str(error)) from None
    if problem:
        raise WorkbookError(problem)
    return checked


def select_notebooks(notebooks_dir, only: list[str] | None = None) -> list[Path]:
    """The notebooks `only` names (numbers like "04" or "4", or names), else all but `SEPARATE_NOTEBOOKS`."""
    notebooks = list_notebooks(notebooks_dir)
    if not only:
        return [p for p in notebooks if p.stem[:2] not in SEPARATE_NOTEBOOKS]
    wanted = {str(item) for item in only}
    chosen = [p for p in notebooks if p.stem in wanted or p.stem[:2] in wanted or p.stem[:2].lstrip("0") in wanted]
    if not chosen:
        raise WorkbookError(f"--only {sorted(wanted)} matches none of {[p.stem for p in notebooks]}")
    return chosen


def run_notebook(path: Path, run: NotebookRun, parameters: dict, reports_dir: Path, kernel_name: str = KERNEL_NAME,
                 timeout_s: int | None = None) -> NotebookRun:
    """Execute one notebook into `run.executed` and render it to `reports_dir/<name>.html`.

    Fills in `run.seconds`, `run.html` (when an executed copy was written) and, when a cell
    failed, `run.error` (the message of `WorkbookError`); the failure itself is not raised here.
    """
    begin = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(run.executed), parameters=parameters, kernel_name=kernel_name, cwd=str(path.parent),
            progress_bar=False, log_output=False, execution_timeout=timeout_s,
            kernel_manager_class=encrypted_kernel_manager_class(),
        )
    except pm.PapermillExecutionError as error:
        run.error = _failure_message(run.name, error, run.executed)
    run.seconds = time.perf_counter() - begin
    if run.executed.is_file():
        run.html = render_html(run.executed, reports_dir / f"{run.name}.html", run.name.replace("_", " "))
    return run


# Shown next to the headline figures in index.html (the README says the same).
FIGURES_VARY_NOTE = (
    "The trained model's figures depend on the CPU type: kernels round differently and training amplifies it. "
    "Measured for the quick profile: holding PyTorch's and oneDNN's kernels to AVX2 instead of AVX-512 moved the "
    "model's t+1 PSNR by -0.003 dB (32.035 -> 32.032); with IFRNet's recipe (no motion prior), two machines of one "
    "kind differed by 0.20 dB (30.18 vs 29.98). Expect hundredths of a dB, at most a few tenths, on another CPU. "
    "The baselines (copy-last, DIS extrapolation) do not train and do not vary. "
    "The same machine and command reproduce every number exactly (DDP with data workers included; tested)."
)


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), since the trained model's figures depend on it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _headline(result: WorkbookResult) -> tuple[str, dict]:
    """HTML for the headline metrics (evaluation and training), and the same numbers as a dict."""
    parts, numbers = [], {}
    headline_path = result.reports_dir / "evaluation" / "headline.json"
    if headline_path.is_file():
        headline = json.loads(headline_path.read_text())
        numbers["evaluation"] = headline
        rows = [{"method": method, **values} for method, values in headline["t+1"].items()]
        variant = f", model {headline['variant']}" if headline.get("variant") else ""
        parts.append(html_table(rows, f"t+1 on the {headline['protocol']} protocol ({headline['samples']} test samples{variant}; "
                                      "frame t+1 and mean t+1..t+1 coincide)", digits=4))
        for metric, reason in (headline.get("unavailable") or {}).items():
            parts.append(f"<p><small>{html.escape(metric)}: n/a ({html.escape(reason)})</small></p>")
        for baseline, label in BASELINE_LABELS:
            beats = headline.get(f"model_beats_{baseline}_t1")
            if beats is None:
                continue
            model, other = headline["t+1"]["model"], headline["t+1"][baseline]
            parts.append(f"<p>The trained model <b>{verdict_verb(beats)}</b> {label} at t+1: PSNR {model['psnr'] - other['psnr']:+.2f} dB, "
                         f"SSIM {model['ssim'] - other['ssim']:+.4f}.</p>")
        parts.append(f"<p class='note'><small>{html.escape(FIGURES_VARY_NOTE)} This run: {html.escape(cpu_name())}, "
                     f"{os.cpu_count()} cores.</small></p>")
        parts.append("<p>Full per-step tables, frame t+k and running mean t+1..t+k: <a href='evaluation/results.csv'>results.csv</a>, "
                     "<a href='evaluation/results.json'>results.json</a>, "
                     "<a href='evaluation/results_per_sample.csv'>per sample</a>.</p>")
    training_path = result.work_dir / "training.json"
    if training_path.is_file():
        summary = json.loads(training_path.read_text())["summary"]
        numbers["training"] = summary
        parts.append(html_table([{
            "model": summary.get("model_name"), "dataset": summary.get("dataset"), "processes": summary.get("world_size"),
            "iterations": summary.get("iterations"), "wall time (s)": summary.get("wall_time_s"),
            "val PSNR t+1": (summary.get("final") or {}).get("psnr"), "val SSIM t+1": (summary.get("final") or {}).get("ssim"),
        }], "training (notebook 03)", digits=3))
    return "\n".join(parts), numbers


def write_index(result: WorkbookResult) -> Path:
    """`reports/index.html`: one line per notebook (status, time, link) and the headline metrics."""
    headline_html, numbers = _headline(result)
    rows = []
    ran = {run.name for run in result.runs}
    for earlier in sorted(result.reports_dir.glob("[0-9][0-9]_*.html")):
        if earlier.stem not in ran:  # rendered by an earlier run (e.g. `make ablations` after `make workbook`)
            rows.append(f"<tr><td><a href='{html.escape(earlier.name)}'>{html.escape(earlier.stem)}</a></td>"
                        f"<td>earlier run</td><td></td><td></td></tr>")
    for run in result.runs:
        status = "failed" if run.error else "ok"
        link = f"<a href='{html.escape(run.html.name)}'>{html.escape(run.name)}</a>" if run.html else html.escape(run.name)
        error = f"<pre>{html.escape(run.error)}</pre>" if run.error else ""
        rows.append(f"<tr><td>{link}</td><td class='{status}'>{status}</td><td>{run.seconds:.0f} s</td><td>{error}</td></tr>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>IFRVP workbook report ({html.escape(result.profile)})</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }} .ok {{ color: #11772d; }} .failed {{ color: #b00020; font-weight: bold; }}
pre {{ white-space: pre-wrap; text-align: left; }}
</style></head><body>
<h1>IFRVP workbook report</h1>
<p>Profile <b>{html.escape(result.profile)}</b>, generated {time.strftime('%Y-%m-%d %H:%M')} on {html.escape(platform.node())}
({html.escape(cpu_name())}, torch {html.escape(str(torch.__version__))},
{'GPU: ' + html.escape(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else 'CPU only'}), total {result.seconds / 60:.1f} min.
Work folder: <code>{html.escape(str(result.work_dir))}</code>.</p>
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>time</th><th></th></tr>
{''.join(rows)}
</table>
<h2>Headline metrics</h2>
{headline_html or '<p>No evaluation yet.</p>'}
</body></html>
"""
    path = write_text_atomic(result.reports_dir / "index.html", page)
    summary = {"profile": result.profile, "seconds": result.seconds,
               "notebooks": [{"name": r.name, "seconds": r.seconds, "error": r.error} for r in result.runs], **numbers}
    write_text_atomic(result.reports_dir / "workbook_summary.json", json.dumps(summary, indent=1, default=str))
    return path


def notebooks_with_outputs(paths) -> list[str]:
    """Notebooks among `paths` that hold outputs or execution counts (they must be committed clean)."""
    dirty = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        cells = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
        if cells:
            dirty.append(f"{path}: cells {cells} have outputs (clear them: jupyter nbconvert --clear-output --inplace {path})")
    return dirty


def _parse_parameter(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. -p data_root=/data/cityscapes), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a plain string (a path, a name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ifrvp_core.workbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="tiny | quick | full (default quick)")
    parser.add_argument("--reports", default=str(REPO / "reports"), help="output folder (default <repo>/reports)")
    parser.add_argument("--work_dir", default=None, help="data and runs (default <repo>/workbook_runs/<profile>)")
    parser.add_argument("--only", nargs="+", help="notebook numbers or names to run, e.g. 04 05")
    parser.add_argument("-p", "--parameter", action="append", type=_parse_parameter, default=[],
                        help="NAME=VALUE passed to every notebook whose parameters cell has NAME (JSON values allowed); repeat it")
    parser.add_argument("--kernel", default=KERNEL_NAME)
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--check-clean", nargs="*", metavar="NOTEBOOK",
                        help="only check that notebooks (default: notebooks/*.ipynb) have no outputs; exit 1 if some do")
    args = parser.parse_args(argv)
    if args.check_clean is not None:
        dirty = notebooks_with_outputs(args.check_clean or sorted(NOTEBOOKS_DIR.glob("*.ipynb")))
        for line in dirty:
            print(line, file=sys.stderr)
        return 1 if dirty else 0
    try:
        result = run_workbook(args.profile, args.reports, args.work_dir, args.only, dict(args.parameter), args.kernel,
                              timeout_s=args.timeout)
    except WorkbookError as error:
        print(f"workbook FAILED: {error}", file=sys.stderr)
        return 1
    print(f"workbook finished in {result.seconds / 60:.1f} min; open {result.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
