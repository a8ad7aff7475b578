"""Teacher flow for the distillation loss: OpenCV DIS (CPU, no weights) or torchvision RAFT.

Flows go from each target frame to each context frame (the backward-warping direction) and are
stored in a parallel tree `<root>/teacher_flow/<frame folder>/<target>_to_<context>.flo`, so the
dataset itself is never modified. With `both_directions` the pairs of time-reversed windows are
computed too (the time-reversal augmentation needs them).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ifrvp_core.data import build_dataset
from ifrvp_core.data.io import DataError, SplitNotFoundError, read_image, write_flow
from ifrvp_core.data.sample import reverse_window
from ifrvp_core.data.teacher import teacher_flow_path
from ifrvp_core.motion_prior import dis_flow_uint8 as dis_flow  # (H, W, 3) uint8 RGB x2 -> (H, W, 2), the DIS call of the prior and the baseline
from ifrvp_core.weights import RAFT_LARGE, load_pretrained_state


def raft_flow_fn(weights_path=None, device="cpu", download: bool = False):
    """A RAFT-large flow function from torchvision's weights: `weights_path`, else the torch hub cache
    (`raft_large_C_T_SKHT_V2-ff5fadd5.pth`), downloaded there only when `download` or
    IFRVP_ALLOW_DOWNLOAD=1 allows it. A missing file is a FileNotFoundError naming the path."""
    from torchvision.models.optical_flow import raft_large  # only the RAFT method needs torchvision's flow models

    state = load_pretrained_state(RAFT_LARGE, weights_path or None, download, path_source="--raft_weights")
    model = raft_large(weights=None)
    model.load_state_dict(state)
    model = model.eval().to(device)

    @torch.inference_mode()
    def flow(source, destination):
        to_tensor = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)
        height, width = source.shape[:2]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        a, b = (torch.nn.functional.pad(to_tensor(x), (0, pad_w, 0, pad_h), mode="replicate") for x in (source, destination))
        return model(a, b)[-1][0, :, :height, :width].permute(1, 2, 0).cpu().numpy()

    return flow


def teacher_pairs(dataset, both_directions: bool = True) -> list[tuple[Path, Path]]:
    """(target, context) frame pairs of every window (and of its time reversal)."""
    k = dataset.context_frames
    pairs = set()
    for window in dataset.windows:
        orders = [window.frames]
        if both_directions:
            orders.append(reverse_window(list(window.frames), k, dataset.target_times))
        for frames in orders:
            pairs.update((frames[k], context) for context in frames[:k])
    return sorted(pairs)


def compute_teacher_flow(dataset_name: str, root, splits=("train", "test"), method: str = "dis", both_directions: bool = True,
                         context_frames: int = 2, raft_weights=None, fmt: str = "flo", workers: int = 2, progress: bool = True,
                         download_weights: bool = False, **dataset_options) -> int:
    """Compute missing teacher flows for a dataset; returns how many files were written.

    `method="raft"` loads RAFT-large from `raft_weights` or the torch hub cache (`raft_flow_fn`;
    `download_weights` allows fetching it there), before any flow is computed.

    A split the dataset does not have here (no folder or list file, no such split, no samples:
    `SplitNotFoundError`) is skipped with a message; every other error is raised, and a
    `DataError` when none of `splits` exists (a wrong root or dataset name).
    """
    if method not in ("dis", "raft"):
        raise ValueError(f"method must be one of dis, raft; got {method!r}")
    # RAFT's weights first: a missing file fails before any frame is listed or read.
    flow_fn = dis_flow if method == "dis" else raft_flow_fn(raft_weights, download=download_weights)
    root = Path(root)
    pairs = set()
    load_frame = read_image
    not_found = []
    for split in splits:
        try:
            dataset = build_dataset(dataset_name, root, split, context_frames=context_frames, teacher_flow=False, **dataset_options)
        except SplitNotFoundError as error:  # e.g. no test list
            print(f"skipping split {split}: {error}")
            not_found.append(f"{split}: {error}")
            continue
        if not dataset.windows[0].frames or not isinstance(dataset.windows[0].frames[0], Path):
            raise ValueError("teacher flow is stored next to frame files; convert videos with video_to_frames first")
        pairs.update(teacher_pairs(dataset, both_directions))
        load_frame = dataset.load_frame  # at the dataset's size (resized protocols), as training reads them
    if splits and len(not_found) == len(splits):
        raise DataError(f"no split of {dataset_name} found under {root}: " + "; ".join(not_found))
    suffix = ".flo" if fmt == "flo" else ".npy"
    todo = [(t, c) for t, c in sorted(pairs) if not teacher_flow_path(root, t, c, suffix).exists()]

    def run(pair):
        target, context = pair
        write_flow(teacher_flow_path(root, target, context, suffix), flow_fn(load_frame(target), load_frame(context)))

    with ThreadPoolExecutor(max(1, workers if method == "dis" else 1)) as pool:
        list(tqdm(pool.map(run, todo), total=len(todo), desc=f"teacher flow ({method})", disable=not progress))
    return len(todo)
