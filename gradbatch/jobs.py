"""Running jobs: config → plan → tiles (engine) → HDF5 (store), with progress and crash safety.

Every job of a file is planned (device, function, outputs) before anything is written, so a bad
job fails before the first tile. Tiles are computed on the calling thread and written by one
writer thread, so computing tile i+1 overlaps compressing and writing tile i.
"""

from __future__ import annotations

import datetime as _dt
import platform
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import torch

from .config import JobConfig, JobFile, load_config
from .engine import EvalStats, JobPlan, TileResult, device_name, evaluate, plan_job
from .engine.kernel import CheckStats
from .errors import StoreError
from .flows import check_flows, run_flows
from .store import JobWriter, commit, job_complete, partial_path

__all__ = ["Progress", "JobReport", "run", "run_jobs"]


@dataclass(frozen=True)
class Progress:
    """Where a running job stands; handed to the ``progress`` callback after each tile."""

    job: str
    tiles_done: int
    tiles_total: int
    points_done: int
    points_total: int
    elapsed_s: float

    @property
    def points_per_s(self) -> float:
        return self.points_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.points_per_s
        return (self.points_total - self.points_done) / rate if rate > 0 else None


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class JobReport:
    """What a finished job did."""

    name: str
    output: Path
    device: str
    fields: tuple[str, ...]
    shape: tuple[int, ...]
    points: int
    tiles_computed: int
    tiles_resumed: int
    wall_s: float
    compute_s: float
    write_s: float
    compile_s: float
    compiled: bool
    stored_bytes: int
    check: CheckStats | None

    @property
    def points_per_s(self) -> float:
        return self.points / self.wall_s if self.wall_s > 0 else 0.0


def run(
    path: str | Path | None = None,
    *,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    cluster: Any = None,
) -> list[JobReport]:
    """Load a job file (the embedded example when ``path`` is None) and run every job in it."""
    return run_jobs(load_config(path, output=output), resume=resume, overwrite=overwrite,
                    device=device, progress=progress, log=log, cluster=cluster)


def run_jobs(
    jobs: JobFile | JobConfig | Sequence[JobConfig],
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    cluster: Any = None,
) -> list[JobReport]:
    """Run jobs, writing each output file under a ``.partial`` name until all its jobs are done.

    ``resume`` finishes a partial file left by an interrupted run (only missing tiles are
    computed); ``overwrite`` replaces an existing output (the old file stays until the new one is
    complete). Without either, an existing output or partial file is an error.

    ``cluster``: compute the tiles on Dask workers, this process writing the file: a
    :class:`gradbatch.distributed.ClusterOptions` (a local cluster is started and closed here) or a
    connected :class:`gradbatch.distributed.Cluster`.
    """
    say = log or (lambda msg: None)
    if isinstance(jobs, JobFile):
        job_list = list(jobs.jobs)
    elif isinstance(jobs, JobConfig):
        job_list = [jobs]
    else:
        job_list = list(jobs)
    by_output: dict[Path, list[JobConfig]] = {}
    for job in job_list:
        by_output.setdefault(job.output, []).append(job)

    todo: list[tuple[Path, list[JobConfig]]] = []
    for out, group in by_output.items():
        part = partial_path(out)
        if resume and out.exists() and not part.exists():
            say(f"{out}: complete already; nothing to resume")
            continue
        if out.exists() and not (overwrite or resume):
            raise StoreError(f"{out}: exists; pass --overwrite to replace it (the old file is kept "
                             "until the new one is complete)")
        if part.exists() and not resume:
            if not overwrite:
                raise StoreError(f"{part}: an interrupted run left this; pass --resume to finish it "
                                 "or --overwrite to start again")
            part.unlink()
        todo.append((out, group))

    # Plan everything first: a bad function or device fails before anything is written.
    plans = {id(job): plan_job(job, device) for _, group in todo for job in group}
    for plan in plans.values():
        check_flows(plan)
    own_cluster = None
    if cluster is not None and todo:
        from .distributed import Cluster, connect

        if not isinstance(cluster, Cluster):
            gpus = torch.cuda.device_count() if any(p.device.type == "cuda" for p in plans.values()) else 0
            cluster = own_cluster = connect(cluster, gpus)
            say(f"cluster: {cluster.workers} workers on {cluster.client.scheduler.address}")
    try:
        return _run_all(todo, plans, resume, progress, say, cluster)
    finally:
        if own_cluster is not None:
            own_cluster.close()


