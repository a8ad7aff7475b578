"""The published protocols on fake datasets with the real layouts: files scored, scoring size, numbers.

docs/protocols.md: cityscapes frames 2, 3 -> 4..8 at 1024x512; kitti the FVS test drives, 9-frame
clips, 1,337 of them, 832x256; davis17 the val videos' first 9 frames at 854x480; vimeo90k the
triplet test list im1, im2 -> im3 at 448x256 (vimeo90k_septuplet keeps the septuplet list).
"""
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fake_datasets as fake
from data_prep import prepare_cityscapes, prepare_davis, prepare_kitti, verify_dataset
from data_prep.__main__ import main as data_prep_main
from ifrvp_core import evaluate as E
from ifrvp_core import protocols as P
from ifrvp_core import rollout as R
from ifrvp_core.data import DataError, build_dataset


def names(files):
    return [Path(f).name for f in files]


def gray_levels(frames: torch.Tensor) -> list[int]:
    """(N, 3, H, W) constant frames -> their gray levels, checking they are constant."""
    values = (frames * 255).round()
    assert torch.all(values == values[:, :1, :1, :1]), "frames are not constant gray"
    return values[:, 0, 0, 0].int().tolist()


def assert_scored_at_protocol_size(caught) -> None:
    """`evaluate` warns "... not comparable with published ones" when frames are not at the protocol's size."""
    assert not [w for w in caught if "not comparable" in str(w.message)], [str(w.message) for w in caught]


def copy_last_psnr_table(root, protocol, steps):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = E.evaluate({"copy_last": R.copy_last}, protocol, root=root, metrics=("psnr",), progress=False, batch_size=2)
    assert_scored_at_protocol_size(caught)
    return [results["copy_last"][f"t+{k}"]["psnr"] for k in range(1, steps + 1)], results


def test_protocol_table():
    assert {"cityscapes", "kitti", "davis17", "vimeo90k", "vimeo90k_septuplet", "gopro", "frames", "synthetic"} <= set(P.list_protocols())
    expected = {  # name: (dataset, split, K, steps, (H, W))
        "cityscapes": ("cityscapes", "val", 2, 5, (512, 1024)),
        "kitti": ("kitti", "test", 2, 5, (256, 832)),
        "davis17": ("davis17", "val", 2, 5, (480, 854)),
        "vimeo90k": ("vimeo90k", "test", 2, 1, (256, 448)),
        "vimeo90k_septuplet": ("vimeo90k", "test", 2, 1, (256, 448)),
    }
    for name, fields in expected.items():
        protocol = P.get_protocol(name)
        assert (protocol.dataset, protocol.split, protocol.context_frames, protocol.steps, protocol.resolution) == fields, name
    assert dict(P.get_protocol("vimeo90k").dataset_options)["variant"] == "triplet"
    assert dict(P.get_protocol("Vimeo90K-Septuplet").dataset_options)["variant"] == "septuplet"
    gopro = P.get_protocol("gopro")
    assert (gopro.frame_stride, gopro.context_frames, gopro.steps, gopro.resolution) == (8, 2, 5, (720, 1280))


# ------------------------------------------------------------------------------------------ cityscapes
@pytest.fixture(scope="module")
def city_root(tmp_path_factory):
    return fake.cityscapes(tmp_path_factory.mktemp("cityscapes"))


