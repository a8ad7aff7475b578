"""Readers on tiny fixture datasets in the published layouts, bad input, augmentations, determinism."""
import json
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from data_prep import compute_teacher_flow, verify_dataset
from data_prep.__main__ import main as data_prep_main
from ifrvp_core.data import DataError, build_dataset, collate, make_loader, read_image, set_loader_epoch
from ifrvp_core.data.augment import AugmentConfig
from ifrvp_core.warp import backward_warp

H, W = 32, 48


def frame(value: int, h=H, w=W) -> np.ndarray:
    rng = np.random.default_rng(value)
    base = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def vimeo(tmp_path):
    root = tmp_path / "vimeo_septuplet"
    entries = ["00001/0001", "00001/0002", "00002/0001"]
    for n, entry in enumerate(entries):
        for i in range(1, 8):
            write_png(root / "sequences" / entry / f"im{i}.png", frame(100 * n + i))
    (root / "sep_trainlist.txt").write_text("\n".join(entries[:2]) + "\n")
    (root / "sep_testlist.txt").write_text(entries[2] + "\n")
    return root


def test_vimeo_septuplet_train_and_test_windows(vimeo):
    train = build_dataset("vimeo90k", vimeo, "train")
    assert len(train) == 2 * 5  # every window of 3 inside 7 frames
    test = build_dataset("vimeo90k", vimeo, "test")
    assert len(test) == 1
    files = test.sample_files(0)
    assert [Path(p).name for p in files["context"]] == ["im1.png", "im2.png"]
    assert [Path(p).name for p in files["target"]] == ["im3.png"]
    sample = test[0]
    assert sample["context"].shape == (2, 3, H, W) and sample["target"].shape == (1, 3, H, W)
    assert sample["target_times"].tolist() == [2.0]
    assert torch.equal(sample["target"][0], torch.from_numpy(frame(203)).permute(2, 0, 1).float() / 255)


def test_vimeo_triplet_interpolation(tmp_path):
    root = tmp_path / "vimeo_triplet"
    for i in range(1, 4):
        write_png(root / "sequences/00001/0001" / f"im{i}.png", frame(i))
    (root / "tri_testlist.txt").write_text("00001/0001\n")
    test = build_dataset("vimeo90k", root, "test", task="interpolate")
    files = test.sample_files(0)
    assert [Path(p).name for p in files["context"] + files["target"]] == ["im1.png", "im3.png", "im2.png"]
    assert test[0]["target_times"].tolist() == [0.5]


def test_gopro_stride_and_sharp_folder(tmp_path):
    root = tmp_path / "GOPRO"
    for i in range(40):
        write_png(root / "test" / "GOPR0384_11_00" / "sharp" / f"{i:06d}.png", frame(i))
    test = build_dataset("gopro", root, "test", future_frames=2, frame_stride=8)
    names = [Path(p).stem for p in test.sample_files(0)["context"] + test.sample_files(0)["target"]]
    assert names == ["000000", "000008", "000016", "000024"]
    assert len(test) == 1  # 4 frames x stride 8 span 25 frames; windows do not overlap in test


def test_cityscapes_snippets_and_evaluation_window(tmp_path):
    root = tmp_path / "cityscapes"
    for seq, start in (("000000", 0), ("000001", 100)):
        for n in range(start, start + 30):
            write_png(root / "leftImg8bit_sequence/val/frankfurt" / f"frankfurt_{seq}_{n:06d}_leftImg8bit.png", frame(n, 16, 32))
    val = build_dataset("cityscapes", root, "val", future_frames=5)
    assert len(val) == 2
    files = val.sample_files(1)
    numbers = [int(Path(p).name.split("_")[2]) for p in files["context"] + files["target"]]
    assert numbers == list(range(102, 109))  # DMVFN's protocol: frames 2, 3 -> 4..8 of the snippet (0-based)
    assert val[0]["context"].shape == (2, 3, 512, 1024)  # every frame resized to the protocol's 1024x512
    assert build_dataset("cityscapes", root, "val", resize=None)[0]["context"].shape == (2, 3, 16, 32)
    with pytest.raises(DataError, match="leftImg8bit_sequence/train"):
        build_dataset("cityscapes", root, "train")


