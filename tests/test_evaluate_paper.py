"""Evaluation for papers: the scored frames as PNGs (--save_images) and torchrun evaluation that
writes what one process writes."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ifrvp_core import eval_ranks
from ifrvp_core import evaluate as E
from ifrvp_core import protocols as P
from ifrvp_core import rollout as R
from ifrvp_core.cli import main
from ifrvp_core.quantise import to_uint8
from ifrvp_core.sample_images import INDEX_FILE, method_file_names, safe_name
from ports import free_port

REPO = Path(__file__).resolve().parent.parent
METHODS = ("model", "copy_last", "dis_extrapolation", "prior_only")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 synthetic test clips (one 4-frame window each at 64x96) and a seeded IFRNet_T checkpoint."""
    from ifrvp_core.checkpoint import model_checkpoint, save_atomic
    from ifrvp_core.data.synthetic import write_synthetic
    from ifrvp_core.models import build_model

    root = tmp_path_factory.mktemp("paper")
    write_synthetic(root, "test", 5, num_frames=5, height=64, width=96, seed=5, progress=False)
    torch.manual_seed(0)
    checkpoint = root / "tiny.pt"
    save_atomic(model_checkpoint(build_model("IFRNet_T")), checkpoint)
    return root, checkpoint


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_safe_names_and_method_file_names():
    assert safe_name("frankfurt/000001 left:img") == "frankfurt_000001_left_img"
    assert safe_name("clip_00000/00000") == "clip_00000_00000"
    assert safe_name("../..") == "sample" and safe_name("") == "sample"
    assert safe_name("é" * 300) == "sample" and len(safe_name("a" * 300)) == 120
    assert method_file_names(["model", "copy-last", "IFRNet S+prior"]) == {
        "model": "model", "copy-last": "copy-last", "IFRNet S+prior": "IFRNet_S+prior"}
    with pytest.raises(ValueError, match="'a/b' and 'a b' would both write t\\+k_a_b.png"):
        method_file_names(["a/b", "a b"])
    with pytest.raises(ValueError, match="method 'target' would write t\\+k_target.png"):
        method_file_names(["target"])


def test_shards_cover_every_sample_once_in_rank_order():
    assert eval_ranks.shard(list(range(5)), 0, 2) == [0, 2, 4] and eval_ranks.shard(list(range(5)), 1, 2) == [1, 3]
    assert eval_ranks.shard([0], 1, 2) == []  # a rank past the sample count scores nothing (rank 0 never)
    assert eval_ranks.rank_and_world() == (0, 1) and eval_ranks.rank_and_world(False) == (0, 1)
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        eval_ranks.rank_and_world(True)
    assert eval_ranks.gather({"a": 1}, 1) == [{"a": 1}]


def test_save_images_writes_the_scored_frames_and_leaves_the_scores_unchanged(data, tmp_path, monkeypatch):
    from ifrvp_core.checkpoint import load_model

    root, checkpoint = data
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    model = load_model(checkpoint)
    dataset = P.get_protocol("synthetic").build_dataset(root, steps=2)
    options = dict(steps=2, batch_size=2, device="cpu", progress=False, metrics=("psnr", "ssim"))
    folder = tmp_path / "images"
    saved = E.evaluate_model(model, dataset, save_images=folder, **options)
    plain = E.evaluate_model(model, dataset, **options)

    # The option changes no number.
    assert dict(saved) == dict(plain) and saved.meta == plain.meta
    assert saved.sample_indices == plain.sample_indices == [0, 1, 2, 3, 4]
    for method in METHODS:
        for step, values in plain.per_sample[method].items():
            for metric, scores in values.items():
                assert np.array_equal(saved.per_sample[method][step][metric], scores), (method, step, metric)

    # Every sample, step and method has its file; the index names every folder.
    rows = list(csv.DictReader((folder / INDEX_FILE).open()))
    assert [(int(r["index"]), r["name"]) for r in rows] == [(i, dataset[i]["name"]) for i in range(5)]
    assert [r["folder"] for r in rows] == [f"{i:05d}_clip_{i:05d}_00000" for i in range(5)]
    expected = {"context_0.png", "context_1.png"} | {f"t+{k}_{m}.png" for k in (1, 2) for m in METHODS + ("target",)}
    for row in rows:
        assert {p.name for p in (folder / row["folder"]).iterdir()} == expected, row["folder"]

    # Each PNG is exactly the uint8 quantisation of the scored tensor: sample 3, rolled out in the
    # batch it was scored in (samples 2 and 3), by every method.
    context = torch.stack([dataset[i]["context"] for i in (2, 3)])
    methods = R.standard_methods(model, True)
    sample = folder / rows[3]["folder"]
    for method in METHODS:
        with torch.inference_mode():
            predictions = R.rollout(methods[method], context, 2)
        for k in (1, 2):
            written = _read_png(sample / f"t+{k}_{method}.png")
            assert written.dtype == np.uint8 and written.shape == (64, 96, 3)
            assert np.array_equal(written, to_uint8(predictions[1, k - 1].clamp(0, 1))), (method, k)
    # ...and the inputs are the dataset's own 8-bit frames, read independently from its files.
    files = dataset.sample_files(3)
    for k in (1, 2):
        assert np.array_equal(_read_png(sample / f"t+{k}_target.png"), _read_png(Path(files["target"][k - 1])))
    for i in (0, 1):
        assert np.array_equal(_read_png(sample / f"context_{i}.png"), _read_png(Path(files["context"][i])))
    assert np.array_equal(_read_png(sample / "t+2_copy_last.png"), _read_png(Path(files["context"][1])))
    # The model's prediction is not a copy of its input (the comparison above has teeth).
    assert not np.array_equal(_read_png(sample / "t+1_model.png"), _read_png(sample / "t+1_copy_last.png"))

    # A folder that holds files is refused before anything is scored, naming the option.
    with pytest.raises(ValueError, match=r"save_images folder .*images is not empty"):
        E.evaluate({"copy_last": R.copy_last}, dataset, steps=1, progress=False, save_images=folder)
    assert main(["evaluate", "--checkpoint", "none", "--baselines", "--dataset", "synthetic", "--data_root", str(root),
                 "--output", str(tmp_path / "r.json"), "--save-images", str(folder), "--no-progress"]) == 2
    assert not (tmp_path / "r.json").exists()