def test_cityscapes_protocol_scores_frames_2_3_to_4_8_at_1024x512(city_root):
    dataset = P.get_protocol("cityscapes").build_dataset(city_root)
    assert len(dataset) == 3  # three 30-frame snippets, each city's files sorted and cut into 30s
    expected_snippets = [("frankfurt", "000000", 275), ("frankfurt", "000001", 100), ("lindau", "000000", 19)]
    for index, (city, seq, first) in enumerate(expected_snippets):
        files = dataset.sample_files(index)
        assert names(files["context"]) == [f"{city}_{seq}_{first + i:06d}_leftImg8bit.png" for i in (2, 3)]
        assert names(files["target"]) == [f"{city}_{seq}_{first + i:06d}_leftImg8bit.png" for i in range(4, 9)]
    sample = dataset[2]
    assert sample["context"].shape == (2, 3, 512, 1024) and sample["target"].shape == (5, 3, 512, 1024)
    assert gray_levels(sample["context"]) == [fake.level(i, 16) for i in (2, 3)]
    assert gray_levels(sample["target"]) == [fake.level(i, 16) for i in range(4, 9)]
    assert sample["target_times"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_cityscapes_copy_last_numbers(city_root):
    psnr, results = copy_last_psnr_table(city_root, "cityscapes", 5)
    expected = np.mean([fake.copy_last_psnr(fake.level(3, step), [fake.level(i, step) for i in range(4, 9)]) for step in (8, 12, 16)], axis=0)
    np.testing.assert_allclose(psnr, expected, rtol=1e-5)
    assert results.sample_names == ["frankfurt_000000_000275", "frankfurt_000001_000100", "lindau_000000_000019"]


def test_cityscapes_windows_for_more_context_and_training(city_root, tmp_path):
    k4 = build_dataset("cityscapes", city_root, "val", context_frames=4, future_frames=5)
    assert names(k4.sample_files(0)["context"]) == [f"frankfurt_000000_{275 + i:06d}_leftImg8bit.png" for i in range(4)]
    with pytest.raises(ValueError, match="at most 4 context frames"):
        build_dataset("cityscapes", city_root, "val", context_frames=5)
    train_root = fake.cityscapes(tmp_path / "train", "train", snippets=(("aachen", "000000", 0, 4),), size=(8, 16))
    train = build_dataset("cityscapes", train_root, "train")
    assert len(train) == 28  # every consecutive triplet of the 30-frame snippet
    assert names(train.sample_files(27)["target"]) == ["aachen_000000_000029_leftImg8bit.png"]
    assert train[0]["context"].shape == (2, 3, 512, 1024)


def test_cityscapes_broken_snippet_is_an_error_naming_the_city(tmp_path):
    root = fake.cityscapes(tmp_path, snippets=(("bochum", "000000", 0, 4),), size=(8, 16))
    (root / "leftImg8bit_sequence/val/bochum/bochum_000000_000007_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match="bochum.*29.*not a multiple of 30"):
        P.get_protocol("cityscapes").build_dataset(root)
    fake.write_gray(root / "leftImg8bit_sequence/val/bochum/bochum_000000_000030_leftImg8bit.png", 1, (8, 16))
    with pytest.raises(DataError, match="bochum_000000_000000_leftImg8bit.png .. bochum_000000_000030.*not one 30-frame snippet"):
        P.get_protocol("cityscapes").build_dataset(root)


def test_done_when_cli_scores_baselines_at_1024x512(tmp_path, monkeypatch):
    """`ifrvp evaluate --checkpoint none --baselines --dataset cityscapes --data_root ROOT --output r.json`."""
    from ifrvp_core.cli import main

    monkeypatch.setenv("IFRVP_ALEXNET_WEIGHTS", str(tmp_path / "absent.pth"))  # LPIPS n/a: keeps the test fast
    root = fake.cityscapes(tmp_path / "one", snippets=(("munster", "000042", 0, 12),))
    output = tmp_path / "r.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["evaluate", "--checkpoint", "none", "--baselines", "--dataset", "cityscapes", "--data_root", str(root),
                     "--output", str(output), "--no-progress"])
    assert code == 0
    assert_scored_at_protocol_size(caught)
    results = json.loads(output.read_text())
    assert list(results) == ["meta", "copy_last", "dis_extrapolation", "prior_only"]
    assert (results["meta"]["protocol"], results["meta"]["samples"], results["meta"]["steps"]) == ("cityscapes", 1, 5)
    for method in ("copy_last", "dis_extrapolation", "prior_only"):
        assert list(results[method]) == [f"t+{k}" for k in range(1, 6)] + [f"t+1..t+{k}" for k in range(1, 6)]
    per_sample = output.with_name("r_per_sample.csv").read_text()
    assert "munster_000042_000000" in per_sample  # the one snippet, named by its first frame
    expected = fake.copy_last_psnr(fake.level(3, 12), [fake.level(i, 12) for i in range(4, 9)])
    for k in range(1, 6):
        assert results["copy_last"][f"t+{k}"]["psnr"] == pytest.approx(expected[k - 1], rel=1e-6)
        # constant frames: DIS sees no motion, so it predicts the newest frame too
        assert results["dis_extrapolation"][f"t+{k}"]["psnr"] == pytest.approx(expected[k - 1], rel=1e-4)
        assert results["copy_last"][f"t+1..t+{k}"]["psnr"] == pytest.approx(np.mean(expected[:k]), rel=1e-6)


# ------------------------------------------------------------------------------------------ kitti
@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    return fake.kitti(tmp_path_factory.mktemp("kitti"))


