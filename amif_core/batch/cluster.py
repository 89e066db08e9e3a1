"""Where ``amif batch`` runs: an existing Dask cluster, or a ``LocalCluster`` sized to this machine.

Dask ``distributed`` is an optional dependency (``pip install
"amif-core[batch]"``); nothing here imports it before it is needed, and
:func:`require_distributed` says how to install it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from amif_core.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

# Host memory one CPU worker needs: torch and the model (about 0.5 GB) plus a study of about 256x256x200 voxels
# (HOST_BYTES_PER_VOXEL x voxels, about 0.6 GB), with headroom.
CPU_WORKER_MEMORY = 2 * 2**30


def require_distributed() -> None:
    """Raise :class:`InputError` with the install command when Dask ``distributed`` is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise InputError("amif batch runs on Dask distributed, which is not installed ({reason}). Install it with: "
                         "pip install \"amif-core[batch]\"", reason=error) from error


def local_workers(device: str, cores: int | None = None, memory: int | None = None) -> int:
    """How many single-threaded workers a ``LocalCluster`` on this machine gets for ``device``: one per GPU when the
    device is a GPU ("auto" with CUDA GPUs: each; "cuda:N": one); else one per core, as far as the memory holds
    :data:`CPU_WORKER_MEMORY` each. ``cores``/``memory`` (bytes): this machine's, when None."""
    from amif_core.runtime import runner

    if device != runner.CPU:
        gpus = [d for d in runner.available_devices() if d.device_id.startswith("cuda:")]
        if gpus:
            return len(gpus) if device == runner.AUTO else 1
        if device != runner.AUTO:
            return 1  # "mps", or a "cuda" the model load will refuse with its own message
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if memory is None:
        import psutil  # a dependency of distributed

        memory = psutil.virtual_memory().total
    return max(1, min(cores, memory // CPU_WORKER_MEMORY))


@contextmanager
def batch_client(scheduler: str | None, device: str, workers: int | None, retries: int) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler`` (else Dask's ``scheduler-address`` setting, which
    ``DASK_SCHEDULER_ADDRESS`` sets), or of a new ``LocalCluster`` of ``workers`` single-threaded worker
    processes (None: :func:`local_workers`), closed on exit.

    ``retries``: for a local cluster, how many workers may die running one
    task before it is given up (Dask's ``distributed.scheduler.allowed-failures``;
    an existing scheduler keeps its own setting). A local cluster serves
    Dask's dashboard on a free port (the client's ``dashboard_link``). Its
    workers run without Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``,
    which costs torch 60 to 75 % more CPU time per study (``benchmarks/bench_batch.py``:
    2.15 against 1.24 CPU s at 128x128x32); the pipeline hands freed memory
    back after each batch of slices itself (:func:`amif_core.runtime.runner.trimming`).
    """
    import dask
    from distributed import Client, LocalCluster

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        with Client(address) as client:
            yield client
        return
    count = workers if workers is not None else local_workers(device)
    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        with LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
