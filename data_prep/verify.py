"""Check a dataset layout and every file in it; list all problems, not only the first."""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ifrvp_core.data.io import DataError, VideoReader, read_image
from ifrvp_core.data.layouts import (
    CITYSCAPES_NAME,
    CITYSCAPES_SNIPPET,
    UCF101_CLIP,
    UCF101_LISTS,
    clip_sources,
    davis17_video_folders,
    gopro_frame_folder,
    kitti_frame_folders,
    ucf101_videos,
    vimeo90k_sequence_frames,
)
from ifrvp_core.data.shards import SHARD_NAME, ShardDataset
from ifrvp_core.data.windows import PROTOCOL_CLIP, list_images, read_list

# (H, W) of the published source data; KITTI (1242x375 .. 1224x370 by date), DAVIS and UCF101 vary,
# so each sequence is only checked to be uniform.
EXPECTED_SIZE = {"vimeo90k": (256, 448), "cityscapes": (1024, 2048)}
VERIFY_LAYOUTS = ("vimeo90k", "gopro", "cityscapes", "kitti", "davis17", "ucf101", "frames", "synthetic", "shards")


@dataclass
class VerifyReport:
    dataset: str
    root: Path
    groups: int = 0
    files: int = 0
    problems: list = field(default_factory=list)  # (kind, path, detail)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> Counter:
        return Counter(kind for kind, _, _ in self.problems)

    def summary(self) -> str:
        counts = self.counts()
        lines = [
            f"dataset {self.dataset} at {self.root}",
            f"  {'groups (sequences/clips)':<26}{self.groups:>8}",
            f"  {'files checked':<26}{self.files:>8}",
        ]
        for kind in ("missing", "corrupt", "wrong size", "layout"):
            lines.append(f"  {kind:<26}{counts.get(kind, 0):>8}")
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s):")
        lines += [f"  [{kind}] {path}: {detail}" for kind, path, detail in self.problems]
        return "\n".join(lines)


def _vimeo90k_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    lists = [p for p in ("sep_trainlist.txt", "sep_testlist.txt", "tri_trainlist.txt", "tri_testlist.txt") if (root / p).is_file()]
    if not lists:
        report.problems.append(("layout", root, "no sep_*list.txt or tri_*list.txt"))
    for name in lists:
        count = 7 if name.startswith("sep") else 3
        for entry in read_list(root / name):
            groups[entry] = vimeo90k_sequence_frames(root, entry, count)


def _split_folder_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    """GoPro and synthetic: `<train|test>/<sequence>/` (GoPro: or `<sequence>/sharp/`) numbered frames."""
    splits = [root / s for s in ("train", "test") if (root / s).is_dir()]
    if not splits:
        report.problems.append(("layout", root, "no train/ or test/ folder"))
    for split in splits:
        for sequence in sorted(p for p in split.iterdir() if p.is_dir()):
            groups[f"{split.name}/{sequence.name}"] = _with_gaps(list_images(gopro_frame_folder(sequence)), report)


def _cityscapes_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    base = root / "leftImg8bit_sequence"
    if not base.is_dir():
        report.problems.append(("layout", base, "folder missing"))
        return
    for split in sorted(p for p in base.iterdir() if p.is_dir()):
        by_snippet: dict = {}
        for path in split.glob("*/*.png"):
            match = CITYSCAPES_NAME.match(path.name)
            if not match:
                report.problems.append(("layout", path, "name is not <city>_<seq>_<frame>_leftImg8bit.png"))
                continue
            by_snippet.setdefault((match["city"], match["seq"]), []).append((int(match["frame"]), path))
        for (city, seq), items in by_snippet.items():
            items.sort()
            folder, first, last = items[0][1].parent, items[0][0], items[-1][0]
            present = dict(items)
            groups[f"{split.name}/{city}_{seq}"] = [
                present.get(n, folder / f"{city}_{seq}_{n:06d}_leftImg8bit.png") for n in range(first, last + 1)
            ]
            if last - first + 1 != CITYSCAPES_SNIPPET:
                report.problems.append(("layout", folder / f"{city}_{seq}_*", f"snippet spans {last - first + 1} frames, expected 30"))
        for city in sorted(p for p in split.iterdir() if p.is_dir()):
            count = sum(1 for p in city.iterdir() if CITYSCAPES_NAME.match(p.name))
            if count % CITYSCAPES_SNIPPET:
                report.problems.append(("layout", city, f"{count} frames, not a multiple of 30: the sorted files "
                                                        "cannot be cut into 30-frame snippets"))


