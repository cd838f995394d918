"""Multi-process training with PyTorch's own engine: ``torchrun`` launches, DDP averages gradients.

`setup` reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), initialises the
process group once (NCCL on CUDA, Gloo on CPU, with a timeout so that no rank waits forever
for a rank that died) and pins each process to its GPU. Without torchrun everything here is a
no-op and a run is a single process. Batch sizes are per process; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

#: How long a collective waits for the other ranks before failing (overridable by the env).
TIMEOUT_S = int(os.environ.get("COMPRESS_DIST_TIMEOUT", "600"))


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a run."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0


_ENV = DistEnv()


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_type: str) -> DistEnv:
    """Initialise the process group (once) when started by torchrun; return this process's place."""
    global _ENV
    import torch.distributed as dist

    if not launched():
        return _ENV
    if dist.is_initialized():
        return _ENV
    backend = "nccl" if device_type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=TIMEOUT_S))
    _ENV = DistEnv(dist.get_world_size(), dist.get_rank(), local_rank, backend)
    import atexit

    atexit.register(_shutdown)  # a group left open aborts the process at exit (Gloo threads)
    return _ENV


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:  # let every rank reach its end before the group goes (bounded: a rank may have died)
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=_dt.timedelta(seconds=30))
        except RuntimeError:
            pass
        finally:
            dist.destroy_process_group()


def env() -> DistEnv:
    """This process's place (world size 1 when not distributed)."""
    return _ENV


def rank_log(log: Callable[[str], None]) -> Callable[[str], None]:
    """`log` on the process that speaks (rank 0, or the only one); a no-op on the other ranks."""
    return log if _ENV.is_main else _silent


def _silent(_message: str) -> None:
    """The log of ranks other than 0 under torchrun."""


def _collective(run: Any) -> Any:
    """Run a collective; a rank that never answers becomes a one-line error, not a traceback."""
    from compress.errors import CompressError

    try:
        return run()
    except RuntimeError as exc:  # DistBackendError and Gloo's errors derive from it
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CompressError(
            f"rank {_ENV.rank}: another process of this torchrun stopped or did not answer within "
            f"{TIMEOUT_S} s ({first}); its own message above says why"
        ) from None


def all_reduce_sum(values: list[float], device: Any = "cpu") -> list[float]:
    """The sums of `values` over every rank (unchanged in a single process)."""
    if not _ENV.enabled:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    _collective(lambda: dist.all_reduce(t))
    return t.tolist()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _ENV.enabled:
        import torch.distributed as dist

        _collective(dist.barrier)


def gather(value: Any) -> list[Any]:
    """`value` of every rank, in rank order (``[value]`` in a single process)."""
    if not _ENV.enabled:
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * _ENV.world_size
    _collective(lambda: dist.all_gather_object(out, value))
    return out


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Run a block (a verb's set-up) on every rank; an error on one stops all with its message.

    Without this, a rank that fails to load its data exits while the others wait in their first
    collective until the timeout. Here every rank reaches the end of the block and learns what
    the others met: each raises the first error, as one line naming the rank.
    """
    from compress.errors import CompressError

    if not _ENV.enabled:
        yield
        return
    error: BaseException | None = None
    try:
        yield
    except Exception as exc:  # shared with the other ranks, then raised
        error = exc
    mine = None
    if error is not None:
        kind = (
            "" if isinstance(error, CompressError) else f"internal error ({type(error).__name__}): "
        )
        mine = kind + " ".join(str(error).split())
    failed = [(rank, m) for rank, m in enumerate(gather(mine)) if m is not None]
    if not failed:
        return
    if error is not None and not isinstance(error, CompressError):
        raise error  # a bug on this rank: its own traceback in the crash log
    rank, message = failed[0]
    raise CompressError(f"rank {rank}: {message}")


def agree(what: str, value: Any) -> None:
    """Refuse to go on unless every rank has the same `value` (e.g. batches per epoch).

    Ranks that disagree would call a different number of collectives and abort deep in the
    backend; this says which rank saw what.

    Raises:
        CompressError: on every rank, the same line.
    """
    from compress.errors import CompressError

    values = gather(value)
    if any(v != values[0] for v in values):
        seen = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise CompressError(
            f"the processes of this torchrun see different {what} ({seen}); give every rank the "
            "same data (the same --data-dir and dataset files on every node)"
        )


def shard(n: int, per_rank: int, index: int) -> slice:
    """The slice of global batch `index` (of size ``per_rank × world``) that this rank takes."""
    start = index * per_rank * _ENV.world_size + _ENV.rank * per_rank
    return slice(min(start, n), min(start + per_rank, n))


def wrap(task: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The task in DistributedDataParallel, its frozen modules (teachers, the pruned copy) left out.

    Returns the task itself in a single process.
    """
    if not _ENV.enabled:
        return task
    from torch.nn.parallel import DistributedDataParallel as DDP

    frozen = tuple(getattr(task, "frozen", ()))
    ignore = [
        name
        for name, _ in [*task.named_parameters(), *task.named_buffers()]
        if any(name == f or name.startswith(f + ".") for f in frozen)
    ]
    DDP._set_params_and_buffers_to_ignore_for_model(task, ignore)
    ids = [device.index] if device.type == "cuda" else None
    unused = bool(getattr(task, "unused_parameters", False))  # only where a task needs it
    return DDP(task, device_ids=ids, broadcast_buffers=False, find_unused_parameters=unused)