def test_frames_folder_test_split_is_the_last_ten_percent(tmp_path):
    clip = tmp_path / "clip"
    for i in range(40):
        write_png(clip / f"{i:05d}.png", frame(i))
    train = build_dataset("frames", clip, "train")
    test = build_dataset("frames", clip, "test")
    last_train = max(int(Path(p).stem) for i in range(len(train)) for p in train.sample_files(i)["target"])
    first_test = min(int(Path(p).stem) for i in range(len(test)) for p in test.sample_files(i)["context"])
    assert last_train == 35 and first_test == 36  # 36 frames train (0..35), 4 test (36..39)
    assert len(test) == 1


def test_motion_strides_add_training_windows_with_larger_steps_between_frames(tmp_path):
    clip = tmp_path / "clip"
    for i in range(40):
        write_png(clip / f"{i:05d}.png", frame(i))
    plain = build_dataset("frames", clip, "train")
    strided = build_dataset("frames", clip, "train", motion_strides=3)
    steps = {}
    for i in range(len(strided)):
        files = strided.sample_files(i)
        numbers = [int(Path(p).stem) for p in files["context"] + files["target"]]
        steps.setdefault(numbers[1] - numbers[0], []).append(numbers)
        assert numbers[2] - numbers[1] == numbers[1] - numbers[0] and max(numbers) <= 35  # never into the test part
    # stride 1: the plain windows; strides 2 and 3: every window that fits in the 36 training frames
    assert {k: len(v) for k, v in steps.items()} == {1: len(plain), 2: 36 - 4, 3: 36 - 6}
    assert [plain.sample_files(i) for i in range(len(plain))] == [strided.sample_files(i) for i in range(len(plain))]
    assert len(build_dataset("frames", clip, "test", motion_strides=3)) == len(build_dataset("frames", clip, "test"))
    with pytest.raises(ValueError, match="motion_strides must be >= 1"):
        build_dataset("frames", clip, "train", motion_strides=0)


def test_video_file_is_read_lazily_like_its_frames(tmp_path):
    frames = [frame(i, 64, 96) for i in range(20)]
    video = tmp_path / "walk.mp4"
    with imageio.get_writer(video, fps=10, codec="libx264", quality=10, macro_block_size=1) as writer:
        for f in frames:
            writer.append_data(f)
    dataset = build_dataset("frames", video, "train")
    assert dataset.sample_files(0)["context"][0].endswith("walk.mp4#0")
    sample = dataset[5]
    truth = torch.from_numpy(np.stack(frames[5:8])).permute(0, 3, 1, 2).float() / 255
    got = torch.cat([sample["context"], sample["target"]])
    shifted = torch.from_numpy(np.stack(frames[4:7])).permute(0, 3, 1, 2).float() / 255
    error = (got - truth).abs().mean()
    assert error < 0.06 and error < 0.3 * (got - shifted).abs().mean()  # codec error only, right frames


def test_bad_input_errors_name_the_file(tmp_path, vimeo):
    (vimeo / "sequences/00002/0001/im2.png").unlink()
    with pytest.raises(DataError, match="00002/0001/im2.png"):
        build_dataset("vimeo90k", vimeo, "test")[0]
    with pytest.raises(DataError, match="list file not found: .*sep_trainlist.txt"):
        build_dataset("vimeo90k", tmp_path / "nowhere", "train", variant="septuplet")
    good = write_png(tmp_path / "good.png", frame(1))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match="truncated.png"):
        read_image(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="garbage.png"):
        read_image(garbage)
    mixed = tmp_path / "mixed"
    for i in range(3):
        write_png(mixed / f"{i:05d}.png", frame(i, 32 if i != 1 else 40, 48))
    with pytest.raises(DataError, match="differ in size: .*00001.png 48x40"):
        build_dataset("frames", mixed, "train", test_fraction=0.0)[0]
    with pytest.raises(ValueError, match="unknown dataset 'kitti2015'; available: synthetic"):
        build_dataset("kitti2015", tmp_path)


def test_grayscale_rgba_and_16_bit_become_8_bit_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert np.array_equal(read_image(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, 2))
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 200, 17  # BGRA: red channel 200, alpha 17
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [200, 0, 0]
    deep = np.full((6, 8, 3), 65535, np.uint16)
    deep[..., 0] = 257 * 10
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert read_image(tmp_path / "deep.png")[0, 0].tolist() == [255, 255, 10]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from data_prep import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), num_clips=3, test_clips=2, frames=8, size=(64, 96), progress=False)