def _evaluate_command(tmp_path: Path, name: str, ranks: int, arguments: list[str]) -> subprocess.CompletedProcess:
    """`ifrvp evaluate ARGUMENTS --output NAME/r.json --save_images NAME/images`, in one process or under torchrun."""
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={ranks}", f"--master_port={free_port()}"]
    command = launcher + ["-m", "ifrvp_core.cli", "evaluate", *arguments, "--output", str(tmp_path / name / "r.json"),
                          "--save_images", str(tmp_path / name / "images"), "--no_progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TORCH_HOME": str(tmp_path / "no_weights")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _images(folder: Path) -> dict:
    return {str(p.relative_to(folder)): _read_png(p) for p in sorted(folder.rglob("*.png"))}


def test_torchrun_ranks_write_the_files_one_process_writes(data, tmp_path):
    """2 gloo ranks (samples 0, 2, 4 and 1, 3) write byte for byte the results of one process, and
    the same PNGs between them; a rank without samples (1 sample, 2 ranks) changes nothing either."""
    root, checkpoint = data
    arguments = ["--checkpoint", str(checkpoint), "--baselines", "--dataset", "synthetic", "--data_root", str(root),
                 "--steps", "2", "--batch_size", "2", "--device", "cpu"]
    one = _evaluate_command(tmp_path, "one", 1, arguments)
    two = _evaluate_command(tmp_path, "two", 2, arguments)

    assert two.stdout.count("protocol synthetic: 5 samples, t+1..t+2, model = IFRNet_T, 2 ranks") == 1  # rank 0 alone prints
    assert "protocol synthetic: 5 samples, t+1..t+2, model = IFRNet_T\n" in one.stdout
    # The same bytes: per-sample scores do not depend on the rank, and every mean is one float64 sum
    # over them in sample order (`evaluate`), so not even the summation order differs.
    for name in ("r.json", "r.csv", "r_per_sample.csv", f"images/{INDEX_FILE}"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    results = json.loads((tmp_path / "two" / "r.json").read_text())
    assert results["meta"]["samples"] == 5 and list(results) == ["meta", *METHODS]
    assert 5 < results["model"]["t+1"]["psnr"] < 60
    rows = list(csv.DictReader((tmp_path / "two" / "r_per_sample.csv").open()))
    assert [int(r["index"]) for r in rows if (r["method"], r["step"], r["metric"]) == ("model", "t+1", "psnr")] == [0, 1, 2, 3, 4]
    # Both ranks' samples are there (each rank wrote its own), equal to the one-process images.
    one_images, two_images = _images(tmp_path / "one" / "images"), _images(tmp_path / "two" / "images")
    assert list(two_images) == list(one_images) and len(one_images) == 5 * (2 + 2 * 5)
    for path, image in one_images.items():
        assert np.array_equal(two_images[path], image), path

    baselines = ["--checkpoint", "none", "--baselines", "--dataset", "synthetic", "--data_root", str(root), "--steps", "1",
                 "--max_samples", "1"]
    _evaluate_command(tmp_path, "single", 1, baselines)
    _evaluate_command(tmp_path, "idle_rank", 2, baselines)
    assert (tmp_path / "idle_rank" / "r.json").read_bytes() == (tmp_path / "single" / "r.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "idle_rank" / "images").iterdir()) == ["00000_clip_00000_00000", INDEX_FILE]
