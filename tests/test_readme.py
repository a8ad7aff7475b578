"""The README's commands work as printed: every command of its code blocks runs here, at tiny size.

Each `bash` block command runs in README order in one working folder (later commands read what
earlier ones wrote, as a user's would), with three kinds of change only:
- dataset roots under `/data/` point at fake datasets with the real layout (`fake_datasets`);
- size flags are appended (argparse keeps the last value): one training step of batch 1 on 32-pixel
  crops, one evaluation sample, small shards, a synthetic set of two small clips;
- process counts shrink: `--nproc_per_node` to 1 or 2 (gloo on the CPU), and the many-node command
  starts its two nodes here, as two torchrun agents meeting at a c10d rendezvous on 127.0.0.1.
`make` targets are run by other tests at their tiny profile (`COVERED`). The `python` blocks run
as they are, next to stand-in checkpoint files. The README's structure is checked as well.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fake_datasets as fake
from ifrvp_core.checkpoint import model_checkpoint
from ifrvp_core.models import build_model
from ports import free_port

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent

# make targets: each is the suite's own command or is run at its tiny profile by the named test
COVERED = {
    "make test": "the suite itself (.ci/run calls it)",
    "make workbook": "tests/test_notebooks.py runs notebooks 01-05 through the same runner (tiny profile)",
}
TRAIN_TINY = ["--max_steps", "1", "--batch_size", "1", "--crop_size", "32", "--num_workers", "0", "--val_samples", "1",
              "--val_batch_size", "1", "--log_interval", "1"]
EVALUATE_TINY = ["--max_samples", "1", "--batch_size", "1"]
PACK_TINY = ["--shard_size", "1KiB"]  # one sample per shard: enough shards for two nodes
SYNTHETIC_TINY = ["--num_clips", "2", "--test_clips", "1", "--size", "64x48"]
FAKE_DATA = {  # the README's dataset roots -> fake datasets of the same layout
    "/data/cityscapes": lambda root: fake.cityscapes(fake.cityscapes(root, "val", size=(16, 32)), "train",
                                                     snippets=(("aachen", "000000", 0, 4),), size=(16, 32)),
    "/data/kitti_raw": lambda root: fake.kitti(root, test_lengths={d: 9 for d in fake.KITTI_TEST_LENGTHS}),
    "/data/vimeo_septuplet": lambda root: fake.vimeo_triplet(
        root, train=tuple(f"00002/{i:04d}" for i in range(1, 9)), size=(48, 64)),
}


# ----------------------------------------------------------------------------- reading the README
def code_blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def block_commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def readme_commands() -> list[str]:
    return [command for block in code_blocks("bash") for command in block_commands(block)]


# ----------------------------------------------------------------------------- the working folder

def moving_clip(path: Path, frames: int = 12, size=(64, 96)) -> Path:
    """A small MP4 of a textured square moving right 2 px per frame."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (size[0], size[1] + 2 * frames, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (size[1], size[0]))
    for i in range(frames):
        writer.write(np.ascontiguousarray(background[:, 2 * i : 2 * i + size[1]]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One folder for the whole README: stand-in inputs, fake datasets, and the environment to run in."""
    root = tmp_path_factory.mktemp("readme")
    data = root / "datasets"
    for readme_root, make in FAKE_DATA.items():
        make(data / readme_root.strip("/").replace("/", "_"))
    (root / "configs").symlink_to(REPO / "configs")  # the README's commands run from the repository's root
    moving_clip(root / "clip.mp4")
    model = build_model("IFRNet_T", motion_prior="dis")
    torch.save(model_checkpoint(model), root / "best.pt")
    torch.save(build_model("IFRNet").state_dict(), root / "IFRNet_Vimeo90K.pth")  # the official files' layout
    env = dict(os.environ, IFRVP_DATA=str(root / "cache"), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return {"root": root, "data": data, "env": env}


def local_paths(command: str, data: Path) -> str:
    """`/data/X...` -> the fake dataset standing in for `/data/X`; outputs elsewhere under /data go next to them."""
    return re.sub(r"(?<![\w.])/data/([\w.-]+)", lambda m: str(data / f"data_{m.group(1)}"), command)


def program(name: str) -> list[str]:
    """The installed console script (what a user runs), or its module when the script is not installed."""
    modules = {"ifrvp": "ifrvp_core.cli", "ifrvp-train": "ifrvp_core.train", "torchrun": "torch.distributed.run"}
    script = BIN / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", modules[name]]


def tiny_argv(command: str, data: Path) -> tuple[list[list[str]], str]:
    """The processes to start for one README command (two for a two-node torchrun), and its kind."""
    words = shlex.split(local_paths(command, data))
    name, args = words[0], words[1:]
    if name == "ifrvp" and args[:1] == ["train"] or name == "ifrvp-train":
        return [program(name) + args + TRAIN_TINY], "train"
    if name == "ifrvp" and args[:1] == ["evaluate"]:
        return [program(name) + args + EVALUATE_TINY], "evaluate"
    if name == "ifrvp" and args[:2] == ["prep", "pack"]:
        return [program(name) + args + PACK_TINY], "pack"
    if name == "ifrvp" and args[:2] == ["prep", "make_synthetic"]:
        return [program(name) + args + SYNTHETIC_TINY], "make_synthetic"
    if name == "ifrvp":
        return [program(name) + args], args[0]
    if name == "torchrun":
        nodes = next((int(a.split("=")[1]) for a in args if a.startswith("--nnodes=")), 1)
        port = free_port()
        launch = []
        for a in args:
            if a.startswith("--nproc_per_node="):
                a = f"--nproc_per_node={1 if nodes > 1 else 2}"
            elif a.startswith("--rdzv_endpoint="):
                a = f"--rdzv_endpoint=127.0.0.1:{port}"
            launch.append(a)
        if nodes == 1:
            launch = [f"--master_port={port}"] + launch
        argv = program("torchrun") + launch + TRAIN_TINY
        return [argv] * nodes, f"torchrun x{nodes}"
    raise AssertionError(f"README command {command!r}: no tiny form here; add one to tests/test_readme.py")


# ----------------------------------------------------------------------------- the tests
def test_every_readme_command_has_a_tiny_run():
    commands = readme_commands()
    assert len(commands) >= 10, commands
    for command in commands:
        if command not in COVERED:
            tiny_argv(command, Path("/tmp"))  # raises for a command this file cannot run


@pytest.mark.parametrize("index", range(len(readme_commands())), ids=lambda i: readme_commands()[i][:60])
def test_readme_command_runs(index, workspace):
    command = readme_commands()[index]
    if command in COVERED:
        pytest.skip(f"{command}: {COVERED[command]}")
    processes, kind = tiny_argv(command, workspace["data"])
    running = [subprocess.Popen(argv, cwd=workspace["root"], env=workspace["env"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for argv in processes]
    outputs = [p.communicate(timeout=600)[0] for p in running]
    for process, output in zip(running, outputs):
        errors = "\n".join(line for line in output.splitlines() if "rror" in line)
        assert process.returncode == 0, f"README command failed ({kind}): {command}\n{errors[-3000:]}\n{output[-2000:]}"
    root = workspace["root"]
    if command.startswith("ifrvp predict"):
        assert (root / "future.gif").is_file()
    if kind == "evaluate":
        out = shlex.split(command)[shlex.split(command).index("--output") + 1]
        assert (root / local_paths(out, workspace["data"])).is_file()


def test_readme_python_blocks_run(workspace, monkeypatch):
    monkeypatch.chdir(workspace["root"])
    for block in code_blocks("python"):
        exec(compile(block, "README.md", "exec"), {})


def test_readme_leads_with_contents_two_setup_commands_and_no_outside_paths():
    text = README.read_text()
    assert "## Contents" in text
    setup = text.split("## Set up and run", 1)[1]
    assert block_commands(code_blocks("bash")[0]) == ["make workbook", "make test"]
    assert setup.index("```bash") < setup.index("## ")
    assert "../" not in text, "the README points outside the repository"
    assert not re.search(r"\bissue \d+|#\d+\b", text, flags=re.I), "the README refers to issue numbers"
    for link in re.findall(r"\]\(([^)#]+)", text):
        if not link.startswith("http"):
            assert (REPO / link).exists(), f"README links to a missing file: {link}"
