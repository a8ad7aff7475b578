"""Atomic file writes: the one writer behind every file this project writes in place.

A write goes to a temporary file with a unique name in the destination's folder, is flushed and
fsynced, gets the mode an ordinary new file would have (``0o666 & ~umask``: 0644 under the usual
umask 022), and is renamed over the destination with ``os.replace``; the folder is fsynced too, so
the rename itself is durable. A crash, a full disk or an exception in the middle never leaves a
half-written file where a good one was, and readers never see a partial file.

Checkpoints (`checkpoint.save_atomic`), JSON and text (`write_text_atomic`), images and flows
(`ifrvp_core.data.io`) and the synthetic clips go through `write_atomic`; videos and animations,
whose encoders want a file name, through `write_file_atomic`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status).

    Elsewhere it is read by setting it and putting it straight back (the only portable way).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 without the umask's bits (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def ordinary_dir_mode() -> int:
    """The mode `mkdir` gives a new folder: 0o777 without the umask's bits (0755 under umask 022)."""
    return 0o777 & ~current_umask()


def write_atomic(path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(handle)` on a binary temporary file next to `path`, fsync, rename over `path`, fsync the folder.

    `tempfile.mkstemp` creates the temporary file with a unique name and mode 0600 (private while
    it is written); before the rename it gets the mode an ordinary new file would have
    (umask-respecting, 0644 under the usual umask 022), so reports, checkpoints, JSON files and
    data can be served or read by other users like any other file. The folder is created if needed.
    """
    def write_to(tmp_path: Path) -> None:
        with open(tmp_path, "wb") as handle:
            write(handle)

    return write_file_atomic(path, write_to)


def write_file_atomic(path, write_to: Callable[[Path], object]) -> Path:
    """`write_to(temporary_path)` writes the whole file; then its mode, fsync, rename and folder fsync.

    The temporary file (unique, in the destination's folder) keeps the destination's suffix
    (``.mp4``, ``.gif``), so writers that take a file name and pick the format by its suffix
    (video encoders, imageio) work unchanged. `write_atomic` is this with a file handle.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write_to(Path(tmp_name))
        with open(tmp_name, "rb+") as handle:
            os.fchmod(handle.fileno(), ordinary_file_mode())
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        _remove(tmp_name)
        raise
    _fsync_folder(path.parent)
    return path


def _remove(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (where the OS lets a folder be fsynced)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write `data` to `path` atomically (`write_atomic`)."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path, text: str) -> Path:
    """Write `text` (UTF-8, newlines as given) to `path` atomically (`write_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


__all__ = ["current_umask", "ordinary_dir_mode", "ordinary_file_mode", "write_atomic", "write_bytes_atomic", "write_file_atomic",
           "write_text_atomic"]
