"""The workbook as people use it: JupyterLab in a real (headless) Chromium, driven with Selenium.

`jupyter lab` runs from this interpreter's environment on 127.0.0.1 (random port, random token)
with the `ifrvp` kernel. Notebook 04 runs with the tiny profile on inputs prepared the way
notebooks 01 and 03 prepare them; its ipywidgets explorer must redraw when the sample slider and
the layer selector move, and again after "Restart Kernel and Run All Cells". Notebook 03 must show
its progress bar and live curves while training runs, and interrupting the kernel must stop every
training process. Screenshots go to `<pytest tmp folder>/jupyterlab-screenshots*/`.

Without Chromium, chromedriver or selenium the tests skip and say how to install them; CI sets
IFRVP_REQUIRE_BROWSER=1 (`.ci/run`), which turns that skip into a failure.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ports import free_port

REPO = Path(__file__).resolve().parent.parent
INSTALL_HELP = (
    "install a browser for the JupyterLab test: `sudo apt-get install chromium chromium-driver` (Debian/Ubuntu) "
    "and `pip install selenium` (in the project's venv: `make install`); or point IFRVP_CHROMIUM and "
    "IFRVP_CHROMEDRIVER at a Chromium/Chrome binary and its matching chromedriver"
)
REQUIRED = os.environ.get("IFRVP_REQUIRE_BROWSER", "") not in ("", "0")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _unavailable(reason: str):
    message = f"{reason}; {INSTALL_HELP}"
    if REQUIRED:
        pytest.fail(f"IFRVP_REQUIRE_BROWSER is set but the browser test cannot run: {message}", pytrace=False)
    pytest.skip(message)


def find_browser() -> tuple[str, str]:
    """(Chromium binary, chromedriver) from IFRVP_CHROMIUM / IFRVP_CHROMEDRIVER or the PATH."""
    browser = os.environ.get("IFRVP_CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
         if (found := shutil.which(name))), None)
    driver = os.environ.get("IFRVP_CHROMEDRIVER") or shutil.which("chromedriver") or next(
        (path for path in ("/usr/lib/chromium/chromedriver", "/usr/lib/chromium-browser/chromedriver") if os.path.isfile(path)), None)
    if not browser:
        _unavailable("no Chromium or Chrome found (looked for chromium, chromium-browser, google-chrome on the PATH)")
    if not driver:
        _unavailable(f"found the browser {browser} but no chromedriver")
    return browser, driver


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def selenium_webdriver():
    try:
        from selenium import webdriver
    except ImportError:
        _unavailable("the Python package selenium is not installed")
    return webdriver


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Notebook 01's outputs (tiny synthetic data) and a short notebook-03 run: what notebook 04 reads."""
    from ifrvp_core.launch import launch_training
    from ifrvp_core.workbook.data_views import prepare_dataset
    from ifrvp_core.workbook.profiles import profile_settings, write_json

    root = tmp_path_factory.mktemp("jupyterlab")
    work = root / "work"
    settings = profile_settings("tiny")
    info = prepare_dataset(settings["dataset"], None, work, settings, progress=False)  # what notebook 01 runs
    result = launch_training(  # what notebook 03 runs (one process, two steps: the explorer needs a checkpoint)
        nproc=1, model_name=settings["model_name"], dataset=info["dataset"], data_root=info["data_root"], max_steps=2,
        batch_size=settings["batch_size"], crop_size=settings["crop_size"], num_workers=0, val_samples=2,
        log_path=str(work / "runs"), run_name="workbook", echo=False, env={"OMP_NUM_THREADS": "1"},
    )
    write_json(work / "training.json", {"run_dir": str(result.run_dir), "checkpoint": str(result.run_dir / "best.pt"),
                                        "summary": result.summary, "nproc": 1})
    lab_root = root / "lab"
    lab_root.mkdir()
    return root, work, lab_root


def _parametrised_copy(name: str, folder: Path, **values) -> Path:
    """notebooks/<name>.ipynb with `values` assigned at the end of its parameters cell (as papermill does)."""
    notebook = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source += "\n# set by tests/test_jupyterlab.py\n" + "".join(f"{key} = {value!r}\n" for key, value in values.items())
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path



