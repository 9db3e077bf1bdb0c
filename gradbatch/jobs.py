"""Running jobs: config → plan → tiles (engine) → HDF5 (store), with progress and crash safety.

Every job of a file is planned (device, function, outputs) before anything is written, so a bad
job fails before the first tile. Tiles are computed on the calling thread and written by one
writer thread, so computing tile i+1 overlaps compressing and writing tile i.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import queue
import shutil
import threading
import time
from contextlib import ExitStack
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .config import JobConfig, JobFile, load_config
from .describe import human_size
from .engine import EvalStats, JobPlan, TileResult, device_name, evaluate, plan_job
from .engine.kernel import CheckStats, check_steps
from .errors import ConfigError, EngineError, StoreError
from .trajectories.flows import check_flows, run_flows
from .grid import level_shape
from .lock import OutputLock
from .store import (HeldJob, JobWriter, commit, h5py_version, partial_jobs, partial_path, recover_partial, stored_bytes,
                    tile_stats)

__all__ = ["Progress", "JobReport", "JobRenderer", "run", "run_jobs", "nonfinite_lines", "planned_bytes"]


class JobRenderer(Protocol):
    """Draws the picture a job's ``render:`` asks for. Passed in, never imported: the viewer sits
    above the jobs (``gradbatch.run_jobs`` and the CLI pass the viewer's ``JobPictures``)."""

    def check(self, job: JobConfig, inputs: Sequence[Path], overwrite: bool) -> None:
        """Refuse, before anything is computed, a picture that cannot be drawn or would destroy data."""

    def render(self, job: JobConfig, source: Path) -> Path:
        """Draw ``job`` of the complete file ``source``; returns the picture's path."""


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
    check: CheckStats | None  # over every tile of the job, resumed ones too
    nonfinite: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> NaN/+inf/-inf points
    grid_points: int = 0  # points of the whole grid (``points`` counts this run's)

    def nonfinite_lines(self) -> list[str]:
        """``value: NaN at 20,100 of 40,401 points``, one line per field and kind that has any."""
        return nonfinite_lines(self.nonfinite, self.grid_points)

    @property
    def points_per_s(self) -> float:
        return self.points / self.wall_s if self.wall_s > 0 else 0.0


def run(
    path: str | Path | None = None,
    *,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    cluster: Any = None,
    renderer: JobRenderer | None = None,
) -> list[JobReport]:
    """Load a job file (the embedded example when ``path`` is None) and run every job in it."""
    return run_jobs(load_config(path, output=output), resume=resume, overwrite=overwrite, force=force,
                    device=device, progress=progress, log=log, cluster=cluster, renderer=renderer)


def run_jobs(
    jobs: JobFile | JobConfig | Sequence[JobConfig],
    *,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    cluster: Any = None,
    renderer: JobRenderer | None = None,
) -> list[JobReport]:
    """Run jobs, writing each output file under a ``.partial`` name until all its jobs are done.

    ``resume`` finishes a partial file left by an interrupted run (only missing tiles are
    computed); ``overwrite`` replaces an existing output (the old file stays until the new one is
    complete). Without either, an existing output or partial file is an error. ``force`` runs a
    job even when its planned size exceeds the free disk space.

    Each output is locked (``<output>.lock``, :mod:`gradbatch.lock`) from before its files are
    looked at until its partial file is renamed: a second run on the same output stops at once.

    ``cluster``: compute the tiles on Dask workers, this process writing the file: a
    :class:`gradbatch.distributed.ClusterOptions` (a local cluster is started and closed here) or a
    connected :class:`gradbatch.distributed.Cluster`.

    ``renderer`` draws the pictures of jobs with a ``render:`` section once their file is complete.
    ``gradbatch.run_jobs`` passes the viewer's when none is given; here, without one, such a job is
    refused before the run.
    """
    say = log or (lambda msg: None)
    if isinstance(jobs, JobFile):
        job_list = list(jobs.jobs)
    elif isinstance(jobs, JobConfig):
        job_list = [jobs]
    else:
        job_list = list(jobs)
    by_output: dict[Path, list[JobConfig]] = {}
    named: dict[Path, Path] = {}  # one output named two ways (out.h5, ./out.h5) is one output
    for job in job_list:
        try:
            real = Path(os.path.realpath(job.output))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{job.output}: not a usable output path ({exc})") from None
        by_output.setdefault(named.setdefault(real, job.output), []).append(job)

    with ExitStack() as locks:
        for out in by_output:
            _make_folder(out)
            locks.enter_context(OutputLock(out))
        todo = [(out, group) for out, group in by_output.items() if _decide(out, group, resume, overwrite, say)]
        for out, group in todo:  # a picture asked for must not destroy data: refused now, not after the run
            for job in group:
                if job.render is not None:
                    if renderer is None:
                        raise ConfigError(f"{job.where + '.' if job.where else ''}render: this run draws no "
                                          "pictures (no renderer given); use gradbatch.run_jobs, or remove render:")
                    renderer.check(job, [out, partial_path(out)], overwrite)

        # Plan everything first: a bad function or device fails before anything is written.
        plans = {id(job): plan_job(job, device) for _, group in todo for job in group}
        for plan in plans.values():
            check_flows(plan)
            _check_render(plan)
        for out, group in todo:
            _check_space(out, [plans[id(job)] for job in group], force, say)
        own_cluster = None
        if cluster is not None and todo:
            from .distributed import Cluster, connect

            if not isinstance(cluster, Cluster):
                gpus = torch.cuda.device_count() if any(p.device.type == "cuda" for p in plans.values()) else 0
                cluster = own_cluster = connect(cluster, gpus)
                say(f"cluster: {cluster.workers} workers on {cluster.client.scheduler.address}")
        try:
            return _run_all(todo, plans, resume, overwrite, progress, say, cluster, renderer)
        finally:
            if own_cluster is not None:
                own_cluster.close()


def _make_folder(out: Path) -> None:
    try:
        if out.is_dir():
            raise StoreError(f"{out}: is a folder; give a file name for the output")
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{out}: cannot create its folder ({exc.strerror or exc})") from None


def _decide(out: Path, group: list[JobConfig], resume: bool, overwrite: bool, say: Callable[[str], None]) -> bool:
    """Whether ``out`` needs work, checked under its lock, before anything is planned: the
    overwrite/resume rules, and a partial file to resume made openable (or refused, saying why)."""
    part = partial_path(out)
    has_part = part.exists() or part.is_symlink()
    if resume and out.exists() and not has_part:
        held = partial_jobs(out)
        extra = sorted(set(held) - {job.name for job in group})
        if extra:
            raise StoreError(f"{out}: holds job{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                             "that the job file does not have; run again with --overwrite to replace it")
        _same_jobs(out, held, group, "was made with")
        say(f"{out}: complete already; nothing to resume")
        return False
    if out.exists() and not (overwrite or resume):
        raise StoreError(f"{out}: exists; pass --overwrite to replace it (the old file is kept "
                         "until the new one is complete)")
    if has_part and not resume and not overwrite:
        raise StoreError(f"{part}: an interrupted run left this; pass --resume to finish it "
                         "or --overwrite to start again")
    if has_part and resume:
        recover_partial(part)
        held = partial_jobs(part)
        extra = sorted(set(held) - {job.name for job in group})
        if extra:
            raise StoreError(f"{part}: holds job{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                             "that the job file no longer has (renamed or removed?); it cannot be resumed "
                             "with this job file: run again with --overwrite to start afresh")
        _same_jobs(part, held, [job for job in group if job.name in held], "was started with")
    return True


def _same_jobs(path: Path, held: dict[str, HeldJob], group: Sequence[JobConfig], verb: str) -> None:
    """Each job of ``group`` is in ``held`` with the settings the job file gives it now."""
    missing = [job.name for job in group if job.name not in held]
    changed = [job.name for job in group if job.name in held and held[job.name].job_yaml != job.yaml]
    lost = [name for name in changed if not held[name].job_yaml]
    if lost:
        raise StoreError(f"{path}: job {', '.join(map(repr, lost))} has lost its recorded settings (the file was "
                         "damaged, e.g. by a full disk as it was written); run again with --overwrite to start afresh")
    if missing or changed:
        what = (f"holds no job {', '.join(map(repr, missing))}" if missing else
                f"job {', '.join(map(repr, changed))} {verb} different settings than the job file gives it now")
        raise StoreError(f"{path}: {what}; run again with --overwrite to start afresh")


def _same_code(path: Path, held: HeldJob, plan: JobPlan) -> None:
    if held.code_hash != plan.function.code_hash:
        raise StoreError(f"{path}: job {plan.job.name!r} was made with other code for its callable "
                         f"{plan.function.text!r} (its source files changed); run again with --overwrite "
                         "to start afresh")


def _check_render(plan: JobPlan) -> None:
    """A job's ``render:`` must name a field the job writes (known once it is planned)."""
    r = plan.job.render
    if r is None:
        return
    at = f"{plan.job.where}.render" if plan.job.where else "render"
    if r.field not in plan.fields:
        raise ConfigError(f"{at}.field: the job writes no field {r.field!r}; its fields: {', '.join(plan.fields)}")


def planned_bytes(plan: JobPlan) -> int:
    """Upper bound of a job's bytes on disk: every field and pyramid level uncompressed (what
    incompressible data would take), plus the paths, basins and streamlines it records."""
    itemsize = plan.axes[0].dtype.itemsize
    points = plan.job.grid.size
    pyramid = sum(int(np.prod(level_shape(plan.layout.shape, k))) for k in range(1, plan.levels + 1))
    return (points + pyramid) * len(plan.fields) * itemsize


def _check_space(out: Path, plans: list[JobPlan], force: bool, say: Callable[[str], None]) -> None:
    need = sum(planned_bytes(p) for p in plans)
    part = partial_path(out)
    if part.is_file():
        need = max(0, need - part.stat().st_size)
    free = shutil.disk_usage(out.parent).free
    for p in plans:
        say(f"{p.job.name}: planned {p.job.grid.size:,} points x {len(p.fields)} fields ({p.job.dtype}), "
            f"at most {human_size(planned_bytes(p))} on disk before compression")
    if need > free and not force:
        raise StoreError(f"{out}: the jobs may need up to {human_size(need)} (uncompressed) and "
                         f"{out.parent} has {human_size(free)} free; free some space, make the grid "
                         "smaller, or pass --force if compression will make it fit")


def _run_all(todo: list[tuple[Path, list[JobConfig]]], plans: dict[int, JobPlan], resume: bool, overwrite: bool,
             progress: ProgressFn | None, say: Callable[[str], None], cluster: Any,
             renderer: JobRenderer | None) -> list[JobReport]:
    reports: list[JobReport] = []
    for out, group in todo:
        part = partial_path(out)
        if overwrite and not resume and (part.exists() or part.is_symlink()):
            part.unlink()  # ours: no gradbatch run holds this output's lock but us
        held = partial_jobs(part) if part.exists() else {}
        for job in group:
            if job.name in held and held[job.name].complete:
                _same_code(part, held[job.name], plans[id(job)])
                say(f"{job.name}: complete already in {part}")
                continue
            reports.append(_run_one(plans[id(job)], part, progress, say, cluster))
        commit(part, out, [job.name for job in group])
        say(f"wrote {out}")
        for job in group:  # pictures last: the data is safe on disk whatever happens here
            if job.render is not None and renderer is not None:  # checked before the run
                say(f"rendered {renderer.render(job, out)}")
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
        "h5py_version": h5py_version(),
        "gradbatch_version": __version__,
        "python_version": platform.python_version(),
        "job_yaml": job.yaml,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"code_hash": plan.function.code_hash} if plan.function.code_hash else {}),
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
                self.writer.write_tile(item.tile, item.fields, item.levels, item.chunks, item.nonfinite,
                                       item.check.row(len(item.tile.shape)) if item.check is not None else None)
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
                       plan.layout, plan.levels, job.compression.value, _provenance(plan),
                       check_width=3 + job.grid.ndim if plan.check else 0)
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
    try:
        flow_timings = run_flows(plan, part, say, cluster)
    except (RuntimeError, ValueError, OverflowError, FloatingPointError) as exc:  # torch.optim and friends
        raise EngineError(f"{job.name}: computing its paths, basins or streamlines failed ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}); the fields are on disk in {part}") from None
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
    counts, rows = tile_stats(part, job.name)  # every tile's, this run's and earlier runs'
    nonfinite = {name: dict(zip(("nan", "posinf", "neginf"), (int(n) for n in counts[:, i].sum(axis=0))))
                 for i, name in enumerate(plan.fields)}
    final["nonfinite"] = nonfinite
    check = None
    if rows is not None:
        check = CheckStats.from_rows(rows, check_steps(plan.axes))
        final["check"] = {"method": "central differences in float64", "steps": list(check.steps),
                          "max_abs_error": check.max_abs_error, "max_scaled_error": check.max_scaled_error,
                          "at": list(check.where), "nan_points": check.nan_points}
        final["check_max_abs_error"] = check.max_abs_error
    writer.finalize(final)
    stored = stored_bytes(part, job.name, plan.fields)
    return JobReport(job.name, job.output, device, plan.fields, plan.layout.shape,
                     computed_points, stats.tiles, len(done), wall, stats.compute_s, thread.busy_s,
                     stats.compile_s, stats.compiled, stored, check, nonfinite, total_points)




def nonfinite_lines(counts: dict[str, dict[str, int]], points: int) -> list[str]:
    """What is not a finite number in each field, in words a user can act on."""
    words = {"nan": "NaN", "posinf": "+inf", "neginf": "-inf"}
    lines = []
    for name, c in counts.items():
        bad = sum(c.values())
        if bad == points and points and len([k for k, n in c.items() if n]) == 1:
            kind = next(k for k, n in c.items() if n)
            lines.append(f"{name}: {words[kind]} at every point ({points:,})"
                         + ("; the function is infinite everywhere" if kind != "nan" else "; undefined everywhere"))
            continue
        lines += [f"{name}: {words[k]} at {n:,} of {points:,} points" for k, n in c.items() if n]
    return lines
