"""Tiles computed on a Dask cluster; the client stays the only writer of the HDF5 file.

Optional (``pip install 'gradbatch[dask]'``): nothing else in gradbatch imports this module.

- :func:`connect` starts a :class:`distributed.LocalCluster` of N single-threaded worker
  processes on 127.0.0.1 (one GPU each when the job runs on CUDA), or connects to an existing
  scheduler.
- :func:`evaluate_on` is :func:`gradbatch.engine.evaluate` over the cluster: each tile is a task
  (its job's config and the tile's number), scheduled dynamically with a bounded number in flight
  per worker so workers and client keep flat memory, and results come back in tile order, so the
  file is the one a single process writes. A worker that dies has its tiles recomputed elsewhere
  (Dask reschedules the tasks of a lost worker).
- Each worker builds its plan once per job (the function, the kernel, the axes on its device) and
  keeps it for the job's tiles.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .config import JobConfig
from .engine.kernel import CheckStats
from .engine.runner import EvalStats, JobPlan, TileComputer, TileResult, plan_job
from .errors import ClusterError, DeviceError, GradbatchError
from .store import ChunkEncoder
from .trajectories.basins import BatchResult, RunBatches, basin_batch

__all__ = ["ClusterOptions", "Cluster", "connect", "evaluate_on", "basins_on", "NEEDS_DASK"]

NEEDS_DASK = "running on a cluster needs Dask: pip install 'gradbatch[dask]'"
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class ClusterOptions:
    """``workers``: start a local cluster of that many processes; ``scheduler``: the address of
    a running one (``tcp://host:8786``). One of the two."""

    workers: int = 0
    scheduler: str | None = None
    in_flight_per_worker: int = IN_FLIGHT_PER_WORKER


@dataclass
class Cluster:
    client: Any
    local: Any = None  # the LocalCluster we started, closed with us
    options: ClusterOptions = field(default_factory=ClusterOptions)

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()


def connect(options: ClusterOptions, gpus: int = 0) -> Cluster:
    """Start a local cluster or connect to a scheduler. ``gpus``: local workers get one CUDA
    device each (``CUDA_VISIBLE_DEVICES``), so there can be at most that many."""
    try:
        import dask
        from distributed import Client, LocalCluster, Nanny, SpecCluster
    except ImportError:
        raise ClusterError(NEEDS_DASK) from None
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers: measured 4x slower CPU tiles
    dask.config.set(
        {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None, "distributed.worker.daemon": False}
    )
    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"--scheduler: cannot reach {options.scheduler} ({type(exc).__name__}: {exc})") from None
        return Cluster(client, None, options)
    n = options.workers
    if n < 1:
        raise ClusterError(f"--workers: expected at least 1 worker, got {n}")
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if gpus:
        if n > gpus:
            raise DeviceError(f"--workers {n}: one GPU per worker, and this machine has {gpus}")
        from distributed.scheduler import Scheduler

        visible = visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), gpus)
        spec = {
            f"gpu{i}": {"cls": Nanny, "options": {"nthreads": 1, "env": {**env, "CUDA_VISIBLE_DEVICES": visible[i]}}}
            for i in range(n)
        }
        local = SpecCluster(
            workers=spec, scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
        )
    else:
        local = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, env=env
        )
    client = Client(local)
    client.wait_for_workers(n, timeout=120)
    client.run(_preload)  # torch and the engine imported now, not on each worker's first tile
    return Cluster(client, local, options)


def visible_devices(parent: str | None, count: int) -> list[str]:
    """The CUDA devices this process may use, one entry per device, as its workers must name
    them: the parent's own ``CUDA_VISIBLE_DEVICES`` list (a Slurm allocation or a shared node's
    share: ``"2,3"`` or GPU UUIDs) when it has one, else ``0 .. count-1``. A worker given "0"
    under a parent limited to "2,3" would take someone else's GPU."""
    if parent is None or not parent.strip():
        return [str(i) for i in range(count)]
    listed = [d.strip() for d in parent.split(",") if d.strip()]
    return listed[:count]


def _preload() -> None:
    import gradbatch.engine  # noqa: F401  (imports torch)


# -- on the workers ----------------------------------------------------------------------------
_COMPUTERS: dict[str, TileComputer] = {}
_ENCODERS: dict[str, ChunkEncoder] = {}


def _computer(key: str, job: JobConfig, device: str) -> TileComputer:
    """This worker's plan for the job, built on its first task of the job and kept."""
    import torch

    torch.set_num_threads(job.threads or 1)  # auto: one a worker, as many workers as cores
    computer = _COMPUTERS.get(key)
    if computer is None:
        _COMPUTERS.clear()  # one job at a time per worker: free the previous job's plan
        plan = plan_job(job, device)
        computer = TileComputer(plan, EvalStats(), plan.job.grid.size)
        _COMPUTERS[key] = computer
    return computer


def _tile_task(key: str, job: JobConfig, device: str, flat: int) -> tuple[TileResult, CheckStats | None, float, float]:
    """Compute one tile on a worker: (result, the check's stats for this tile, seconds computing,
    seconds compiling)."""
    computer = _computer(key, job, device)
    stats = computer.stats
    before = (stats.compute_s, stats.compile_s)
    stats.check = CheckStats() if computer.plan.check else None  # this tile's alone
    plan = computer.plan
    result = computer.host(plan.layout.tile_of(flat))
    # compressed here, where there are many of us: the writer only stores the bytes
    encoder = _ENCODERS.get(key)
    if encoder is None:
        _ENCODERS.clear()
        encoder = _ENCODERS[key] = ChunkEncoder(plan.layout, plan.axes[0].dtype, plan.job.compression.value)
    chunks = encoder.encode(result.tile, result.fields)
    encoded = replace(result, fields={}, chunks=chunks)  # the summary (counts, ranges) travels as computed
    return encoded, stats.check, stats.compute_s - before[0], stats.compile_s - before[1]