def test_kitti_fvs_test_split_has_1337_clips(kitti_root):
    dataset = P.get_protocol("kitti").build_dataset(kitti_root)
    assert sum(fake.KITTI_TEST_LENGTHS.values()) == 1369 and len(dataset) == 1369 - 4 * 8 == 1337
    first, last = dataset.sample_files(0), dataset.sample_files(len(dataset) - 1)
    assert names(first["context"]) == ["0000000002.png", "0000000003.png"]
    assert names(first["target"]) == [f"{i:010d}.png" for i in range(4, 9)]
    assert "2011_09_26/2011_09_26_drive_0060_sync/image_02/data" in first["context"][0]
    assert names(last["target"]) == [f"{i:010d}.png" for i in range(470, 475)]  # the 0096 drive's last clip
    assert "2011_09_26_drive_0096_sync/image_02" in last["target"][-1]
    # the drive order of the published list: 0060 (70 clips), then 0084 (375) ...
    assert "drive_0084" in dataset.sample_files(70)["context"][0] and "drive_0060" in dataset.sample_files(69)["context"][0]


def test_kitti_scores_832x256_and_copy_last_numbers(kitti_root):
    sample = P.get_protocol("kitti").build_dataset(kitti_root)[1]
    assert sample["context"].shape == (2, 3, 256, 832) and sample["target"].shape == (5, 3, 256, 832)
    assert gray_levels(sample["target"]) == [fake.level(i, 4) for i in range(5, 10)]  # clip centred on frame 5
    # four short test drives (12, 9, 9, 9 frames: 4 + 1 + 1 + 1 clips), every clip a ramp of 4 gray levels per frame
    lengths = dict(zip(fake.KITTI_TEST_LENGTHS, (12, 9, 9, 9)))
    small = fake.kitti(kitti_root.parent / "kitti_small", test_lengths=lengths, train_drives=())
    psnr, results = copy_last_psnr_table(small, "kitti", 5)
    assert len(results.sample_names) == 7
    np.testing.assert_allclose(psnr, fake.copy_last_psnr(fake.level(3, 4), [fake.level(i, 4) for i in range(4, 9)]), rtol=1e-5)


def test_kitti_training_uses_the_fvs_train_drives_and_both_cameras(kitti_root):
    fake.kitti(kitti_root, test_lengths={}, train_drives=(("2011_09_26_drive_0035", 12),))  # not an FVS drive: ignored
    with pytest.warns(UserWarning, match="46 of 48 drive/camera folders missing"):
        train = build_dataset("kitti", kitti_root, "train")
    # drive 0001: 10 frames -> 2 nine-frame clips per camera, 7 triplets each
    assert len(train) == 2 * 2 * 7
    cameras = {Path(train.sample_files(i)["target"][0]).parts[-3] for i in range(len(train))}
    assert cameras == {"image_02", "image_03"}
    assert all("drive_0001" in train.sample_files(i)["target"][0] for i in range(len(train)))
    assert train[0]["target"].shape == (1, 3, 256, 832)
    with pytest.raises(DataError, match="KITTI test drive folder"):
        build_dataset("kitti", kitti_root.parent / "nothing_here", "test")


# ------------------------------------------------------------------------------------------ davis17
def test_davis17_protocol_first_nine_frames_at_854x480(tmp_path):
    root = fake.davis17(tmp_path)
    dataset = P.get_protocol("davis17").build_dataset(root)
    assert len(dataset) == 3 and [dataset.windows[i].name for i in range(3)] == list(fake.DAVIS_VAL)
    files = dataset.sample_files(1)
    assert [str(Path(f).relative_to(root)) for f in files["context"]] == ["JPEGImages/480p/blackswan/00002.jpg", "JPEGImages/480p/blackswan/00003.jpg"]
    assert names(files["target"]) == [f"{i:05d}.jpg" for i in range(4, 9)]
    sample = dataset[1]
    assert sample["target"].shape == (5, 3, 480, 854)
    assert gray_levels(sample["target"]) == [fake.level(i, 9) for i in range(4, 9)]
    psnr, _ = copy_last_psnr_table(root, "davis17", 5)
    expected = np.mean([fake.copy_last_psnr(fake.level(3, s), [fake.level(i, s) for i in range(4, 9)]) for s in (5, 9, 13)], axis=0)
    np.testing.assert_allclose(psnr, expected, rtol=1e-5)
    assert len(build_dataset("davis17", root, "train")) == 10  # train.txt: every triplet of 12 frames
    with pytest.raises(ValueError, match="'train' and 'val'"):
        build_dataset("davis17", root, "test")