def _run_all(todo: list[tuple[Path, list[JobConfig]]], plans: dict[int, JobPlan], resume: bool,
             progress: ProgressFn | None, say: Callable[[str], None], cluster: Any) -> list[JobReport]:
    reports: list[JobReport] = []
    for out, group in todo:
        part = partial_path(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{out}: cannot create its folder ({exc})") from None
        for job in group:
            if resume and part.exists() and job_complete(part, job.name):
                say(f"{job.name}: complete already in {part}")
                continue
            reports.append(_run_one(plans[id(job)], part, progress, say, cluster))
        commit(part, out)
        say(f"wrote {out}")
        for job in group:  # pictures last: the data is safe on disk whatever happens here
            if job.render is not None:
                _render_png(job, out, say)
    return reports


def _provenance(plan: JobPlan) -> dict[str, Any]:
    job = plan.job
    from . import __version__
    return {
        "function": plan.function.text,
        "function_source": plan.function.source,
        "kind": plan.function.kind,
        "axes": list(job.grid.names),
        "dims": list(reversed(job.grid.names)),
        "grid": {a.name: [a.start, a.stop, a.points] for a in job.grid.axes},
        "params": dict(job.params),
        "minima": [{"point": list(m.point), "value": m.value, "local": m.local}
                   for m in plan.function.minima],
        "outputs": [o.value for o in plan.outputs],
        "dtype": job.dtype,
        "device_requested": job.device,
        "compression": job.compression.value,
        "torch_version": torch.__version__,
        "h5py_version": h5py.__version__,
        "gradbatch_version": __version__,
        "python_version": platform.python_version(),
        "job_yaml": job.yaml,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class _WriterThread(threading.Thread):
    """Writes tile results from a bounded queue, so memory stays flat."""

    def __init__(self, writer: JobWriter, depth: int = 2) -> None:
        super().__init__(name="gradbatch-writer", daemon=True)
        self.writer = writer
        self.queue: queue.Queue[TileResult | None] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.written = 0
        self.points = 0
        self.busy_s = 0.0

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            t0 = time.perf_counter()
            try:
                self.writer.write_tile(item.tile, item.fields, item.levels, item.chunks)
            except OSError as exc:  # disk full, file system gone: a user-facing error
                self.error = StoreError(f"{self.writer.path}: writing tile {item.tile.index} failed: "
                                        f"{exc}; the tiles written so far stay for --resume")
            except BaseException as exc:  # handed to the main thread, which re-raises it
                self.error = exc
            self.busy_s += time.perf_counter() - t0
            self.written += 1
            self.points += item.tile.size

    def put(self, item: TileResult | None) -> None:
        while True:
            if self.error is not None and item is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


def _run_one(plan: JobPlan, part: Path, progress: ProgressFn | None, say: Callable[[str], None],
             cluster: Any = None) -> JobReport:
    job = plan.job
    writer = JobWriter(part, job.name, plan.fields, list(zip(job.grid.names, plan.axes)),
                       plan.layout, plan.levels, job.compression.value, _provenance(plan))
    done = writer.open()
    total_tiles = len(plan.layout)
    total_points = job.grid.size
    resumed_points = sum(plan.layout.tile_of(i).size for i in done)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    device = device_name(plan.device)
    chosen = ""
    if job.device == "auto":
        chosen = " (device: auto, CUDA found)" if plan.device.type == "cuda" else " (device: auto, no CUDA here)"
    say(f"{job.name}: {plan.function.text} on {' x '.join(str(a.points) for a in job.grid.axes)} "
        f"points, on {device}{chosen}"
        + (f"; resuming, {len(done)} of {total_tiles} tiles done" if done else ""))
    stats = EvalStats()
    t0 = time.perf_counter()
    thread = _WriterThread(writer)
    thread.start()
    try:
        if cluster is None:
            tiles = evaluate(plan, done, stats)
        else:
            from .distributed import evaluate_on

            tiles = evaluate_on(cluster, plan, done, stats)
        for result in tiles:
            thread.put(result)
            if progress is not None:
                progress(Progress(job.name, len(done) + thread.written, total_tiles,
                                  resumed_points + thread.points, total_points,
                                  time.perf_counter() - t0))
        thread.put(None)
        thread.join()
        if thread.error is not None:
            raise thread.error
        writer.close()
    except BaseException:
        if thread.is_alive():
            thread.error = thread.error or RuntimeError("stopped")  # drain without writing more
            thread.queue.put(None)
            thread.join(timeout=60)
        writer.abandon()
        raise
    finally:
        torch.set_num_threads(old_threads)
    wall = time.perf_counter() - t0
    if progress is not None:
        progress(Progress(job.name, total_tiles, total_tiles, total_points, total_points, wall))
    flow_timings = run_flows(plan, part, say, cluster)
    computed_points = total_points - resumed_points
    final = {
        "device": device,
        "compiled": stats.compiled,
        "timings": {"wall_s": round(wall, 4), "compute_s": round(stats.compute_s, 4),
                    "write_s": round(thread.busy_s, 4), "compile_s": round(stats.compile_s, 4),
                    **{k: round(v, 4) for k, v in flow_timings.items()},
                    **({"cluster_workers": cluster.workers} if cluster is not None else {})},
        "points_per_s": computed_points / wall if wall > 0 else 0.0,
        "tiles_resumed": len(done),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if stats.check is not None:
        c = stats.check
        final["check"] = {"method": "central differences in float64", "steps": list(c.steps),
                          "max_abs_error": c.max_abs_error, "max_scaled_error": c.max_scaled_error,
                          "at": list(c.where), "nan_points": c.nan_points}
        final["check_max_abs_error"] = c.max_abs_error
    writer.finalize(final)
    stored = _stored_bytes(part, job.name, plan.fields)
    return JobReport(job.name, job.output, device, plan.fields, plan.layout.shape,
                     computed_points, stats.tiles, len(done), wall, stats.compute_s, thread.busy_s,
                     stats.compile_s, stats.compiled, stored, stats.check)




def _stored_bytes(path: Path, job: str, fields: Sequence[str]) -> int:
    with h5py.File(path, "r") as f:
        return sum(f[job][n].id.get_storage_size() for n in fields)


def _render_png(job: JobConfig, out: Path, say: Callable[[str], None]) -> None:
    from .render import RenderOptions, render

    r = job.render
    assert r is not None
    opts = RenderOptions(size=r.size, layers=r.layers, field=r.field, colormap=r.colormap, descent=r.descent,
                         scale=r.scale, colorbar=r.colorbar, surface=r.surface)
    render(out, r.output, job.name, opts)
    say(f"rendered {r.output}")