def _kitti_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    for split in ("train", "test"):
        for drive, camera, folder in kitti_frame_folders(root, split):
            if not folder.is_dir():
                report.problems.append(("missing", folder, f"FVS {split} drive folder not found"))
                continue
            frames = _with_gaps(list_images(folder), report)
            groups[f"{split}/{drive}/{camera}"] = frames
            if len(frames) < PROTOCOL_CLIP:
                report.problems.append(("layout", folder, f"{len(frames)} frames, fewer than one 9-frame clip"))


def _davis17_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    lists = [root / "ImageSets" / "2017" / f"{s}.txt" for s in ("train", "val")]
    if not any(p.is_file() for p in lists):
        report.problems.append(("layout", root / "ImageSets" / "2017", "no train.txt or val.txt"))
    for list_file in (p for p in lists if p.is_file()):
        for video, folder in davis17_video_folders(root, list_file.stem):
            if not folder.is_dir():
                report.problems.append(("missing", folder, f"video listed in {list_file.name} not found"))
                continue
            frames = _with_gaps(list_images(folder), report)
            groups[f"{list_file.stem}/{video}"] = frames
            if list_file.stem == "val" and len(frames) < PROTOCOL_CLIP:
                report.problems.append(("layout", folder, f"{len(frames)} frames; the protocol scores the first 9"))


def _ucf101_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    """Videos are checked here (they open, and training videos hold a full clip); no frame groups."""
    for split, name in UCF101_LISTS.items():
        list_file = root / "ucfTrainTestlist" / name
        if not list_file.is_file():
            report.problems.append(("layout", list_file, "list file not found"))
            continue
        for video in ucf101_videos(root, split):
            report.files += 1
            report.groups += 1
            if not video.is_file():
                report.problems.append(("missing", video, f"listed in {name}"))
                continue
            try:
                frames = VideoReader(video).num_frames
            except DataError as error:
                report.problems.append(("corrupt", video, str(error)))
                continue
            if split == "train" and frames < UCF101_CLIP:
                report.problems.append(("layout", video, f"{frames} frames, fewer than a {UCF101_CLIP}-frame training clip"))


def _frames_groups(root: Path, report: VerifyReport, groups: dict) -> None:
    """Frame folders are groups; videos are checked here (they open and hold two frames)."""
    for source in clip_sources(root):
        if source.is_file():
            try:
                reader = VideoReader(source)
                report.files += 1
                report.groups += 1
                if reader.num_frames < 2:
                    report.problems.append(("corrupt", source, f"only {reader.num_frames} frame(s)"))
            except DataError as error:
                report.problems.append(("corrupt", source, str(error)))
            continue
        groups[source.name] = _with_gaps(list_images(source), report)


GROUPERS = {"vimeo90k": _vimeo90k_groups, "gopro": _split_folder_groups, "synthetic": _split_folder_groups,
            "cityscapes": _cityscapes_groups, "kitti": _kitti_groups, "davis17": _davis17_groups, "ucf101": _ucf101_groups,
            "frames": _frames_groups}


def _groups(dataset: str, root: Path, report: VerifyReport) -> dict:
    """{group name: [expected file paths]} for each layout."""
    if dataset not in GROUPERS:
        raise ValueError(f"unknown dataset {dataset!r}; verify knows {', '.join(VERIFY_LAYOUTS)}")
    groups: dict = {}
    GROUPERS[dataset](root, report, groups)
    return groups


def _with_gaps(frames: list[Path], report: VerifyReport) -> list[Path]:
    """Numbered frames (00000.png ...): a gap in the numbering is a missing frame."""
    numbers = {}
    for frame in frames:
        digits = "".join(ch for ch in frame.stem if ch.isdigit())
        if digits:
            numbers[int(digits)] = frame
    if len(numbers) == len(frames) and numbers:
        template, width = frames[0], len("".join(ch for ch in frames[0].stem if ch.isdigit()))
        prefix = template.stem[: len(template.stem) - width] if template.stem[-width:].isdigit() else ""
        full = []
        for number in range(min(numbers), max(numbers) + 1):
            full.append(numbers.get(number, template.parent / f"{prefix}{number:0{width}d}{template.suffix}"))
        return full
    return frames


def _check_file(path: Path):
    if not path.exists():
        return ("missing", path, "file not found"), None
    try:
        image = read_image(path)
    except DataError as error:
        return ("corrupt", path, str(error).split(": ")[0]), None
    return None, image.shape[:2]


