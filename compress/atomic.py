"""Files written atomically (temporary name, fsync, rename), appended logs and file hashes.

At the bottom of the package: everything that writes a file uses these, and they import
nothing of compress but its error types. A write that fails for a reason the user can fix (the
disk is full, a file stands where a folder should be, a read-only or virtual file system)
becomes one `OutputWriteError` naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compress.errors import OutputWriteError

#: errno values of write failures the user can fix, with what to say about them.
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EINVAL: "the file system does not take such a file",
    errno.ENOENT: "a folder on the way does not exist",
    errno.EISDIR: "a folder stands where the file should be",
    errno.EFBIG: "the file is too large for this file system",
}


#: errno values that, raised while a file is being written, mean the file system is full.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_error(path: str | Path, exc: OSError, needed: int | None = None) -> OutputWriteError:
    """The one-line error for a failed write of `path` (free space and need when the disk is full)."""
    reason = _REASONS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = Path(path).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            free = shutil.disk_usage(folder).free
            reason += f" ({_size(free)} free"
            reason += f", {_size(needed)} needed)" if needed else ")"
        except OSError:
            pass
    advice = (
        "free space or choose another output" if exc.errno in _FULL else "choose another output"
    )
    return OutputWriteError(f"cannot write '{path}': {reason}; {advice}")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    A crash or kill at any moment leaves either the old file or the new one, never a torn one.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, _umask_mode())
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno in _FULL:
                raise write_error(target, exc, _written(tmp)) from None
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _written(tmp: Path) -> int | None:
    try:
        return tmp.stat().st_size or None
    except OSError:
        return None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            if exc.errno in _FULL:
                raise write_error(path, exc, len(data)) from None
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` (used for append-only logs such as ``metrics.jsonl``)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno in _REASONS:
            raise write_error(path, exc) from None
        raise


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_ref(path: str | Path) -> dict[str, str]:
    """A provenance reference to a file: its path and SHA-256."""
    p = Path(path)
    return {"path": str(p), "sha256": file_sha256(p)}
