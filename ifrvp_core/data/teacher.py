"""Teacher flow of a dataset: where prepared flow files live, and what each `teacher_flow` mode asks for.

Prepared flow (`python -m data_prep teacher_flow`) sits in a tree parallel to the frames,
`<root>/teacher_flow/<frame folder>/<target>_to_<context>.flo` (or `.npy`), so the dataset itself
is never modified. Every reader (folders, videos, shards) resolves its `teacher_flow=` argument
with `teacher_mode` and reports where its flow comes from with `describe_teacher_source`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEACHER_DIR = "teacher_flow"
# The values of `teacher_flow=`, each with one meaning; "auto" means what training's `--teacher_flow auto` means:
TEACHER_MODE_MEANINGS = {
    False: "no teacher", "none": "no teacher",
    True: "prepared files, required", "disk": "prepared files, required",
    "files": "prepared files when present, else none",
    "dis": "OpenCV DIS on the fly",
    "auto": "prepared files when present, else DIS on the fly",
    "auto_dis": "the old name of 'auto'",
}
TEACHER_MODES = tuple(TEACHER_MODE_MEANINGS)
DEFAULT_TEACHER_MODE = "files"  # the readers' default: prepared flow where it exists, no DIS
TEACHER_SUFFIXES = (".flo", ".npy")


@dataclass(frozen=True)
class TeacherMode:
    """What a `teacher_flow=` value asks of a reader."""

    stored: bool  # use prepared flow when the dataset has it
    required: bool  # prepared flow must be there (an error otherwise)
    dis: bool  # no prepared flow: compute OpenCV DIS on the fly, on the final (augmented) sample


def teacher_mode(value) -> TeacherMode:
    """The `TeacherMode` of a `teacher_flow=` value; a `ValueError` naming the valid values otherwise."""
    if value not in TEACHER_MODES:
        valid = "; ".join(f"{mode!r} ({meaning})" for mode, meaning in TEACHER_MODE_MEANINGS.items())
        raise ValueError(f"teacher_flow must be one of {valid}; got {value!r}")
    return TeacherMode(stored=value in (True, "disk", "files", "auto", "auto_dis"), required=value in (True, "disk"),
                       dis=value in ("dis", "auto", "auto_dis"))


def teacher_flow_path(root: Path, target, context, suffix: str = ".flo") -> Path:
    """Where the teacher flow from frame `target` to frame `context` lives (a parallel tree)."""
    relative = target.parent.relative_to(root)
    return root / TEACHER_DIR / relative / f"{target.stem}_to_{context.stem}{suffix}"


def find_teacher_suffix(root: Path, target: Path, context: Path) -> str | None:
    """The suffix (".flo" or ".npy") of the prepared flow from `target` to `context`; None when there is none."""
    for suffix in TEACHER_SUFFIXES:
        if teacher_flow_path(root, target, context, suffix).is_file():
            return suffix
    return None


# On-the-fly DIS teacher flow, by where it is computed (`flow_region`)
DIS_TEACHER_SOURCES = {
    "crop": "DIS on the fly (target -> each context frame, on the training crop)",
    "frame": "DIS on the fly (target -> each context frame, on the full frame before augmentation)",
}


def describe_teacher_source(synthetic: bool, stored: str | None, on_the_fly: bool, flow_region: str = "crop") -> str:
    """Where a reader's `teacher_flow` comes from, as the trainer logs it (`stored`: where prepared flow lives;
    `flow_region`: where on-the-fly DIS is computed, "crop" or "frame")."""
    if synthetic:
        return "synthetic ground truth"
    if stored is not None:
        return f"prepared files ({stored})"
    return DIS_TEACHER_SOURCES[flow_region] if on_the_fly else "none"


__all__ = ["DEFAULT_TEACHER_MODE", "DIS_TEACHER_SOURCES", "TEACHER_DIR", "TEACHER_MODES", "TEACHER_MODE_MEANINGS", "TeacherMode", "describe_teacher_source",
           "find_teacher_suffix", "teacher_flow_path", "teacher_mode"]