def _basins_task(key: str, job: JobConfig, device: str, lo: int, hi: int) -> BatchResult:
    plan = _computer(key, job, device).plan
    assert job.basins is not None
    bounds = tuple((a.start, a.stop) for a in job.grid.axes)
    return basin_batch(plan.function, job.basins, bounds, plan.dtype, plan.device, lo, hi)


# -- on the client -----------------------------------------------------------------------------
def _job_key(plan: JobPlan) -> str:
    return f"{plan.job.name}-{os.getpid()}-{time.monotonic_ns()}"


def _device(plan: JobPlan) -> str:
    return "cuda" if plan.device.type == "cuda" else "cpu"  # a worker sees its own GPU as cuda:0


def basins_on(cluster: Cluster, plan: JobPlan) -> RunBatches:
    """Basins' descents in batches over the cluster: at least four batches a worker."""

    def run(n: int) -> Iterator[BatchResult]:
        from distributed import as_completed

        cfg = plan.job.basins
        assert cfg is not None
        size = max(1, min(cfg.batch, -(-n // (4 * max(1, cluster.workers)))))
        key = _job_key(plan)
        job = cluster.client.scatter(plan.job, broadcast=True)
        futures = [
            cluster.client.submit(
                _basins_task,
                key,
                job,
                _device(plan),
                lo,
                min(lo + size, n),
                pure=False,
                key=f"gradbatch-{key}-basins-{lo}",
            )
            for lo in range(0, n, size)
        ]
        for future in as_completed(futures):
            yield future.result()

    return run


class _Tiles:
    """Tile tasks on the cluster: at most ``window`` in flight or waiting in ``ready`` for an
    earlier tile, each task named by its tile and try, a result lost in transit computed again."""

    def __init__(self, cluster: Cluster, plan: JobPlan, todo: list[int], running: Any) -> None:
        self.client = cluster.client
        self.device = _device(plan)
        self.key = _job_key(plan)
        self.job = self.client.scatter(plan.job, broadcast=True)
        self.window = max(1, cluster.workers) * cluster.options.in_flight_per_worker
        self.queue = iter(todo)
        self.running = running  # distributed.as_completed
        self.in_flight = 0
        self.tries: dict[int, int] = {}
        self.flat_of: dict[str, int] = {}
        self.ready: dict[int, TileResult] = {}

    def submit(self, flat: int) -> None:
        self.tries[flat] = self.tries.get(flat, 0) + 1
        task = f"gradbatch-{self.key}-tile-{flat}-{self.tries[flat]}"
        self.flat_of[task] = flat
        self.running.add(self.client.submit(_tile_task, self.key, self.job, self.device, flat, key=task, pure=False))
        self.in_flight += 1

    def top_up(self) -> None:
        """Results waiting in ``ready`` for earlier tiles count against the window."""
        while self.in_flight + len(self.ready) < self.window:
            flat = next(self.queue, None)
            if flat is None:
                return
            self.submit(flat)

    def receive(self, future: Any) -> tuple[TileResult, CheckStats | None, float, float] | None:
        """A finished task's result; None when it was lost with its worker and is computed again."""
        self.in_flight -= 1
        flat = self.flat_of.pop(future.key)
        try:
            result: tuple[TileResult, CheckStats | None, float, float] = future.result()
            return result
        except GradbatchError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "KilledWorker":
                raise ClusterError(
                    f"a tile's task killed every worker it ran on ({exc}); see the workers' logs"
                ) from None
            # a result lost in transit with its worker (the task itself did not fail): compute it again
            lost = isinstance(exc, (OSError, asyncio.CancelledError)) or type(exc).__name__ in (
                "CommClosedError",
                "CancelledError",
                "FutureCancelledError",
            )
            if not lost or self.tries[flat] >= 3:
                raise
            self.submit(flat)
            return None


def evaluate_on(
    cluster: Cluster, plan: JobPlan, skip: set[int] | frozenset[int] = frozenset(), stats: EvalStats | None = None
) -> Iterator[TileResult]:
    """Every tile of ``plan`` not in ``skip``, computed on the cluster, yielded in tile order."""
    from distributed import as_completed

    stats = stats if stats is not None else EvalStats()
    todo = [t.flat for t in plan.layout if t.flat not in skip]
    if not todo:
        return
    tiles = _Tiles(cluster, plan, todo, as_completed())
    if plan.check and stats.check is None:
        stats.check = CheckStats()
    order = iter(todo)
    want: int | None = next(order)
    tiles.top_up()
    for future in tiles.running:
        got = tiles.receive(future)
        if got is None:
            continue
        result, check, compute_s, compile_s = got
        stats.compute_s += compute_s
        stats.compile_s += compile_s
        if check is not None and stats.check is not None:
            stats.check.merge(check)
        stats.tiles += 1
        stats.points += result.tile.size
        tiles.ready[result.tile.flat] = result
        while want is not None and want in tiles.ready:
            yield tiles.ready.pop(want)
            want = next(order, None)
        tiles.top_up()