def verify_dataset(dataset: str, root, expected_size=None, workers: int = 4, progress: bool = True) -> VerifyReport:
    """Check counts, missing frames, unreadable/truncated images and odd sizes of a dataset.

    expected_size: (H, W) every frame must have (default: the published size where known,
    otherwise each sequence must be uniform and match the most common size).
    """
    root = Path(root)
    report = VerifyReport(dataset, root)
    if not root.exists():
        report.problems.append(("layout", root, "root not found"))
        return report
    if dataset == "shards":
        return _verify_shards(root, report, tuple(expected_size) if expected_size else None, progress)
    groups = _groups(dataset, root, report)
    expected_size = tuple(expected_size) if expected_size else EXPECTED_SIZE.get(dataset)
    paths = [path for files in groups.values() for path in files]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(tqdm(pool.map(_check_file, paths), total=len(paths), desc=f"verify {dataset}", disable=not progress))
    report.groups += len(groups)
    report.files += len(paths)
    sizes = {path: size for path, (problem, size) in zip(paths, results) if size is not None}
    report.problems.extend(problem for problem, _ in results if problem is not None)
    common = Counter(sizes.values()).most_common(1)
    reference = expected_size or (common[0][0] if common else None)
    for name, files in groups.items():
        group_sizes = Counter(sizes[p] for p in files if p in sizes)
        group_reference = reference if expected_size else (group_sizes.most_common(1)[0][0] if group_sizes else None)
        for path in files:
            if path in sizes and group_reference and sizes[path] != group_reference:
                h, w = sizes[path]
                report.problems.append(("wrong size", path, f"{w}x{h}, expected {group_reference[1]}x{group_reference[0]}"))
    return report


def _good_shards(manifest_file: Path, report: VerifyReport, listed: set) -> tuple[str, dict, list[str]] | None:
    """(split, manifest, shards that exist with the size it lists) of one `<split>-index.json`; None when it is not a manifest."""
    try:
        manifest = json.loads(manifest_file.read_text())
        split, shards = manifest["split"], manifest["shards"]
    except (KeyError, ValueError) as error:
        report.problems.append(("layout", manifest_file, f"not a shard manifest: {error}"))
        return None
    good = []
    for shard in shards:
        path = manifest_file.parent / shard["name"]
        listed.add(path.name)
        if not path.is_file():
            report.problems.append(("missing", path, "shard not found"))
        elif path.stat().st_size != shard["bytes"]:
            report.problems.append(("corrupt", path, f"{path.stat().st_size} bytes, its manifest says {shard['bytes']}"))
        else:
            good.append(str(path))
    return split, manifest, good


def _verify_shard(dataset: ShardDataset, shard: int, expected_size, report: VerifyReport) -> None:
    """Decode every sample of one shard: members, frame size, and the count its manifest lists."""
    url = dataset.urls[shard]
    report.groups += 1
    count = 0
    try:
        for raw in dataset.raw_samples([shard]):
            count += 1
            report.files += 1
            where = f"sample {raw['__key__']}"
            try:
                sample = dataset.decode(raw)
            except DataError as error:
                report.problems.append(("corrupt", url, str(error)))
                continue
            size = expected_size or tuple(json.loads(raw["json"])["frame_size"])  # decode() checked the json
            if tuple(sample["context"].shape[-2:]) != size:
                h, w = sample["context"].shape[-2:]
                report.problems.append(("wrong size", url, f"{where}: {w}x{h}, expected {size[1]}x{size[0]}"))
    except DataError as error:
        report.problems.append(("corrupt", url, str(error)))
    if count != dataset.shard_samples[shard]:
        report.problems.append(("missing", url, f"{count} samples, its manifest lists {dataset.shard_samples[shard]}"))


def _verify_shards(root: Path, report: VerifyReport, expected_size, progress: bool) -> VerifyReport:
    """A `data_prep pack` folder: every split's manifest, every shard's size and sample count, every
    sample's members (decoded) and frame size. Groups are shards, files are samples."""
    manifests = sorted(root.glob("*-index.json")) if root.is_dir() else [root]
    if not manifests:
        report.problems.append(("layout", root, "no <split>-index.json manifest (written last by data_prep pack: did it finish?)"))
    listed: set = set()
    for manifest_file in manifests:
        found = _good_shards(manifest_file, report, listed)
        if found is None or not found[2]:
            continue
        split, manifest, good = found
        try:
            dataset = ShardDataset("::".join(good), split, manifest["context_frames"], manifest["future_frames"], manifest["task"])
        except (DataError, KeyError, ValueError) as error:
            report.problems.append(("layout", manifest_file, str(error)))
            continue
        for shard in tqdm(range(len(dataset.urls)), desc=f"verify shards {split}", disable=not progress):
            _verify_shard(dataset, shard, expected_size, report)
    if root.is_dir():
        for path in sorted(root.glob("*.tar")):
            if SHARD_NAME.match(path.name) and path.name not in listed and manifests:
                report.problems.append(("layout", path, "shard not listed in any manifest"))
        for path in sorted(root.glob(".*.partial")):
            report.problems.append(("layout", path, "unfinished shard of an interrupted pack"))
    return report
