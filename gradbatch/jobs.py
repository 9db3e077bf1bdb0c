"""Running jobs: config → plan → tiles (engine) → HDF5 (store), with progress and crash safety.

Every job of a file is planned (device, function, outputs) before anything is written, so a bad
job fails before the first tile. Tiles are computed on the calling thread and written by one
writer thread, so computing tile i+1 overlaps compressing and writing tile i.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from .config import CompileMode, JobConfig, JobFile, load_config
from .engine import CpuThreads, EvalStats, JobPlan, aot, cpu_threads, device_name, evaluate, plan_job
from .engine.kernel import CheckStats, check_steps
from .errors import ConfigError, EngineError
from .lock import OutputLock
from .outputs import by_output, check_render, check_space, decide, make_folder, planned_bytes, same_code
from .progress import Progress, ProgressFn, progress_fn
from .store import JobWriter, commit, h5py_version, partial_jobs, partial_path, stored_bytes, tile_stats
from .summary import nonfinite_lines
from .trajectories.flows import FileSink, FlowSink, MemorySink, check_flows, run_flows
from .writing import axis_attrs, write_tiles

__all__ = [
    "Progress",
    "JobReport",
    "JobRenderer",
    "run",
    "run_jobs",
    "compile_kernels",
    "nonfinite_lines",
    "planned_bytes",
]


class JobRenderer(Protocol):
    """Draws the picture a job's ``render:`` asks for. Passed in, never imported: the viewer sits
    above the jobs (``gradbatch.run_jobs`` and the CLI pass the viewer's ``JobPictures``)."""

    def check(self, job: JobConfig, inputs: Sequence[Path], overwrite: bool) -> None:
        """Refuse, before anything is computed, a picture that cannot be drawn or would destroy data."""

    def render(self, job: JobConfig, source: Path) -> Path:
        """Draw ``job`` of the complete file ``source``; returns the picture's path."""


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
    itemsize: int = 4  # bytes a value (float32: 4, float64: 8)

    @property
    def compression_ratio(self) -> float:
        """The whole job's fields, raw, over what they take stored (resumed tiles included)."""
        raw = (self.grid_points or self.points) * len(self.fields) * self.itemsize
        return raw / max(self.stored_bytes, 1)

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
    progress: bool | ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    cluster: Any = None,
    renderer: JobRenderer | None = None,
) -> list[JobReport]:
    """Load a job file (the embedded example when ``path`` is None) and run every job in it."""
    return run_jobs(
        load_config(path, output=output),
        resume=resume,
        overwrite=overwrite,
        force=force,
        device=device,
        progress=progress,
        log=log,
        cluster=cluster,
        renderer=renderer,
    )