@pytest.fixture(scope="module")
def lab(workspace):
    """`jupyter lab` of this environment on 127.0.0.1, a random port and token; yields (process, base URL, token)."""
    root, _, lab_root = workspace
    port, token = free_port(), secrets.token_hex(16)
    state = root / "jupyter-state"  # JupyterLab's settings and workspaces of this test only
    settings = {  # start the notebook's own kernel (ifrvp) without asking; no "get notified about news?" toast
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    }
    for relative, values in settings.items():
        (state / "settings" / relative).parent.mkdir(parents=True, exist_ok=True)
        (state / "settings" / relative).write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime")}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}", "--LabApp.news_url=",
               "--KernelManager.transport_encryption=auto"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(root / "jupyterlab.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=lab_root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"jupyter lab did not start ({' '.join(command)}):\n{(root / 'jupyterlab.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield process, url, token
    process.send_signal(signal.SIGTERM)  # the server shuts its kernels down
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def browser(selenium_webdriver):
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = find_browser()
    options = selenium_webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    try:
        driver = selenium_webdriver.Chrome(service=Service(chromedriver), options=options)
    except Exception as error:  # noqa: BLE001 - a broken or mismatched browser install
        _unavailable(f"Chromium {chromium} with {chromedriver} did not start: {str(error).splitlines()[0]}")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jupyterlab-screenshots")
    print(f"JupyterLab screenshots: {folder}")
    return folder


# ----------------------------------------------------------------------------- driving JupyterLab
def wait_for(condition, timeout: float, what: str, driver=None, screenshot: Path | None = None):
    """Poll `condition()` until it returns something truthy; on timeout fail naming `what` (and save a screenshot)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if driver is not None and screenshot is not None:
                driver.save_screenshot(str(screenshot))
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (screenshot {screenshot})" if screenshot else ""))
        time.sleep(0.25)


def kernel_status(driver) -> str | None:
    return driver.execute_script(
        "const e = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator'); return e && e.dataset.status")


def prompts(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]"
        ".map(e => e.textContent.trim())")


def all_cells_ran(driver) -> bool:
    shown = prompts(driver)
    return bool(shown) and kernel_status(driver) == "idle" and all(p not in ("[ ]:", "[*]:", "") for p in shown)


def open_notebook(driver, url: str, token: str, name: str, screenshots: Path) -> None:
    driver.get(f"{url}/lab/tree/{name}.ipynb?token={token}")
    wait_for(lambda: kernel_status(driver) == "idle" and prompts(driver), 120, f"the ifrvp kernel of {name} to start", driver,
             screenshots / f"{name}-start.png")
    time.sleep(1.0)  # a "Select Kernel" dialog may still come up; its default is the notebook's own kernel, ifrvp
    for dialog in driver.find_elements("css selector", ".jp-Dialog"):
        assert "IFRVP" in dialog.text, dialog.text
        dialog.find_element("css selector", ".jp-mod-accept").click()
    # JupyterLab restores earlier tabs too; the menus act on the notebook that last had the focus
    driver.find_element("css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell").click()
    wait_for(lambda: driver.execute_script(
        "const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)'); return p && p.contains(document.activeElement)"),
        10, f"{name} to have the focus")


def run_all(driver, screenshot: Path) -> None:
    menu(driver, "Run", "Run All Cells")
    wait_for(lambda: any(p != "[ ]:" for p in prompts(driver)), 30, "Run All Cells to start", driver, screenshot)


def menu(driver, top: str, item: str) -> None:
    """Click `top` in JupyterLab's menu bar, then the entry whose label starts with `item`."""
    (entry,) = [e for e in driver.find_elements("css selector", ".lm-MenuBar-itemLabel") if e.text == top]
    entry.click()
    found = wait_for(lambda: [e for e in driver.find_elements("css selector", ".lm-Menu-itemLabel") if e.text.startswith(item)],
                     10, f"menu entry {top} > {item}")
    found[0].click()


def saved_notebook(driver, path: Path):
    """Save the open notebook (File > Save) and read it back from disk."""
    before = path.stat().st_mtime_ns
    menu(driver, "File", "Save Notebook")
    wait_for(lambda: path.stat().st_mtime_ns != before, 20, f"{path.name} to be saved")
    time.sleep(0.3)
    return nbformat.read(path, as_version=4)


def errors_in(notebook) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in notebook.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


EXPLORER = ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-vbox"


def explorer_image(driver) -> str | None:
    """The explorer's current picture: the src (base64 PNG) of the <img> in its Output widget."""
    return driver.execute_script(
        f"const img = [...document.querySelectorAll('{EXPLORER} .widget-output img')].pop(); return img ? img.src : null")


def explorer_readout(driver) -> str | None:
    return driver.execute_script(f"const r = document.querySelector('{EXPLORER} .widget-readout'); return r && r.textContent.trim()")


def png_of(source: str) -> bytes:
    assert source.startswith("data:image/png;base64,"), source[:60]
    data = base64.b64decode(source.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def move_slider_right(driver) -> None:
    from selenium.webdriver.common.keys import Keys

    handle = driver.find_element("css selector", f"{EXPLORER} .widget-slider .noUi-handle")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
    handle.send_keys(Keys.ARROW_RIGHT)


def choose_layer(driver, index: int) -> str:
    from selenium.webdriver.support.ui import Select

    select = Select(driver.find_element("css selector", f"{EXPLORER} .widget-dropdown select"))
    select.select_by_index(index)
    return select.first_selected_option.text


def explorer_screenshot(driver, path: Path) -> bytes:
    element = driver.find_element("css selector", EXPLORER)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.screenshot(str(path))
    return path.read_bytes()


# ----------------------------------------------------------------------------- the tests
def test_training_notebook_shows_progress_and_curves_and_interrupt_stops_the_processes(browser, workspace, lab, screenshots):
    import psutil

    _, work, lab_root = workspace
    server, url, token = lab
    name = "03_training_ddp"
    path = _parametrised_copy(name, lab_root, profile="tiny", work_dir=str(work), max_steps=5000, run_name="browser")
    open_notebook(browser, url, token, name, screenshots)
    run_all(browser, screenshots / f"{name}-run-all.png")

    def training_processes():
        found = []
        for child in psutil.Process(server.pid).children(recursive=True):
            try:
                if "ifrvp_core.train" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    # torchrun and its two workers run under the kernel
    processes = wait_for(lambda: (found := training_processes()) and len(found) >= 3 and found, 90,
                         "torchrun and 2 training workers under the kernel", browser, screenshots / f"{name}-no-processes.png")
    training_cell = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell"
    bar = ".jp-OutputArea-output .widget-hprogress .progress-bar, .jp-OutputArea-output .widget-hprogress progress"
    wait_for(lambda: browser.execute_script(f"return document.querySelectorAll('{training_cell} .widget-hprogress').length > 0"),
             90, "the training progress bar (ipywidgets, from tqdm.auto)", browser, screenshots / f"{name}-no-bar.png")
    curves = wait_for(lambda: browser.execute_script(
        f"return [...document.querySelectorAll('{training_cell} .jp-OutputArea-output img')].map(i => i.src)"
        ".filter(s => s.startsWith('data:image/png')).length"), 120,
        "the live training curves (a PNG in the training cell's output)", browser, screenshots / f"{name}-no-curves.png")
    assert curves >= 1
    # the bar moves while the cell runs: its text shows the steps done (at least one) out of the trainer's total
    def steps_done():
        text = browser.execute_script(
            f"const b = document.querySelector('{training_cell} .widget-hprogress'); return b && b.parentElement.textContent") or ""
        found = re.search(r"(\d+)/5000", text)
        return found and int(found.group(1)) >= 1 and text

    progress_text = wait_for(steps_done, 90, "the progress bar to count training steps", browser, screenshots / f"{name}-bar-text.png")
    assert "training" in progress_text, progress_text
    assert browser.execute_script(f"return document.querySelectorAll('{bar}').length") >= 1
    assert kernel_status(browser) == "busy" and all(p.is_running() for p in processes)
    browser.execute_script(f"document.querySelector('{training_cell} .widget-hprogress').scrollIntoView({{block: 'start'}})")
    browser.save_screenshot(str(screenshots / f"{name}-training.png"))

    menu(browser, "Kernel", "Interrupt Kernel")
    gone, alive = psutil.wait_procs(processes, timeout=60)
    assert alive == [], f"training processes still running 60 s after the interrupt: {[p.pid for p in alive]}"
    assert training_processes() == []
    wait_for(lambda: kernel_status(browser) == "idle", 60, "the kernel to be idle after the interrupt", browser, screenshots / f"{name}-busy.png")
    browser.save_screenshot(str(screenshots / f"{name}-interrupted.png"))
    assert (work / "runs" / "browser" / "latest.pt").is_file()  # the trainer saved on SIGTERM
    notebook = saved_notebook(browser, path)
    assert [e.split(":")[0] for e in errors_in(notebook)] == ["KeyboardInterrupt"]


def test_explorer_redraws_for_slider_and_layer_and_after_a_kernel_restart(browser, workspace, lab, screenshots):
    _, work, lab_root = workspace
    _, url, token = lab
    name = "04_flow_warp_visualisation"
    path = _parametrised_copy(name, lab_root, profile="tiny", work_dir=str(work), samples=1, rollout_steps=2)
    open_notebook(browser, url, token, name, screenshots)
    run_all(browser, screenshots / f"{name}-run-all.png")
    wait_for(lambda: all_cells_ran(browser) and explorer_image(browser), 240, "notebook 04 to run", browser, screenshots / f"{name}-run.png")
    notebook = saved_notebook(browser, path)
    assert errors_in(notebook) == []
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))

    first = explorer_image(browser)
    assert explorer_readout(browser) == "0"
    shot_0 = explorer_screenshot(browser, screenshots / "explorer-sample-0.png")
    move_slider_right(browser)
    wait_for(lambda: explorer_readout(browser) == "1", 20, "the sample slider to move to 1", browser, screenshots / "slider.png")
    second = wait_for(lambda: (src := explorer_image(browser)) and src != first and src, 60, "the explorer to redraw for sample 1",
                      browser, screenshots / "slider-redraw.png")
    assert png_of(second) != png_of(first)
    shot_1 = explorer_screenshot(browser, screenshots / "explorer-sample-1.png")
    assert hashlib.sha256(shot_0).digest() != hashlib.sha256(shot_1).digest()  # the two screenshots show different pictures

    label = choose_layer(browser, 1)
    assert label.startswith("flow level 0")
    third = wait_for(lambda: (src := explorer_image(browser)) and src != second and src, 60, "the explorer to draw the flow layer",
                     browser, screenshots / "layer-redraw.png")
    assert png_of(third) not in (png_of(first), png_of(second))
    explorer_screenshot(browser, screenshots / "explorer-sample-1-flow.png")

    # restart the kernel and run everything again: the explorer is rebuilt from the files on disk alone
    menu(browser, "Kernel", "Restart Kernel and Run All Cells")
    wait_for(lambda: browser.find_elements("css selector", ".jp-Dialog .jp-mod-accept"), 10, "the restart dialog")[0].click()
    wait_for(lambda: kernel_status(browser) != "idle" or "[*]:" in prompts(browser) or not explorer_image(browser), 60,
             "the restart to begin", browser, screenshots / f"{name}-restart.png")
    wait_for(lambda: all_cells_ran(browser) and explorer_image(browser) and explorer_readout(browser) == "0", 240,
             "notebook 04 to rerun after the restart", browser, screenshots / f"{name}-rerun.png")
    code_cells = sum(c.cell_type == "code" for c in notebook.cells)
    assert prompts(browser) == [f"[{n}]:" for n in range(1, code_cells + 1)]  # a fresh kernel ran every cell once
    assert explorer_image(browser) == first  # same checkpoint, same sample, same picture
    move_slider_right(browser)
    wait_for(lambda: explorer_readout(browser) == "1", 20, "the slider to move after the restart")
    after = wait_for(lambda: (src := explorer_image(browser)) and src != first and src, 60, "the explorer to redraw after the restart",
                     browser, screenshots / "restart-redraw.png")
    assert after == second
    explorer_screenshot(browser, screenshots / "explorer-after-restart-sample-1.png")
    assert errors_in(saved_notebook(browser, path)) == []


def test_missing_browser_skips_with_install_help_or_fails_when_required(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("IFRVP_CHROMIUM", raising=False)
    monkeypatch.delenv("IFRVP_CHROMEDRIVER", raising=False)
    module = sys.modules[__name__]
    for required, outcome in ((False, pytest.skip.Exception), (True, pytest.fail.Exception)):
        monkeypatch.setattr(module, "REQUIRED", required)
        with pytest.raises(outcome, match="apt-get install chromium chromium-driver"):
            find_browser()
