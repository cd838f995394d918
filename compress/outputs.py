"""Output directories: the one place that decides where compress may write and delete.

The rules (docs/reliability.md):

* compress writes and deletes only inside directories it created and marked as its own (a
  ``.compress`` marker file); a non-empty directory without the marker is refused, never
  written into;
* a name taken from a config (a pipeline stage, a model folder) never leads out of the output
  root: such names are plain file names, checked by `safe_name`;
* a directory is locked (``flock`` on ``.compress.lock``) while a run uses it, so two runs
  never mix their files;
* a previous output is moved aside, not deleted, until the new one is complete (`move_aside`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from compress.errors import CompressError

MARKER = ".compress"
LOCK = ".compress.lock"
#: Files whose presence means a directory already holds a finished or started run.
RUN_FILES = ("state.pt", "summary.json", "config.yaml", "model.safetensors")
_LEGACY_HEADER = "# resolved config written by compress"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def safe_name(name: object, *, what: str) -> str:
    """`name` if it is a plain file name (letters, digits, ``_ . + -``), else a one-line error.

    Used for every name a config turns into a path, so ``../x``, ``/abs``, ``.`` and
    ``a/b`` can never address anything outside the output root.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".prev"):
        raise CompressError(
            f"{what} {name!r} cannot be used as a folder name: use letters, digits, '_', '.', '+' "
            "or '-' (starting with a letter or digit, not ending in '.prev'), no '/'"
        )
    return name


def slug(text: str) -> str:
    """A safe folder name derived from arbitrary text (``..`` or ``a/b`` become ``model``/``a_b``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("._") or "model"
    return cleaned[:100] if _NAME.fullmatch(cleaned[:100]) else "model"


def is_owned(path: Path) -> bool:
    """Whether `path` is a directory compress made (its marker, or a run written before markers)."""
    if (path / MARKER).is_file() or (path / "stage.json").is_file():
        return True
    try:
        with open(path / "config.yaml", encoding="utf-8") as fh:
            return fh.readline().startswith(_LEGACY_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name not in (MARKER, LOCK))


def _os_error(path: Path, exc: OSError) -> CompressError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "a file stands where a folder is needed"
    return CompressError(
        f"cannot create or write the output folder '{path}' ({reason}); choose a writable --output"
    )


def make_owned_dir(path: str | Path, *, kind: str) -> Path:
    """Create `path` (and parents) if needed and mark it as compress's; refuse a foreign folder.

    Raises:
        CompressError: `path` is a file, sits under a file, is not writable, or is a non-empty
            folder compress did not make.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CompressError(f"'{out}' is a file, not a folder; choose another --output")
    if out.is_dir() and not is_owned(out):
        files = _visible(out)
        if files:
            shown = ", ".join(files[:4]) + (", ..." if len(files) > 4 else "")
            raise CompressError(
                f"'{out}' already exists and holds files compress did not write ({shown}); "
                "choose a new or empty --output (compress never writes into a folder it did not make)"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / MARKER).is_file():
            marker = {
                "kind": kind,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            (out / MARKER).write_text(json.dumps(marker) + "\n")
    except OSError as exc:
        raise _os_error(out, exc) from None
    return out


class LockBusyError(CompressError):
    """Another process holds the lock (a condition of the moment, not of the input)."""


class DirectoryLock:
    """An exclusive, non-blocking ``flock`` on ``DIR/.compress.lock`` (released on close or exit).

    The lock file is removed when the lock is released, so a finished run leaves none behind.
    Removal is safe against a process that opened the old file just before: the holder checks,
    once it has the lock, that the path still names the file it locked, and otherwise tries again.
    """

    def __init__(self, directory: Path, name: str = LOCK, *, what: str | None = None) -> None:
        """Lock `directory` through the file `name` in it.

        `what` is how a refusal names the locked thing (default: the directory).
        """
        self.path = directory / name
        self.what = what or f"'{directory}'"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise a one-line `CompressError` naming the holder's pid."""
        import fcntl

        for _ in range(8):  # a lock file removed between open and flock: open the new one
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _os_error(self.path.parent, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise LockBusyError(
                    f"{self.what} is in use by another compress process (pid {holder}); "
                    "wait for it to finish or choose another --output"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return
            os.close(fd)
        raise CompressError(f"could not lock '{self.path.parent}'; try again")

    def release(self) -> None:
        """Remove the lock file, then release the lock."""
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def run_directory(
    path: str | Path,
    *,
    kind: str,
    resume: bool = False,
    run_files: tuple[str, ...] = RUN_FILES,
    reuse: bool = False,
) -> Iterator[Path]:
    """Claim an output folder for one run: create and mark it, lock it, check it may be used.

    Args:
        path: the folder.
        kind: what writes it (``train``, ``export``, ...), recorded in the marker.
        resume: the run continues one already in the folder.
        run_files: files that mean the folder already holds a run.
        reuse: the verb may add to a folder it made before (``export``, ``benchmark``).

    Raises:
        CompressError: the folder belongs to the user, holds a run and `resume` is false,
            holds nothing to resume, or is in use by another process.
    """
    out = make_owned_dir(path, kind=kind)
    with DirectoryLock(out):
        if not reuse:
            found = [m for m in run_files if (out / m).exists()]
            # a config.yaml alone is a start that was refused before training began (a typo, a
            # missing extra): compress's own file, which a corrected start may replace
            started = [m for m in found if m != "config.yaml"]
            if started and not resume:
                raise CompressError(
                    f"output directory '{out}' already holds a run ({started[0]}); pass --resume "
                    "to continue it or choose another --output"
                )
            if resume and not found:
                raise CompressError(
                    f"--resume given but '{out}' holds no run to resume (no {run_files[0]}); drop "
                    "--resume to start a new run"
                )
        yield out


def remove_owned(path: Path) -> None:
    """Delete a folder compress made; refuse (one-line error) anything else."""
    if not path.exists():
        return
    if path.is_symlink() or not path.is_dir() or not is_owned(path):
        raise CompressError(
            f"'{path}' was not made by compress, so compress will not delete it; move it away"
        )
    shutil.rmtree(path)


def move_aside(path: Path) -> Path:
    """Move the finished output `path` to ``<path>.prev`` (replacing an older ``.prev`` of ours).

    Raises:
        CompressError: ``<path>.prev`` exists and is not compress's.
    """
    prev = path.with_name(path.name + ".prev")
    if prev.exists() or prev.is_symlink():
        remove_owned(prev)
    path.rename(prev)
    return prev


@contextlib.contextmanager
def run_directory_main(path: str | Path, **kwargs: object) -> Iterator[Path]:
    """`run_directory` on the process that writes (rank 0 under torchrun); the path elsewhere.

    Only rank 0 creates, marks and locks the folder; the other ranks never write into it.
    Should rank 0 refuse the folder, torchrun stops every rank.
    """
    from compress.distributed import barrier, env

    if env().is_main:
        with run_directory(path, **kwargs) as out:  # type: ignore[arg-type]
            barrier()
            yield out
    else:
        barrier()
        yield Path(path)


def write_report(path: str | Path, data: dict) -> Path:
    """Write a JSON report the user asked for (``--json FILE``), never over a file of theirs.

    Raises:
        CompressError: `path` exists and is not a report compress wrote, is a link or a folder.
    """
    from compress._version import __version__
    from compress.atomic import atomic_write_json
    from compress.runtime.reports import REPORT_KEY, refusal

    problem = refusal(str(path))
    if problem:
        raise CompressError(problem)
    atomic_write_json(path, {REPORT_KEY: f"compress {__version__}", **data})
    return Path(path)
