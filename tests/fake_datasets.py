"""Tiny fake datasets in the real layouts and file names, for protocol, reader and config tests.

Frames are constant gray images whose level encodes their index (`level(index, step)`), so a test
knows which file a tensor came from and can compute copy-last scores by hand.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def level(index: int, step: int = 8, base: int = 10) -> int:
    """The gray level of frame `index` (uint8, wraps before 256)."""
    return (base + step * index) % 240


def write_gray(path: Path, value: int, size=(16, 32)) -> Path:
    """A constant (H, W) = `size` image of gray `value`; PNG, or JPEG at quality 100 (exact for constants)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((*size, 3), value, np.uint8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    assert cv2.imwrite(str(path), image, params), path
    return path


def cityscapes(root: Path, split: str = "val", snippets=(("frankfurt", "000000", 275, 8), ("frankfurt", "000001", 100, 12),
               ("lindau", "000000", 19, 16)), size=(128, 256)) -> Path:
    """`leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`, 30 frames per snippet.

    Each snippet is (city, seq, first frame number, gray step): frame i of it has `level(i, step)`.
    The frames are smaller than the real 2048x1024 (writing those takes seconds); the protocol
    resizes whatever it reads to 1024x512, so what is scored is the same.
    """
    for city, seq, first, step in snippets:
        for i in range(30):
            write_gray(root / "leftImg8bit_sequence" / split / city / f"{city}_{seq}_{first + i:06d}_leftImg8bit.png", level(i, step), size)
    return root


KITTI_TEST_LENGTHS = {"2011_09_26_drive_0060": 78, "2011_09_26_drive_0084": 383, "2011_09_26_drive_0093": 433, "2011_09_26_drive_0096": 475}


def kitti(root: Path, test_lengths=None, train_drives=(("2011_09_26_drive_0001", 10),), size=(8, 26), step: int = 4) -> Path:
    """KITTI raw `<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<10 digits>.png`."""
    test_lengths = KITTI_TEST_LENGTHS if test_lengths is None else test_lengths
    for drive, length in test_lengths.items():
        for i in range(length):
            write_gray(root / drive[:10] / f"{drive}_sync" / "image_02" / "data" / f"{i:010d}.png", level(i % 50, step), size)
    for drive, length in train_drives:
        for camera in ("image_02", "image_03"):
            for i in range(length):
                write_gray(root / drive[:10] / f"{drive}_sync" / camera / "data" / f"{i:010d}.png", level(i, step), size)
    return root


DAVIS_VAL = ("bike-packing", "blackswan", "bmx-trees")


def davis17(root: Path, videos=DAVIS_VAL, frames: int = 12, steps=(5, 9, 13), size=(24, 40), train_videos=("bear",)) -> Path:
    """DAVIS 2017 `JPEGImages/480p/<video>/00000.jpg` + `ImageSets/2017/{train,val}.txt`."""
    for video, step in zip(videos, steps):
        for i in range(frames):
            write_gray(root / "JPEGImages" / "480p" / video / f"{i:05d}.jpg", level(i, step), size)
    for video in train_videos:
        for i in range(frames):
            write_gray(root / "JPEGImages" / "480p" / video / f"{i:05d}.jpg", level(i), size)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(videos) + "\n")
    (root / "ImageSets" / "2017" / "train.txt").write_text("\n".join(train_videos) + "\n")
    return root


def vimeo_triplet(root: Path, test=("00001/0001", "00001/0002"), train=("00002/0001", "00002/0002"), steps=(6, 11), size=(256, 448)) -> Path:
    """Vimeo90K triplets `sequences/<5-digit>/<4-digit>/im1..im3.png` + `tri_{train,test}list.txt`."""
    for n, entry in enumerate(test + train):
        for i in range(1, 4):
            write_gray(root / "sequences" / entry / f"im{i}.png", level(i - 1, steps[n % len(steps)]), size)
    (root / "tri_testlist.txt").write_text("\n".join(test) + "\n")
    (root / "tri_trainlist.txt").write_text("\n".join(train) + "\n")
    return root


def write_avi(path: Path, frames: int, size=(24, 32), step: int = 8) -> Path:
    """A tiny MJPG .avi whose frame i is gray `level(i, step)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (width, height))
    assert writer.isOpened(), path
    for i in range(frames):
        writer.write(np.full((height, width, 3), level(i, step), np.uint8))
    writer.release()
    return path


def ucf101(root: Path, train=(("ApplyEyeMakeup", 1, 30), ("Biking", 2, 42)), test=(("ApplyEyeMakeup", 8, 12),), flat: bool = False) -> Path:
    """UCF101 `<Class>/v_<Class>_gXX_cYY.avi` (or under `UCF-101/`) + `ucfTrainTestlist/{train,test}list01.txt`.

    Entries are (class, group, frames); the train list carries class labels as the real one does.
    """
    videos = root / "UCF-101" if flat else root
    lines = {"trainlist01.txt": [], "testlist01.txt": []}
    for name, entries in (("trainlist01.txt", train), ("testlist01.txt", test)):
        for label, (cls, group, frames) in enumerate(entries, start=1):
            relative = f"{cls}/v_{cls}_g{group:02d}_c01.avi"
            write_avi(videos / relative, frames)
            lines[name].append(f"{relative} {label}" if name.startswith("train") else relative)
    (root / "ucfTrainTestlist").mkdir(parents=True, exist_ok=True)
    for name, entries in lines.items():
        (root / "ucfTrainTestlist" / name).write_text("\r\n".join(entries) + "\r\n")  # the real lists have CRLF endings
    return root


def gopro(root: Path, sequences=("GOPR0384_11_00",), frames: int = 40, size=(32, 48)) -> Path:
    """GoPro `train|test/<sequence>/<frame>.png` (240 fps)."""
    for split in ("train", "test"):
        for sequence in sequences:
            for i in range(frames):
                write_gray(root / split / sequence / f"{i:06d}.png", level(i, 2), size)
    return root


def copy_last_psnr(levels_context_last: int, target_levels) -> list[float]:
    """PSNR (dB) of predicting constant gray `levels_context_last` for each constant target level."""
    return [float(20 * np.log10(255.0 / abs(levels_context_last - t))) for t in target_levels]
