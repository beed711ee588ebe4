"""Safe file writes: atomic, strict, never through a planted link, honouring the umask.

Every output dstbench writes (records, leaderboards, plots, suite copies) goes through
:func:`write_bytes_atomic`: a temporary file created next to the target with ``O_EXCL`` and
``O_NOFOLLOW`` (so a planted symlink can neither be followed nor truncated), written, fsynced,
renamed over the target and the directory fsynced, so a reader sees the old file or the new
one, even after SIGKILL or a power cut. The temporary file gets mode ``0666`` minus the umask,
like any file a program creates (``mkstemp``'s ``0600`` would hide results from the group on
a shared cluster). A write that fails for a reason the user can fix (no space left, a
read-only directory, a directory where the file should go) raises :class:`OutputError`, one
line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dstbench.errors import DstbenchError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class OutputError(DstbenchError):
    """An output cannot be written where it was asked for (one line naming the path)."""


def os_error_text(path: str | os.PathLike[str], exc: OSError) -> str:
    """``results/x: no space left on device``: the path and the OS's reason, lower-cased."""
    reason = exc.strerror or str(exc)
    return f"{path}: {reason[:1].lower()}{reason[1:]}"


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path that would replace something that is not a regular file.

    A directory, a device node, a FIFO or a socket is never replaced, and neither is a
    symbolic link (replacing it silently would leave its target stale, and following it
    would write somewhere the user did not name).

    :raises OutputError: naming the path and what is there.
    """
    target = Path(path)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise OutputError(os_error_text(target, exc)) from None
    mode = info.st_mode
    what = None
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif stat.S_ISDIR(mode):
        what = "a directory"
    elif stat.S_ISFIFO(mode):
        what = "a FIFO"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device node"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    if what is not None:
        raise OutputError(f"{target}: is {what}; refusing to replace it (expected a file path)")
    return target


def check_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and prove a file can be created in it (then removed).

    :raises OutputError: when it is not a directory, or cannot be created or written.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder}: is not a directory") from None
    except OSError as exc:
        raise OutputError(os_error_text(folder, exc)) from None
    if not folder.is_dir():
        raise OutputError(f"{folder}: is not a directory")
    probe = folder / f".dstbench-write-test-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(os_error_text(folder, exc)) from None
    return folder


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename in it survives a crash); best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot fsync directories
            os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename.

    :raises OutputError: when the path holds something other than a regular file, or the
        write fails (no space, read-only, ...).
    """
    target = check_output_file(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(os_error_text(target.parent, exc)) from None
    tmp = target.parent / f".{target.name[:200]}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any created file
    except OSError as exc:
        raise OutputError(os_error_text(target, exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(os_error_text(target, exc)) from None
        raise
    fsync_dir(target.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text counterpart of :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±Infinity) replaced by None.

    Strict JSON has no NaN or Infinity; Python would write bare ``NaN`` that most JSON
    readers (browsers, jq, pandas' strict mode) reject.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON (non-finite numbers as null)."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=True, allow_nan=False)
    write_text_atomic(path, text + "\n")


#: The largest JSON file a reader reads (records, manifests, ledgers): 64 MiB.
MAX_JSON_BYTES = 64 * 2**20


class NotAFileError(ValueError):
    """What a reader was pointed at is not a regular file, or is larger than it reads."""


def read_limited(path: str | os.PathLike[str], limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    The file is opened without blocking, so a FIFO planted under a reader's name cannot hang
    it, and refused unless it is a regular file (a link to ``/dev/zero``, a FIFO, a socket or
    a device is never read); a file larger than ``limit`` is refused, never read to its end.

    :raises OSError: when it cannot be opened.
    :raises NotAFileError: when it is not a regular file or is larger than ``limit``.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFileError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise NotAFileError(f"{path}: larger than {limit} bytes")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise NotAFileError(f"{path}: larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str], limit: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file (a regular file of at most ``limit`` bytes: :func:`read_limited`).

    :raises OSError: when it cannot be opened.
    :raises ValueError: when it is not a regular file, too large, not UTF-8 or not JSON.
    """
    return json.loads(read_limited(path, limit).decode("utf-8"))


@contextlib.contextmanager
def open_lock_file(path: str | os.PathLike[str]) -> Iterator[int]:
    """Open (creating) a lock file for ``fcntl.flock`` without following a symlink there.

    The file is never truncated on open, so a lock planted as a link to something valuable
    cannot destroy it; a link or a non-regular file is refused.

    :raises OutputError: when the lock file is a symlink, not a regular file, or cannot be
        created (e.g. a read-only directory).
    """
    lock = Path(path)
    flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or lock.is_symlink():
            raise OutputError(f"{lock}: is a symbolic link; refusing to use it as a lock") from None
        raise OutputError(os_error_text(lock, exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(f"{lock}: is not a regular file; refusing to use it as a lock")
        if info.st_nlink > 1:  # a hard link to another file: writing would change that file
            raise OutputError(f"{lock}: has other hard links; refusing to use it as a lock")
        yield fd
    finally:
        os.close(fd)