AUGMENTATIONS = {
    "none": AugmentConfig(crop_size=None, channel_reverse=0, vertical_flip=0, horizontal_flip=0, transpose=0, time_reverse=0, resize_2x=0),
    "hflip": AugmentConfig(crop_size=None, channel_reverse=0, vertical_flip=0, horizontal_flip=1, transpose=0, time_reverse=0, resize_2x=0),
    "vflip": AugmentConfig(crop_size=None, channel_reverse=0, vertical_flip=1, horizontal_flip=0, transpose=0, time_reverse=0, resize_2x=0),
    "transpose": AugmentConfig(crop_size=None, channel_reverse=0, vertical_flip=0, horizontal_flip=0, transpose=1, time_reverse=0, resize_2x=0),
    "time_reverse": AugmentConfig(crop_size=None, channel_reverse=0, vertical_flip=0, horizontal_flip=0, transpose=0, time_reverse=1, resize_2x=0),
    "resize_crop": AugmentConfig(crop_size=(48, 64), channel_reverse=1, vertical_flip=0, horizontal_flip=0, transpose=0, time_reverse=0, resize_2x=1),
    "all": AugmentConfig(crop_size=(40, 56), channel_reverse=1, vertical_flip=1, horizontal_flip=1, transpose=1, time_reverse=1, resize_2x=0),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_warping_with_augmented_flow_reproduces_target(synthetic_root, name):
    dataset = build_dataset("synthetic", synthetic_root, "train", augment=AUGMENTATIONS[name])
    tolerance = 0.03 if name == "resize_crop" else 0.012  # upsampling adds interpolation error
    for index in (0, 7):
        sample = dataset[index]
        target = sample["target"][0]
        for k in range(2):
            warped = backward_warp(sample["context"][k][None], sample["gt_flow"][None, 2 * k : 2 * k + 2])[0]
            valid = sample["gt_valid"][k] > 0.5
            assert valid.float().mean() > 0.4
            error = (warped - target).abs().mean(0)[valid].mean().item()
            wrong = (sample["context"][k] - target).abs().mean(0)[valid].mean().item()
            assert error < tolerance, (name, index, k, error)
            assert error < 0.5 * wrong


def test_same_seed_same_samples_and_two_rank_split(synthetic_root):
    a = build_dataset("synthetic", synthetic_root, "train", augment=True, crop_size=32, seed=3)
    b = build_dataset("synthetic", synthetic_root, "train", augment=True, crop_size=32, seed=3)
    assert all(torch.equal(a[i]["context"], b[i]["context"]) for i in (0, 5))
    other = build_dataset("synthetic", synthetic_root, "train", augment=True, crop_size=32, seed=4)
    assert not torch.equal(a[5]["context"], other[5]["context"])
    single = make_loader(a, batch_size=4, seed=1, rank=0, world_size=1)
    ranks = [make_loader(a, batch_size=2, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        for loader in [single, *ranks]:
            set_loader_epoch(loader, epoch)
        order = list(iter(single.sampler))
        per_rank = [list(iter(loader.sampler)) for loader in ranks]
        assert sorted(per_rank[0] + per_rank[1]) == sorted(order)  # the ranks partition the epoch
        for step in range(len(per_rank[0]) // 2):  # each step sees the same samples as batch 2b
            assert sorted(per_rank[0][2 * step : 2 * step + 2] + per_rank[1][2 * step : 2 * step + 2]) == sorted(order[4 * step : 4 * step + 4])
        again = make_loader(a, batch_size=2, seed=1, rank=1, world_size=2)
        set_loader_epoch(again, epoch)
        first, second = next(iter(again)), next(iter(ranks[1]))
        assert torch.equal(first["context"], second["context"])
    set_loader_epoch(ranks[0], 1, skip_batches=2)
    assert list(iter(ranks[0].sampler)) == per_rank[0][4:]


def test_verify_lists_all_planted_problems(vimeo, capsys):
    assert verify_dataset("vimeo90k", vimeo, expected_size=(H, W), progress=False).ok
    (vimeo / "sequences/00001/0001/im4.png").unlink()
    truncated = vimeo / "sequences/00001/0002/im2.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    write_png(vimeo / "sequences/00002/0001/im6.png", frame(1, H + 8, W))
    report = verify_dataset("vimeo90k", vimeo, expected_size=(H, W), progress=False)
    kinds = {(kind, Path(path).relative_to(vimeo / "sequences").as_posix()) for kind, path, _ in report.problems}
    assert kinds == {("missing", "00001/0001/im4.png"), ("corrupt", "00001/0002/im2.png"), ("wrong size", "00002/0001/im6.png")}
    code = data_prep_main(["verify", "--dataset", "vimeo90k", "--root", str(vimeo), "--size", f"{W}x{H}"])
    printed = capsys.readouterr().out
    assert code == 1 and "3 problem(s)" in printed and "im4.png" in printed


def test_teacher_flow_tool_writes_flo_files_the_reader_uses(tmp_path):
    clip = tmp_path / "frames" / "pan"
    base = frame(7, 64, 96 + 40)
    for i in range(10):
        write_png(clip / f"{i:05d}.png", np.ascontiguousarray(base[:, 2 * i : 2 * i + 96]))  # pans 2 px/frame
    root = tmp_path / "frames"
    written = compute_teacher_flow("frames", root, splits=("train",), progress=False)
    assert written > 0
    assert compute_teacher_flow("frames", root, splits=("train",), progress=False) == 0  # resumable
    flo = next((root / "teacher_flow" / "pan").glob("*.flo"))
    assert cv2.readOpticalFlow(str(flo)).shape == (64, 96, 2)
    sample = build_dataset("frames", root, "train")[0]
    teacher = sample["teacher_flow"]
    assert teacher.shape == (4, 64, 96)
    # frame i shows base[:, 2i:]: target pixel x (frame 2) sits at x + 4 in frame 0 and x + 2 in frame 1
    assert abs(teacher[0, 16:-16, 16:-16].median().item() - 4) < 0.5
    assert abs(teacher[2, 16:-16, 16:-16].median().item() - 2) < 0.5
    assert teacher[1, 16:-16, 16:-16].abs().median().item() < 0.5


def test_teacher_flow_tool_skips_only_splits_that_do_not_exist(tmp_path, capsys):
    for i in range(10):
        write_png(tmp_path / "gopro" / "train" / "seq" / f"{i:05d}.png", frame(i))
        write_png(tmp_path / "frames" / "clip" / f"{i:05d}.png", frame(i))
    # GoPro without test/, frames whose last 10 % holds no window: those splits are skipped, train is computed
    assert compute_teacher_flow("gopro", tmp_path / "gopro", frame_stride=1, progress=False) > 0
    assert "skipping split test: GoPro split folder not found" in capsys.readouterr().out
    assert compute_teacher_flow("frames", tmp_path / "frames", progress=False) > 0
    assert "skipping split test: no samples found" in capsys.readouterr().out
    # every other error is raised, not taken for a missing split
    with pytest.raises(TypeError, match="frame_strid"):
        compute_teacher_flow("frames", tmp_path / "frames", progress=False, frame_strid=2)
    with pytest.raises(ValueError, match="context_frames must be >= 2"):
        compute_teacher_flow("frames", tmp_path / "frames", context_frames=1, progress=False)
    for i in range(29):  # a Cityscapes city with a frame missing: a broken dataset, not a missing split
        write_png(tmp_path / "city" / "leftImg8bit_sequence" / "train" / "aachen" / f"aachen_000000_{i:06d}_leftImg8bit.png", frame(i, 8, 8))
    with pytest.raises(DataError, match="29 .*not a multiple of 30"):
        compute_teacher_flow("cityscapes", tmp_path / "city", splits=("train", "val"), progress=False)
    with pytest.raises(DataError, match="no split of gopro found under .*nowhere"):  # none of the splits: a wrong root
        compute_teacher_flow("gopro", tmp_path / "nowhere", progress=False)
    assert capsys.readouterr().out.count("skipping split") == 2


def test_teacher_flow_modes_each_mean_one_thing(tmp_path):
    for i in range(6):
        write_png(tmp_path / "plain" / "clip" / f"{i:05d}.png", frame(i))
        write_png(tmp_path / "prepared" / "clip" / f"{i:05d}.png", frame(i))
    assert compute_teacher_flow("frames", tmp_path / "prepared", splits=("train",), progress=False) > 0
    sources = {}
    for root in ("plain", "prepared"):
        for mode in (None, "files", "auto", "auto_dis", "dis", "none", False):
            options = {} if mode is None else {"teacher_flow": mode}
            sources[root, mode] = build_dataset("frames", tmp_path / root, "train", **options).teacher_source.split(" (")[0]
    # "auto" is training's --teacher_flow auto: prepared files, else DIS on the fly ("auto_dis": its old name)
    assert sources["plain", "auto"] == sources["plain", "auto_dis"] == sources["plain", "dis"] == "DIS on the fly"
    assert sources["prepared", "auto"] == sources["prepared", "auto_dis"] == "prepared files"
    # "files" (the readers' default) is prepared files only
    assert sources["plain", None] == sources["plain", "files"] == "none"
    assert sources["prepared", None] == sources["prepared", "files"] == "prepared files"
    assert sources["prepared", "dis"] == "DIS on the fly" and sources["prepared", "none"] == sources["prepared", False] == "none"
    with pytest.raises(ValueError, match=r"teacher_flow must be one of .*'files' \(prepared files when present, else none\).*"
                                         r"'auto' \(prepared files when present, else DIS on the fly\).*got 'raft'"):
        build_dataset("frames", tmp_path / "plain", "train", teacher_flow="raft")


def test_make_synthetic_and_video_to_frames_tools(tmp_path):
    assert data_prep_main(["make_synthetic", "--root", str(tmp_path / "syn"), "--num-clips", "2", "--test-clips", "1", "--frames", "5", "--size", "64x48"]) == 0
    assert len(list((tmp_path / "syn/train").iterdir())) == 2
    video = tmp_path / "v.mp4"
    with imageio.get_writer(video, fps=10, codec="libx264", macro_block_size=1) as writer:
        for i in range(6):
            writer.append_data(frame(i, 32, 48))
    assert data_prep_main(["video_to_frames", str(video), str(tmp_path / "out"), "--every", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert data_prep_main(["video_to_frames", str(tmp_path / "missing.mp4"), str(tmp_path / "o2")]) == 2


def test_collate_names_the_samples_whose_sizes_differ():
    same = collate([{"context": torch.zeros(2, 3, 4, 4), "name": "a"}, {"context": torch.ones(2, 3, 4, 4), "name": "b"}])
    assert same["context"].shape == (2, 2, 3, 4, 4) and same["name"] == ["a", "b"]
    with pytest.raises(ValueError, match=r"samples \['a', 'b'\] differ in 'context' shape.*batch_size=1"):
        collate([{"context": torch.zeros(2, 3, 4, 4), "name": "a"}, {"context": torch.zeros(2, 3, 4, 6), "name": "b"}])


def test_synthetic_clips_inside_a_frames_folder_teach_with_their_exact_flow(tmp_path):
    """A `frames` folder mixing real clips with synthetic ones (the packaged model's data): the
    synthetic windows' teacher is their scene's exact flow, the real ones' DIS on the fly, and a
    batch of both collates; `--teacher_flow dis` gives DIS everywhere."""
    from ifrvp_core.data.synthetic import synthetic_flow, write_synthetic

    (synthetic_clip,) = write_synthetic(tmp_path / "gen", "train", 1, num_frames=5, height=48, width=64, seed=3, progress=False)
    root = tmp_path / "mix"
    root.mkdir()
    synthetic_clip.rename(root / synthetic_clip.name)
    for i in range(5):
        write_png(root / "real" / f"{i:05d}.png", frame(i, 48, 64))
    mixed = build_dataset("frames", root, "train", teacher_flow="auto", test_fraction=0.0)
    assert mixed.teacher_source.startswith("exact flow of the 1 synthetic clips") and "DIS on the fly" in mixed.teacher_source
    names = [window.name for window in mixed.windows]
    synthetic_index = names.index(f"{synthetic_clip.name}/00001")
    real_index = names.index("real/00000")
    sample = mixed[synthetic_index]
    # window 00001 (context 1, 2; target 3): the exact flow from the target to each context frame
    exact = np.concatenate([synthetic_flow(root / synthetic_clip.name, 3, c)[0] for c in (1, 2)], axis=2)
    assert torch.equal(sample["teacher_flow"], torch.from_numpy(exact).permute(2, 0, 1))
    assert "gt_flow" not in sample  # the teacher only, so that it batches with the real windows
    dis_only = build_dataset("frames", root, "train", teacher_flow="dis", test_fraction=0.0)
    assert not dis_only.scene_teacher and dis_only.teacher_source.startswith("DIS on the fly")
    assert not torch.equal(dis_only[synthetic_index]["teacher_flow"], sample["teacher_flow"])
    assert torch.equal(dis_only[real_index]["teacher_flow"], mixed[real_index]["teacher_flow"])
    batch = collate([sample, mixed[real_index]])
    assert batch["teacher_flow"].shape == (2, 4, 48, 64)
    # resized frames get the flow at their size
    half = build_dataset("frames", root, "train", teacher_flow="auto", test_fraction=0.0, resize=(32, 24))
    assert half[synthetic_index]["teacher_flow"].shape == (4, 24, 32)
    assert half[synthetic_index]["teacher_flow"].abs().mean() < sample["teacher_flow"].abs().mean()
