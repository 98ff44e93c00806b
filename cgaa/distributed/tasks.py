"""Running a set of independent tasks on a Dask client, or one after another without one.

:func:`run_tasks` submits every task (retried ``retries`` times when it raises; a task whose
worker died is run again by the scheduler on its own), hands each result to a callback in the
calling process as soon as it arrives (where the callers write it atomically: a result is
committed once, however often its task ran), and stops at the first task that fails for good,
cancelling the rest. Without a client the same tasks run in this process, in order: the
serial path the distributed one must reproduce.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, List, Optional, Sequence


def set_task_threads(threads: Optional[int]) -> None:
    """Inside a task: at most ``threads`` torch threads and OpenMM CPU threads (None: leave them)."""
    if threads is None:
        return
    os.environ["OPENMM_CPU_THREADS"] = str(int(threads))
    import torch

    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


def run_tasks(func: Callable[..., Any], items: Sequence[Any], *, client: Any = None, retries: int = 2,
              name: str = "cgaa", on_result: Optional[Callable[[int, Any], None]] = None) -> List[Any]:
    """``[func(item) for item in items]``, on ``client`` (a ``dask.distributed.Client``) or, when it
    is None, here one after another. ``on_result(index, result)`` runs in this process for each
    result as it arrives (in completion order on a client, in order here). The first task that
    fails for good (its exception after ``retries`` retries, or ``KilledWorker`` after it lost
    ``allowed-failures`` workers) cancels the others and its exception is raised here. Returns
    the results in the order of ``items``."""
    results: List[Any] = [None] * len(items)
    if client is None:
        for i, item in enumerate(items):
            results[i] = func(item)
            if on_result is not None:
                on_result(i, results[i])
        return results
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = [client.submit(func, item, key=f"{name}-{i}-{token}", retries=int(retries), pure=False)
               for i, item in enumerate(items)]
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                if type(exc).__name__ == "KilledWorker":
                    raise RuntimeError(f"{name} task {i} lost its worker too often (a worker died each time it ran "
                                       f"it: out of memory? raise allowed_failures to keep trying): {exc}") from None
                raise exc
            results[i] = fut.result()
            fut.release()
            if on_result is not None:
                on_result(i, results[i])
    finally:
        pending = [f for f in futures if f.status == "pending"]
        if pending:
            client.cancel(pending)
    return results
