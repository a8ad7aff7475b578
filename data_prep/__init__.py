"""One-time dataset preparation tools: `python -m data_prep <tool> ...`.

Tools: verify, prepare_cityscapes, prepare_kitti, prepare_davis, video_to_frames, make_synthetic,
downscale_cityscapes, real_clips, teacher_flow, pack. Each is also a function notebooks call. All
write atomically and show progress bars; all but pack are resumable (finished files are skipped);
pack rewrites a split's shards and writes its manifest last.
"""
from data_prep.tools import downscale_cityscapes, make_synthetic, video_to_frames
from data_prep.prepare import PrepareReport, prepare_cityscapes, prepare_davis, prepare_kitti, prepare_resized
from data_prep.real_clips import prepare_real_clips
from data_prep.pack import pack_dataset
from data_prep.teacher_flow import compute_teacher_flow
from data_prep.verify import VerifyReport, verify_dataset

__all__ = [
    "PrepareReport", "VerifyReport", "compute_teacher_flow", "downscale_cityscapes", "make_synthetic", "pack_dataset",
    "prepare_cityscapes", "prepare_davis", "prepare_kitti", "prepare_real_clips", "prepare_resized", "verify_dataset",
    "video_to_frames",
]
