"""Where a study's cells run: here one after another (`LocalExecutor`), or on Ray (`RayExecutor`).

An executor gets the teachers' and the cells' specs (`compress.study.cells`) and returns one
result per cell, in the cells' order, reporting each finished cell to a `Progress`. Both call
the same `run_teacher` / `run_cell`, so the same cells give the same table whichever ran them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compress.errors import CompressError


def parse_executor(text: str) -> LocalExecutor | RayExecutor:
    """``local``, ``ray`` or ``ray:ADDRESS`` → the executor; anything else a one-line error."""
    from compress.study.config import split_executor

    name, address = split_executor(text)
    return LocalExecutor() if name == "local" else RayExecutor(address)


class Progress:
    """One line per finished cell, with done / running / failed / pending counts."""

    def __init__(self, total: int, root: Path, symbol: str, log: Callable[[str], None]) -> None:
        self.total, self.root, self.symbol, self.log = total, root, symbol, log
        self.finished = self.failed = self.ran = 0
        self.started = time.perf_counter()

    def running(self) -> int:
        """Claims held now (by any worker of any node that shares the study's directory)."""
        import fcntl

        held = 0
        for path in (self.root / ".claims").glob("*.lock"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # released (removed) meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                held += 1
            finally:
                os.close(fd)
        return held

    def cell(self, result: dict[str, Any], *, eta: bool = False) -> None:
        """Report one finished (or skipped, or failed) cell."""
        self.finished += 1
        key = f"{result['value']:g}/{result['method']}/seed{result['seed']}"
        if result["status"] == "failed":
            self.failed += 1
            status = f"FAILED: {result['error']}"
        elif result.get("skipped"):
            status = "skipped (done)"
        else:
            self.ran += 1
            status = f"last-epoch top-1 {100 * result['top1_last']:.2f}%"
            status += f" on {result.get('node')} in {result.get('seconds') or 0:.1f} s"
            if (result.get("attempts") or 1) > 1:
                status += f" (attempt {result['attempts']})"
        left = self.total - self.finished
        counts = (
            f"{self.finished - self.failed} done, {self.running()} running, {self.failed} failed, "
            f"{left} pending"
        )
        if eta and self.ran:
            per = (time.perf_counter() - self.started) / self.ran
            counts += f"; ETA {per * left / 60:.1f} min"
        self.log(f"[{self.finished}/{self.total}] {self.symbol}={key}: {status}; {counts}")


class LocalExecutor:
    """Every run in this process, one after another; a teacher when its first cell needs it."""

    name = "local"

    def where(self, resources: Any) -> str:
        """Where a cell would run (for ``--dry-run``)."""
        return f"here ({socket.gethostname()}), {resources.cpus} thread(s)"

    def run(
        self, teachers: dict[float, dict[str, Any]], cells: list[dict[str, Any]],
        progress: Progress, config: Any, log: Callable[[str], None],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Run the cells in order; a failed input is recorded, a busy claim retried."""
        retries = config.retries
        from compress.study.cells import run_cell, run_teacher

        done: dict[float, dict[str, Any]] = {}
        results = []
        for spec in cells:
            value = spec["value"]
            if value not in done:
                log(f"{teachers[value]['label']} → {teachers[value]['directory']}")
                done[value] = _with_retries(lambda v=value: run_teacher(teachers[v]), retries)
            result = _with_retries(lambda s=spec, v=value: run_cell(s, done[v]), retries)
            progress.cell(result, eta=True)
            results.append(result)
        return results


def _with_retries(call: Callable[[], dict[str, Any]], retries: int) -> dict[str, Any]:
    from compress.study.cells import ClaimBusy

    for attempt in range(retries + 1):
        try:
            return call()
        except ClaimBusy:
            if attempt == retries:
                raise
            time.sleep(min(30.0, 2.0**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


class RayExecutor:
    """Every run a Ray task with the study's resources; a cell depends on its teacher's task.

    ``address``: ``None`` (``RAY_ADDRESS``, else a cluster already started on this machine,
    else a new local instance), ``auto`` (a cluster already started here) or ``HOST:PORT``.
    """

    name = "ray"

    def __init__(self, address: str | None) -> None:
        self.address = address

    def where(self, resources: Any) -> str:
        """Where a cell would run (for ``--dry-run``)."""
        at = self.address or os.environ.get("RAY_ADDRESS") or "this machine's cluster or a new one"
        return (
            f"Ray ({at}): any node with {resources.cpus} CPU(s)"
            + (f" and {resources.gpus:g} GPU(s)" if resources.gpus else "")
            + " free"
        )

    def _init(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if _loopback(self.address or os.environ.get("RAY_ADDRESS")):
            # Ray binds every server of a node to its node IP, which it takes to be the
            # machine's reachable address unless told otherwise (read when ray is imported):
            # on this machine alone (a new local instance, or a cluster at 127.0.0.1) keep them
            # all on loopback
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise CompressError(
                "--executor ray needs Ray: pip install 'compress-toolkit[ray]'"
            ) from None
        extra = {}
        if _loopback(self.address or os.environ.get("RAY_ADDRESS")):
            # ray imported before the variable was set (a notebook, a test) read it already;
            # Ray's own switch for it is the module constant its address resolution reads
            constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
            if getattr(constants, "ENABLE_RAY_CLUSTER", False):
                constants.ENABLE_RAY_CLUSTER = False
            if self.address:
                extra["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(
                address=self.address, include_dashboard=False, log_to_driver=False,
                configure_logging=False, **extra,
            )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CompressError(
                f"could not reach the Ray cluster at {self.address or 'RAY_ADDRESS/local'}: "
                f"{first}; start one with `ray start --head` or give --executor ray:HOST:PORT"
            ) from None
        return ray

    def run(
        self, teachers: dict[float, dict[str, Any]], cells: list[dict[str, Any]],
        progress: Progress, config: Any, log: Callable[[str], None],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Submit every teacher, then every cell with its teacher's result as a dependency."""
        retries = config.retries
        from compress.study.cells import ClaimBusy, run_cell, run_teacher

        ray = self._init()
        try:
            options = {
                "num_cpus": config.resources.cpus, "num_gpus": config.resources.gpus,
                "max_retries": retries,
                "retry_exceptions": [ClaimBusy, OSError],
            }  # fmt: skip
            teacher_task = ray.remote(run_teacher).options(**options)
            cell_task = ray.remote(run_cell).options(**options)
            refs = {v: teacher_task.remote(spec) for v, spec in teachers.items()}
            log(f"Ray: {len(refs)} teacher(s) and {len(cells)} cell(s) submitted to {_nodes(ray)}")
            pending = {
                cell_task.remote(spec, refs[spec["value"]]): i for i, spec in enumerate(cells)
            }
            results: list[dict[str, Any] | None] = [None] * len(cells)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=None)
                for ref in ready:
                    i = pending.pop(ref)
                    results[i] = _gather(ray, ref, cells[i], retries)
                    progress.cell(results[i])
            return [r for r in results if r is not None]
        finally:
            ray.shutdown()


def _loopback(address: str | None) -> bool:
    """A new local instance, or a cluster at 127.0.0.1 / localhost.

    Without an address Ray joins a cluster already started on this machine (its temp dir
    records it) and starts a new instance only when there is none; a cluster someone started
    is left on the address it chose.
    """
    if not address or address == "local":
        import tempfile

        return not (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").exists()
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def _nodes(ray: Any) -> str:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in alive)
    gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in alive)
    return f"{len(alive)} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s)"


def _gather(ray: Any, ref: Any, spec: dict[str, Any], retries: int) -> dict[str, Any]:
    """A task's result; a task that failed on every attempt is a failed cell, in one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
        return {
            "value": spec["value"], "method": spec["method"], "seed": spec["seed"],
            "status": "failed",
            "error": f"{type(cause).__name__} after {retries + 1} attempt(s): {first}"[:300],
        }  # fmt: skip