def test_davis17_short_or_missing_video_is_named(tmp_path):
    root = fake.davis17(tmp_path, frames=8)
    with pytest.raises(DataError, match="bike-packing has 8 frames"):
        P.get_protocol("davis17").build_dataset(root)
    root = fake.davis17(root.parent / "complete")
    (root / "ImageSets/2017/val.txt").write_text("blackswan\ndogs-jump\n")
    with pytest.raises(DataError, match="DAVIS video folder not found: .*dogs-jump"):
        P.get_protocol("davis17").build_dataset(root)


# ------------------------------------------------------------------------------------------ vimeo90k
def test_vimeo90k_protocol_is_the_triplet_test_list(tmp_path):
    root = fake.vimeo_triplet(tmp_path)
    dataset = P.get_protocol("vimeo90k").build_dataset(root)
    assert len(dataset) == 2
    files = dataset.sample_files(1)
    assert [str(Path(f).relative_to(root)) for f in files["context"]] == ["sequences/00001/0002/im1.png", "sequences/00001/0002/im2.png"]
    assert names(files["target"]) == ["im3.png"]
    assert dataset[0]["target"].shape == (1, 3, 256, 448)
    psnr, _ = copy_last_psnr_table(root, "vimeo90k", 1)
    expected = np.mean([fake.copy_last_psnr(fake.level(1, s), [fake.level(2, s)]) for s in (6, 11)])
    assert psnr[0] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(DataError, match="sep_testlist.txt"):
        P.get_protocol("vimeo90k_septuplet").build_dataset(root)


def test_vimeo90k_septuplet_protocol_keeps_the_septuplet_list(tmp_path):
    (tmp_path / "sep_testlist.txt").write_text("00003/0004\n")
    for i in range(1, 8):
        fake.write_gray(tmp_path / "sequences/00003/0004" / f"im{i}.png", fake.level(i), (8, 8))
    files = P.get_protocol("vimeo90k_septuplet").build_dataset(tmp_path).sample_files(0)
    assert names(files["context"] + files["target"]) == ["im1.png", "im2.png", "im3.png"]
    with pytest.raises(DataError, match="tri_testlist.txt; this root holds the septuplet lists .*--protocol vimeo90k_septuplet"):
        P.get_protocol("vimeo90k").build_dataset(tmp_path)