def run_jobs(
    jobs: JobFile | JobConfig | Sequence[JobConfig],
    *,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool | ProgressFn | None = None,
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

    ``progress``: True for a progress bar per phase (tiles, paths, basins, streamlines; tqdm's,
    a widget in Jupyter), a function to receive each :class:`~gradbatch.progress.Progress` event
    (about a hundred a phase; each prints as one line), or False/None for none.
    """
    say = log or (lambda msg: None)
    report = progress_fn(progress)
    if isinstance(jobs, JobFile):
        job_list = list(jobs.jobs)
    elif isinstance(jobs, JobConfig):
        job_list = [jobs]
    else:
        job_list = list(jobs)
    groups = by_output(job_list)
    with ExitStack() as locks:
        for out in groups:
            make_folder(out)
            locks.enter_context(OutputLock(out))
        todo = [(out, group) for out, group in groups.items() if decide(out, group, resume, overwrite, say)]
        _check_pictures(todo, renderer, overwrite)
        plans = _plan_all(todo, device, force, say)
        with _cluster(cluster, plans, say) as connected:
            return _run_all(todo, plans, resume, overwrite, report, say, connected, renderer)


def _check_pictures(todo: list[tuple[Path, list[JobConfig]]], renderer: JobRenderer | None, overwrite: bool) -> None:
    """A picture asked for must not destroy data: refused now, not after the run."""
    for out, group in todo:
        for job in group:
            if job.render is None:
                continue
            if renderer is None:
                raise ConfigError(
                    f"{job.where + '.' if job.where else ''}render: this run draws no "
                    "pictures (no renderer given); use gradbatch.run_jobs, or remove render:"
                )
            renderer.check(job, [out, partial_path(out)], overwrite)


def _plan_all(
    todo: list[tuple[Path, list[JobConfig]]], device: str | None, force: bool, say: Callable[[str], None]
) -> dict[int, JobPlan]:
    """Plan everything first: a bad function or device fails before anything is written."""
    plans = {id(job): plan_job(job, device) for _, group in todo for job in group}
    for plan in plans.values():
        check_flows(plan)
        check_render(plan)
    for out, group in todo:
        check_space(out, [plans[id(job)] for job in group], force, say)
    return plans


@contextmanager
def _cluster(cluster: Any, plans: dict[int, JobPlan], say: Callable[[str], None]) -> Iterator[Any]:
    """The cluster to compute on: a connected one as given, one started (and closed after) from
    :class:`~gradbatch.distributed.ClusterOptions`, or None."""
    if cluster is None or not plans:
        yield None
        return
    from .distributed import Cluster, connect

    if isinstance(cluster, Cluster):
        yield cluster
        return
    gpus = torch.cuda.device_count() if any(p.device.type == "cuda" for p in plans.values()) else 0
    own = connect(cluster, gpus)
    say(f"cluster: {own.workers} workers on {own.client.scheduler.address}")
    try:
        yield own
    finally:
        own.close()


def _run_all(
    todo: list[tuple[Path, list[JobConfig]]],
    plans: dict[int, JobPlan],
    resume: bool,
    overwrite: bool,
    progress: ProgressFn | None,
    say: Callable[[str], None],
    cluster: Any,
    renderer: JobRenderer | None,
) -> list[JobReport]:
    reports: list[JobReport] = []
    for out, group in todo:
        part = partial_path(out)
        if overwrite and not resume and (part.exists() or part.is_symlink()):
            part.unlink()  # ours: no gradbatch run holds this output's lock but us
        held = partial_jobs(part) if part.exists() else {}
        for job in group:
            if job.name in held and held[job.name].complete:
                same_code(part, held[job.name], plans[id(job)])
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
    from ._version import __version__

    return {
        "function": plan.function.text,
        "function_source": plan.function.source,
        "kind": plan.function.kind,
        "axes": list(job.grid.names),
        "dims": list(reversed(job.grid.names)),
        "grid": {a.name: [a.start, a.stop, a.points] for a in job.grid.axes},
        "params": dict(job.params),
        "minima": [{"point": list(m.point), "value": m.value, "local": m.local} for m in plan.function.minima],
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


def _run_one(
    plan: JobPlan, part: Path, progress: ProgressFn | None, say: Callable[[str], None], cluster: Any = None
) -> JobReport:
    """One job: its tiles computed and written (those not done already), then its paths, basins
    and streamlines, then the attributes that mark it complete."""
    job = plan.job
    check_width = 3 + job.grid.ndim if plan.check else 0
    axes = list(zip(job.grid.names, plan.axes))
    writer = JobWriter(
        part, job.name, plan.fields, axes, plan.layout, plan.levels, job.compression.value, _provenance(plan),
        check_width=check_width, axis_attrs=axis_attrs(plan),
    )  # fmt: skip
    done = writer.open()
    stats = EvalStats()
    old_threads = torch.get_num_threads()
    threads = cpu_threads(job.threads, len(plan.layout) - len(done) if plan.function.thread_safe else 1)
    if plan.device.type == "cuda":
        threads = CpuThreads(1, 1)  # one host thread feeds the device; its copies overlap
    torch.set_num_threads(threads.intra)
    try:
        device = device_name(plan.device, threads.workers * threads.intra)
        say(_start_line(plan, device, done))
        t0 = time.perf_counter()
        busy_s = _tiles(plan, writer, done, stats, progress, cluster, t0, threads.workers)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(old_threads)
    total_tiles, total_points = len(plan.layout), job.grid.size
    if progress is not None:
        progress(Progress(job.name, total_tiles, total_tiles, total_points, total_points, wall))
    flow_timings = _flows(plan, FileSink(part, job.name), say, cluster, progress, kept=part)
    if cluster is None and not stats.compiled:
        note = aot.start_background_build(plan, stats.points)
        if note is not None:
            say(f"{job.name}: {note}")
    computed = total_points - sum(plan.layout.tile_of(i).size for i in done)
    timings = {"wall_s": wall, "compute_s": stats.compute_s, "write_s": busy_s, "compile_s": stats.compile_s}
    final = _final_attrs(device, stats, {**timings, **flow_timings}, cluster, computed, wall, len(done))
    nonfinite, check = _tile_summary(plan, part, final)
    writer.finalize(final)
    stored = stored_bytes(part, job.name, plan.fields)
    return JobReport(
        job.name, job.output, device, plan.fields, plan.layout.shape, computed, stats.tiles, len(done), wall,
        stats.compute_s, busy_s, stats.compile_s, stats.compiled, stored, check, nonfinite, total_points,
        int(plan.axes[0].dtype.itemsize),
    )  # fmt: skip


def _final_attrs(
    device: str, stats: EvalStats, timings: dict[str, float], cluster: Any, computed: int, wall: float, resumed: int
) -> dict[str, Any]:
    """The attributes a finished job gets besides its tile summary (``docs/format.md``)."""
    return {
        "device": device,
        "compiled": stats.compiled,
        "timings": {
            **{k: round(v, 4) for k, v in timings.items()},
            **({"cluster_workers": cluster.workers} if cluster is not None else {}),
        },
        "points_per_s": computed / wall if wall > 0 else 0.0,
        "tiles_resumed": resumed,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _start_line(plan: JobPlan, device: str, done: set[int]) -> str:
    job = plan.job
    chosen = ""
    if job.device == "auto":
        chosen = " (device: auto, CUDA found)" if plan.device.type == "cuda" else " (device: auto, no CUDA here)"
    return (
        f"{job.name}: {plan.function.text} on {' x '.join(str(a.points) for a in job.grid.axes)} "
        f"points, on {device}{chosen}" + (f"; resuming, {len(done)} of {len(plan.layout)} tiles done" if done else "")
    )


def _tiles(
    plan: JobPlan,
    writer: JobWriter,
    done: set[int],
    stats: EvalStats,
    progress: ProgressFn | None,
    cluster: Any,
    t0: float,
    workers: int = 1,
) -> float:
    """Compute the tiles not ``done`` (here, ``workers`` at once, or on ``cluster``) and write
    them; the writer's busy seconds."""
    job = plan.job
    resumed_points = sum(plan.layout.tile_of(i).size for i in done)

    def written(tiles: int, points: int) -> None:
        if progress is not None:
            elapsed = time.perf_counter() - t0
            total = job.grid.size
            progress(
                Progress(
                    job.name,
                    len(done) + tiles,
                    len(plan.layout),
                    resumed_points + points,
                    total,
                    elapsed,
                    points_resumed=resumed_points,
                )
            )

    if cluster is None:
        tiles = evaluate(plan, done, stats, workers)
    else:
        from .distributed import evaluate_on

        tiles = evaluate_on(cluster, plan, done, stats)
    return write_tiles(writer, tiles, written)


def _flows(
    plan: JobPlan,
    sink: FlowSink,
    say: Callable[[str], None],
    cluster: Any = None,
    progress: ProgressFn | None = None,
    kept: Path | None = None,
) -> dict[str, float]:
    """The job's paths, basins and streamlines into ``sink`` (basins' descents on ``cluster``'s
    workers if given); a failure is one EngineError, saying where the fields are ``kept``."""
    run_batches = None
    if cluster is not None and plan.job.basins is not None:
        from .distributed import basins_on

        run_batches = basins_on(cluster, plan)
    try:
        return run_flows(plan, sink, say, run_batches, _phases(plan, progress))
    except _ProgressFailed as exc:
        raise exc.original from None
    except (RuntimeError, ValueError, OverflowError, FloatingPointError) as exc:  # torch.optim and friends
        raise EngineError(
            f"{plan.job.name}: computing its paths, basins or streamlines failed "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
            + (f"; the fields are on disk in {kept}" if kept is not None else "")
        ) from None


def _phases(plan: JobPlan, progress: ProgressFn | None) -> Callable[[str, int, int, str], None] | None:
    """The flows' ``(phase, done, total, unit)`` reports as :class:`Progress` events."""
    if progress is None:
        return None
    job, tiles, points = plan.job.name, len(plan.layout), plan.job.grid.size
    began: dict[str, float] = {}

    def report(phase: str, done: int, total: int, unit: str) -> None:
        now = time.perf_counter()
        elapsed = now - began.setdefault(phase, now)
        try:
            progress(Progress(job, tiles, tiles, points, points, elapsed, phase, done, total, unit))
        except Exception as exc:  # the caller's own error: not one of the flows' to reword
            raise _ProgressFailed(exc) from exc

    return report


class _ProgressFailed(Exception):
    """The progress callback raised ``original`` during the flows; :func:`_flows` re-raises it
    as it was, not as a failure of the paths, basins or streamlines."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


def _tile_summary(
    plan: JobPlan, part: Path, final: dict[str, Any]
) -> tuple[dict[str, dict[str, int]], CheckStats | None]:
    """Every tile's non-finite counts and gradient check (this run's and earlier runs'), summed
    into ``final``'s attributes; returned for the report."""
    counts, rows = tile_stats(part, plan.job.name)
    nonfinite = {
        name: dict(zip(("nan", "posinf", "neginf"), (int(n) for n in counts[:, i].sum(axis=0))))
        for i, name in enumerate(plan.fields)
    }
    final["nonfinite"] = nonfinite
    if rows is None:
        return nonfinite, None
    check = CheckStats.from_rows(rows, check_steps(plan.axes))
    final.update(check_attrs(check))
    return nonfinite, check


def check_attrs(check: CheckStats) -> dict[str, Any]:
    """The gradient check's result as a job's attributes (``docs/format.md``)."""
    return {
        "check": {
            "method": "central differences in float64",
            "steps": list(check.steps),
            "max_abs_error": check.max_abs_error,
            "max_scaled_error": check.max_scaled_error,
            "at": list(check.where),
            "nan_points": check.nan_points,
        },
        "check_max_abs_error": check.max_abs_error,
    }


def compile_kernels(
    file: JobFile, device: str | None = None, log: Callable[[str], None] | None = None
) -> list[tuple[str, str]]:
    """Build the compiled kernel of every job of ``file`` that keeps one (see
    :mod:`gradbatch.engine.aot`), now, so that every run of them computes compiled from its
    first tile. Returns (job name, what happened) per job."""
    say = log or (lambda msg: None)
    out = []
    for job in file.jobs:
        if job.compile is CompileMode.OFF:  # before planning: that builds and probes the function
            out.append((job.name, "compile: off: not built"))
            continue
        plan = plan_job(job, device)
        key = aot.kernel_key(plan)
        if key is None:
            why = "no compiled kernel is kept for this function or device"
            out.append((job.name, f"{why} (expressions, vector fields and built-ins on the CPU are)"))
            continue
        entry = aot.cache_dir() / key
        if aot.entry_names(entry) is not None:
            out.append((job.name, f"already built: {entry}"))
            continue
        t0 = time.perf_counter()
        entry = aot.build(plan, log=lambda m, name=job.name: say(f"{name}: {m}"))
        out.append((job.name, f"built in {time.perf_counter() - t0:.0f} s: {entry}"))
    return out


def compute(job: JobConfig | JobFile | JobPlan | str | Path, device: str | None = None) -> Any:
    """A small job computed in memory, as the ``xarray.Dataset`` that ``gradbatch.open`` gives of
    its file: its fields with their coordinates, its attributes with the gradient check's
    result, and its paths, basins and streamlines (see :mod:`gradbatch.datasets`). Nothing is
    written; ``render:`` is not drawn.

    ``job``: a job, a job file of one job, a job file's path or YAML text, or a planned job;
    ``device`` overrides the job's own. Jobs above ``engine.COMPUTE_MAX_POINTS`` points are
    refused: run them into a file (``gradbatch.run``) and ``gradbatch.open`` it.
    """
    from .datasets import job_dataset
    from .engine import compute as compute_fields
    from .store.encode import encode_attr

    if device is not None and not isinstance(device, str):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    plan = job if isinstance(job, JobPlan) else plan_job(_the_job(job), device)
    check_flows(plan)
    stats = EvalStats()
    fields = compute_fields(plan, stats=stats)
    sink = MemorySink()
    _flows(plan, sink, lambda message: None)
    attrs = {k: v for k, v in _provenance(plan).items() if k != "created"}
    attrs["complete"] = True
    if stats.check is not None:
        attrs.update(check_attrs(stats.check))
    attrs = {k: encode_attr(v) for k, v in attrs.items()}
    return job_dataset(
        fields, list(zip(plan.job.grid.names, plan.axes)), {**attrs, "job": plan.job.name}, sink.overlays
    )


def _the_job(job: JobConfig | JobFile | str | Path) -> JobConfig:
    """The one job ``job`` names: a job, a file of one job, or a job file (path or YAML text)."""
    from .config import parse_config

    if isinstance(job, JobConfig):
        return job
    named = (
        isinstance(job, str) and "\n" not in job and (Path(job).is_file() or job.lower().endswith((".yaml", ".yml")))
    )
    if isinstance(job, (str, os.PathLike)) and (named or not isinstance(job, str)):
        job = load_config(Path(job))
    elif isinstance(job, str):
        job = parse_config(job)
    elif not isinstance(job, JobFile):
        raise ConfigError(
            f"compute() takes a job (JobConfig), a job file (JobFile), a job file's path or its YAML text; "
            f"got {type(job).__name__}"
        )
    if len(job.jobs) != 1:
        names = ", ".join(j.name for j in job.jobs)
        raise ConfigError(f"compute() takes one job; this file has {len(job.jobs)} ({names}): pass one of file.jobs")
    return job.jobs[0]
