"""Shared file handling for the dataset loaders: clear errors, locked one-time preparation.

Several runs of a sweep may start at once on one data root, so downloads and archive
extraction happen under an exclusive lock file and land in place with an atomic rename:
a run sees either no dataset folder or a complete one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from dstbench.errors import DataError
from dstbench.io import open_lock_file, os_error_text

try:  # POSIX advisory locks; elsewhere preparation is simply not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def missing_data(dataset: str, searched: Path | str, how: str) -> DataError:
    """The one-line error for absent data: the dataset, the path searched, how to get it."""
    return DataError(f"dataset {dataset!r}: no data at {searched}; {how}")


def bad_file(dataset: str, path: Path | str, problem: str) -> DataError:
    """The one-line error for a file that exists but is not in the expected format."""
    return DataError(f"dataset {dataset!r}: {path}: {problem}")


@contextlib.contextmanager
def exclusive(root: Path, name: str) -> Iterator[None]:
    """Hold the lock ``root/.name.lock`` (creating ``root``) for one-time preparation."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(os_error_text(root, exc)) from None
    # Never "w": a lock planted as a symlink must not truncate what it points to.
    with open_lock_file(root / f".{name}.lock") as fd:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


def extract_folder(archive: Path, folder: Path) -> None:
    """Unpack ``archive`` (.tar.gz/.tgz/.tar or .zip) whose top-level folder is ``folder.name``
    into ``folder.parent``, atomically; a no-op when ``folder`` already exists.

    :raises DataError: when the archive is unreadable or lacks that top-level folder.
    """
    parent = folder.parent
    with exclusive(parent, folder.name):
        if folder.exists():
            return
        staging = parent / f".{folder.name}.extracting-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(staging)
            else:
                with tarfile.open(archive) as tf:
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(staging, filter="data")
                    else:  # pragma: no cover - Python without extraction filters
                        tf.extractall(staging)
            if not (staging / folder.name).is_dir():
                msg = f"{archive}: expected a top-level folder {folder.name!r} in the archive"
                raise DataError(msg)
            os.replace(staging / folder.name, folder)
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            msg = f"{archive}: cannot unpack ({exc})"
            raise DataError(msg) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
