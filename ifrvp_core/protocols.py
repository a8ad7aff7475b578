"""Evaluation protocols: which test files a dataset is scored on, how, and the published figures.

A `Protocol` fixes the test split, the context and target frames, the scoring size and the
metrics of one dataset so that numbers compare with published ones (protocols.md); `PROTOCOLS`
holds them by name (`get_protocol`, `list_protocols`) and `PUBLISHED` the DMVFN figures to place
ours against (`published_rows`).

    >>> protocol = get_protocol("cityscapes")
    >>> dataset = protocol.build_dataset("data/cityscapes")   # frames 2, 3 -> 4..8 at 1024x512
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ifrvp_core.data import build_dataset
from ifrvp_core.metrics import IMAGE_METRICS

__all__ = [
    "DEFAULT_METRICS",
    "PROTOCOLS",
    "PUBLISHED",
    "Protocol",
    "get_protocol",
    "list_protocols",
    "published_rows",
]

# What a protocol reports unless it says otherwise: every image metric.
DEFAULT_METRICS = IMAGE_METRICS

_DMVFN_PAPER = ("Hu et al., A Dynamic Multi-Scale Voxel Flow Network for Video Prediction, CVPR 2023: "
                "t+1 MS-SSIM / LPIPS as listed with the paper")
_DMVFN_DEMO = ("DMVFN's official Cityscapes demo notebook (megvii-research/CVPR2023-DMVFN), released checkpoint: "
               "running means over t+1..t+k as its scripts print them")
# Published DMVFN figures to place ours against, per protocol. For t+1 both forms coincide; the
# demo-notebook figures are running means, so they sit under the "t+1..t+k" columns.
PUBLISHED: dict[str, tuple[dict, ...]] = {
    "cityscapes": (
        {"label": "DMVFN (published, paper)", "source": _DMVFN_PAPER,
         "values": {"t+1..t+1": {"ms_ssim": 0.9573, "lpips": 0.0558}}},
        {"label": "DMVFN (published, demo)", "source": _DMVFN_DEMO,
         "values": {"t+1..t+1": {"psnr": 30.01, "ssim": 0.9018, "ms_ssim": 0.9589, "lpips": 0.0548},
                    "t+1..t+3": {"psnr": 26.64, "ssim": 0.8221, "ms_ssim": 0.8957, "lpips": 0.1024},
                    "t+1..t+5": {"psnr": 24.74, "ssim": 0.7727, "ms_ssim": 0.8389, "lpips": 0.1444}}},
    ),
    "kitti": ({"label": "DMVFN (published, paper)", "source": _DMVFN_PAPER,
               "values": {"t+1..t+1": {"ms_ssim": 0.8853, "lpips": 0.1074}}},),
    "davis17": ({"label": "DMVFN (published, paper)", "source": _DMVFN_PAPER,
                 "values": {"t+1..t+1": {"ms_ssim": 0.8397, "lpips": 0.0996}}},),
    "vimeo90k": ({"label": "DMVFN (published, paper)", "source": _DMVFN_PAPER + " (Vimeo90K triplet test set)",
                  "values": {"t+1..t+1": {"ms_ssim": 0.9701, "lpips": 0.0369}}},),
}


@dataclass(frozen=True)
class Protocol:
    """How a dataset is evaluated so that numbers compare with published ones.

    Attributes:
        name: protocol name (`list_protocols()`).
        dataset: `ifrvp_core.data.build_dataset` name.
        split: test split passed to build_dataset.
        context_frames: K context frames the protocol gives a method (models with more context
            frames get a longer window; see `build_dataset`).
        steps: future frames scored (t+1 ... t+steps), predicted recursively.
        frame_stride: source frames between consecutive samples (None: the dataset default).
        resolution: (H, W) the frames are scored at (full frames, no crop; the dataset resizes to it
            where the protocol says so, `build_dataset(resize=...)`), or None for any.
        metrics: what the protocol reports.
        notes: where the choices come from.
        dataset_options: extra build_dataset keywords, as (key, value) pairs.
    """

    name: str
    dataset: str
    split: str
    context_frames: int
    steps: int
    frame_stride: int | None = None
    resolution: tuple[int, int] | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    notes: str = ""
    dataset_options: tuple[tuple[str, object], ...] = ()

    def build_dataset(self, root=None, context_frames: int | None = None, steps: int | None = None, **overrides):
        """The protocol's test dataset (`ifrvp_core.data.build_dataset`), no augmentation.

        Args:
            root: dataset root (synthetic: None generates/reuses the default set).
            context_frames: K for models that need more context than the protocol's 2.
            steps: future frames per sample (default: the protocol's).
            overrides: further build_dataset keywords.
        """
        options = dict(self.dataset_options)
        options.update(overrides)
        return build_dataset(
            self.dataset,
            root=root,
            split=self.split,
            context_frames=context_frames or self.context_frames,
            future_frames=steps or self.steps,
            task="extrapolate",
            frame_stride=self.frame_stride,
            augment=False,
            **options,
        )

    def for_dataset(self, dataset: str) -> "Protocol":
        """This protocol's settings on a dataset (`ifrvp evaluate --protocol X --dataset Y`).

        The protocol itself for its own dataset; for another one a protocol of its own, named
        "X on Y", so that results never carry X's name, nor X's published figures, next to Y's numbers.
        """
        dataset = str(dataset).lower()
        if dataset == self.dataset:
            return self
        return replace(self, name=f"{self.name} on {dataset}", dataset=dataset)


PROTOCOLS: dict[str, Protocol] = {
    "cityscapes": Protocol(
        "cityscapes", "cityscapes", "val", context_frames=2, steps=5, resolution=(512, 1024),
        notes="leftImg8bit_sequence/val: each city's files sorted and cut into 30-frame snippets (500); every "
        "frame resized to 1024x512 (cv2.resize, bilinear); frames 2, 3 -> 4..8 (0-based), recursive t+1..t+5 "
        "(DMVFN's utils/prepare_city.py, scripts/test.py).",
    ),
    "kitti": Protocol(
        "kitti", "kitti", "test", context_frames=2, steps=5, resolution=(256, 832),
        notes="KITTI raw, FVS split: test drives 2011_09_26_drive_0060/0084/0093/0096 (image_02), a 9-frame clip "
        "centred on every frame (1,337 clips); resized to 832x256; frames 2, 3 -> 4..8, recursive t+1..t+5 "
        "(DMVFN's utils/prepare_kitti.py).",
    ),
    "davis17": Protocol(
        "davis17", "davis17", "val", context_frames=2, steps=5, resolution=(480, 854),
        notes="DAVIS 2017 val (ImageSets/2017/val.txt, 30 videos, JPEGImages/480p): the first 9 frames of each "
        "video resized to 854x480; frames 2, 3 -> 4..8, recursive t+1..t+5 (DMVFN's DavisValDataset).",
    ),
    "vimeo90k": Protocol(
        "vimeo90k", "vimeo90k", "test", context_frames=2, steps=1, resolution=(256, 448),
        notes="triplet test list (tri_testlist.txt, 3,782 triplets): im1, im2 -> im3 (t+1 only); 448x256 "
        "(DMVFN's VimeoValDataset).",
        dataset_options=(("variant", "triplet"),),
    ),
    "vimeo90k_septuplet": Protocol(
        "vimeo90k_septuplet", "vimeo90k", "test", context_frames=2, steps=1, resolution=(256, 448),
        notes="septuplet test list (sep_testlist.txt): im1, im2 -> im3 (t+1 only); 448x256. Ours, not a published table.",
        dataset_options=(("variant", "septuplet"),),
    ),
    "gopro": Protocol(
        "gopro", "gopro", "test", context_frames=2, steps=5, frame_stride=8, resolution=(720, 1280),
        notes="240 fps test sequences sampled every 8th frame (30 fps); 2 context, up to 5 future frames.",
    ),
    "frames": Protocol(
        "frames", "frames", "test", context_frames=2, steps=5,
        notes="any video or frames folder: the last 10% of each clip (never trained on), non-overlapping windows.",
        dataset_options=(("test_fraction", 0.1),),
    ),
    "frames_heldout": Protocol(
        "frames_heldout", "frames", "test", context_frames=2, steps=5,
        notes="a clip (or folder of clips) never trained on: non-overlapping windows over the whole clip.",
        dataset_options=(("test_fraction", 1.0),),
    ),
    "synthetic": Protocol(
        "synthetic", "synthetic", "test", context_frames=2, steps=5,
        metrics=DEFAULT_METRICS + ("epe",),
        notes="built-in generator's test split (own seed); EPE of the t+1 target->context flows "
        "against gt_flow on gt_valid.",
    ),
}


def list_protocols() -> list[str]:
    return list(PROTOCOLS)


def get_protocol(name: str | Protocol) -> Protocol:
    """The named Protocol (a Protocol passes through); ValueError lists the valid names."""
    if isinstance(name, Protocol):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    for protocol_name, protocol in PROTOCOLS.items():
        if protocol_name.replace("_", "") == key:
            return protocol
    raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}")


def published_rows(protocol) -> tuple[dict, ...]:
    """DMVFN's published figures for a protocol name (`PUBLISHED`), () where there are none."""
    if protocol is None:
        return ()
    name = protocol.name if isinstance(protocol, Protocol) else str(protocol)
    return PUBLISHED.get(name, ())