# ------------------------------------------------------------------------------------------ ucf101
def test_ucf101_random_stride_windows(tmp_path):
    root = fake.ucf101(tmp_path)
    train = build_dataset("ucf101", root, "train", seed=5)
    assert len(train) == 2 * 8  # per video, every triplet position inside a 10-frame clip
    totals = {"v_ApplyEyeMakeup_g01_c01": 30, "v_Biking_g02_c01": 42}
    strides = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        for index in range(len(train)):
            files = train.sample_files(index)["context"] + train.sample_files(index)["target"]
            video, positions = Path(files[0].split("#")[0]).stem, [int(f.split("#")[1]) for f in files]
            stride = positions[1] - positions[0]
            assert 1 <= stride <= min(5, totals[video] // 10) and np.all(np.diff(positions) == stride)
            offset = index % 8  # position of the triplet inside its clip
            start = positions[0] - offset * stride
            assert 0 <= start < totals[video] - 9 * stride
            strides.add(stride)
    assert strides == {1, 2, 3, 4}  # 42 frames allow strides up to 4, 30 frames up to 3
    train.set_epoch(2)
    sample = train[11]
    files = train.sample_files(11)
    assert sample["context"].shape == (2, 3, 256, 340)  # 32x24 videos resized to 340x256
    levels = [fake.level(int(f.split("#")[1])) for f in files["context"] + files["target"]]
    got = (torch.cat([sample["context"], sample["target"]])[:, :, 128, 170].mean(1) * 255).tolist()
    np.testing.assert_allclose(got, levels, atol=3)  # MJPG is lossy
    assert torch.equal(train[11]["target"], sample["target"])  # deterministic for (seed, epoch, index)
    test = build_dataset("ucf101", root, "test", future_frames=2)
    assert len(test) == 1 and [f.split("#")[1] for f in test.sample_files(0)["target"]] == ["2", "3"]


def test_ucf101_flat_folder_and_missing_video(tmp_path):
    root = fake.ucf101(tmp_path, flat=True)
    assert len(build_dataset("ucf101", root, "train")) == 16
    (root / "UCF-101/Biking/v_Biking_g02_c01.avi").unlink()
    with pytest.raises(DataError, match="1 UCF101 video.*trainlist01.txt.*v_Biking_g02_c01.avi"):
        build_dataset("ucf101", root, "train")


# ------------------------------------------------------------------------------------------ prepare + cache
def test_prepare_cityscapes_writes_the_cache_the_reader_uses(tmp_path, capsys):
    root = tmp_path / "cityscapes"
    city = root / "leftImg8bit_sequence" / "val" / "ulm"
    rng = np.random.default_rng(0)
    for i in range(30):
        city.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(city / f"ulm_000007_{i:06d}_leftImg8bit.png"), rng.integers(0, 255, (40, 70, 3), dtype=np.uint8))
    on_the_fly = P.get_protocol("cityscapes").build_dataset(root)[0]
    assert data_prep_main(["prepare_cityscapes", "--root", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    cache = root / "ifrvp_cache" / "1024x512" / "leftImg8bit_sequence" / "val" / "ulm"
    assert f"30 frames resized to 1024x512 (cv2.resize, bilinear) into {root / 'ifrvp_cache' / '1024x512'}" in out
    assert "written 30, already cached 0" in out and "leftImg8bit_sequence/train" in out  # train split absent: said so
    source = cv2.imread(str(city / "ulm_000007_000004_leftImg8bit.png"))
    cached = cv2.imread(str(cache / "ulm_000007_000004_leftImg8bit.png"))
    assert np.array_equal(cached, cv2.resize(source, (1024, 512)))  # the published call, default interpolation
    assert torch.equal(P.get_protocol("cityscapes").build_dataset(root)[0]["target"], on_the_fly["target"])
    # the reader takes the cached file when it exists
    cv2.imwrite(str(cache / "ulm_000007_000004_leftImg8bit.png"), np.full((512, 1024, 3), 77, np.uint8))
    assert gray_levels(P.get_protocol("cityscapes").build_dataset(root)[0]["target"][:1]) == [77]
    assert prepare_cityscapes(root, progress=False).written == 0  # resumable
    cv2.imwrite(str(cache / "ulm_000007_000005_leftImg8bit.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DataError, match="cached frame is 10x10, expected 1024x512: .*ulm_000007_000005"):
        P.get_protocol("cityscapes").build_dataset(root)[0]


def test_prepare_kitti_and_davis_sizes(tmp_path):
    kitti = fake.kitti(tmp_path / "kitti", test_lengths={d: 9 for d in fake.KITTI_TEST_LENGTHS})
    report = prepare_kitti(kitti, progress=False, workers=1)
    assert report.frames == {"train": 20, "test": 36} and report.written == 56 and len(report.missing) == 46
    cached = kitti / "ifrvp_cache/832x256/2011_09_26/2011_09_26_drive_0001_sync/image_03/data/0000000009.png"
    assert cv2.imread(str(cached)).shape == (256, 832, 3)
    davis = fake.davis17(tmp_path / "davis")
    report = prepare_davis(davis, progress=False, workers=1, cache_root=tmp_path / "elsewhere")
    assert report.frames == {"val": 36} and report.written == 36
    cached = tmp_path / "elsewhere/854x480/JPEGImages/480p/bmx-trees/00011.png"  # lossless PNG in the cache
    assert cv2.imread(str(cached)).shape == (480, 854, 3)
    assert build_dataset("davis17", davis, "val", cache_root=tmp_path / "elsewhere", future_frames=5)[2]["target"].shape == (5, 3, 480, 854)


# ------------------------------------------------------------------------------------------ verify
def test_verify_knows_kitti_davis_and_ucf101(tmp_path):
    kitti = fake.kitti(tmp_path / "kitti", test_lengths={d: 9 for d in fake.KITTI_TEST_LENGTHS})
    (kitti / "2011_09_26/2011_09_26_drive_0093_sync/image_02/data/0000000004.png").unlink()
    report = verify_dataset("kitti", kitti, progress=False)
    kinds = {(kind, Path(path).name) for kind, path, _ in report.problems}
    assert ("missing", "0000000004.png") in kinds and ("missing", "data") in kinds  # a gap, and absent FVS train drives
    assert report.groups == 4 + 2

    davis = fake.davis17(tmp_path / "davis")
    assert verify_dataset("davis17", davis, progress=False).ok
    (davis / "ImageSets/2017/val.txt").write_text("blackswan\ndogs-jump\n")
    problems = verify_dataset("davis17", davis, progress=False).problems
    assert [(kind, Path(path).name) for kind, path, _ in problems] == [("missing", "dogs-jump")]

    ucf = fake.ucf101(tmp_path / "ucf", train=(("Biking", 1, 30), ("Diving", 3, 8)))
    problems = verify_dataset("ucf101", ucf, progress=False).problems
    assert [(kind, Path(path).name) for kind, path, _ in problems] == [("layout", "v_Diving_g03_c01.avi")]
    assert data_prep_main(["verify", "--dataset", "ucf101", "--root", str(ucf)]) == 1
