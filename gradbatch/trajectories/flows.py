"""A job's descent paths, basins and streamlines: computed after its fields, handed to a sink as
records: :class:`FileSink` stores them in the job's group, :class:`MemorySink` keeps them (what
``gradbatch.compute`` returns)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..config import BasinsConfig, JobConfig, OptimizerConfig, PathsConfig, StreamlinesConfig
from ..engine import JobPlan
from ..errors import ConfigError
from ..records import REASONS, STOPS, BasinsResult, Descent, LandscapeMakings, Overlays, Stored, Streamlines
from ..store import write_basins, write_landscape, write_paths, write_streamlines
from .basins import RunBatches, compute_basins
from .paths import check_recorded, count_starts, descend, start_points
from .streamlines import compute_streamlines

__all__ = ["check_flows", "run_flows", "FlowSink", "FileSink", "MemorySink"]


class FlowSink(Protocol):
    """Where a job's flows go, record by record, with the attributes stored beside each."""

    def paths(self, label: str, descent: Descent, attrs: dict[str, Any]) -> None: ...
    def basins(self, result: BasinsResult, axes: tuple[str, ...], attrs: dict[str, Any]) -> None: ...
    def streamlines(self, lines: Streamlines, attrs: dict[str, Any]) -> None: ...
    def landscape(self, makings: LandscapeMakings) -> None: ...


class FileSink:
    """Into job ``job``'s group of the (partial) file ``part``."""

    def __init__(self, part: Path, job: str) -> None:
        self.part, self.job = part, job

    def paths(self, label: str, descent: Descent, attrs: dict[str, Any]) -> None:
        write_paths(self.part, self.job, label, descent, attrs)

    def basins(self, result: BasinsResult, axes: tuple[str, ...], attrs: dict[str, Any]) -> None:
        write_basins(self.part, self.job, result, axes, attrs)

    def streamlines(self, lines: Streamlines, attrs: dict[str, Any]) -> None:
        write_streamlines(self.part, self.job, lines, attrs)

    def landscape(self, makings: LandscapeMakings) -> None:
        write_landscape(self.part, self.job, makings)


class MemorySink:
    """Kept as the :class:`~gradbatch.records.Overlays` reading the file would give."""

    def __init__(self) -> None:
        self._paths: dict[str, Stored[Descent]] = {}
        self._basins: Stored[BasinsResult] | None = None
        self._streamlines: Stored[Streamlines] | None = None
        self._landscape: LandscapeMakings | None = None

    def paths(self, label: str, descent: Descent, attrs: dict[str, Any]) -> None:
        self._paths[label] = Stored(descent, attrs)

    def basins(self, result: BasinsResult, axes: tuple[str, ...], attrs: dict[str, Any]) -> None:
        self._basins = Stored(result, attrs)

    def streamlines(self, lines: Streamlines, attrs: dict[str, Any]) -> None:
        self._streamlines = Stored(lines, attrs)

    def landscape(self, makings: LandscapeMakings) -> None:
        self._landscape = makings

    @property
    def overlays(self) -> Overlays:
        return Overlays(dict(self._paths), self._basins, self._streamlines, self._landscape)


def check_flows(plan: JobPlan) -> None:
    """Settings that depend on the function's kind (known once a callable is probed)."""
    job = plan.job
    at = lambda key: f"{job.where}.{key}" if job.where else key
    if plan.function.kind == "vector":
        if job.paths is not None or job.basins is not None:
            raise ConfigError(
                f"{at('paths' if job.paths else 'basins')}: descent needs a scalar function; "
                f"{plan.function.text!r} is a vector field (use streamlines:)"
            )
        if job.streamlines is not None and job.streamlines.field != "vector":
            raise ConfigError(
                f"{at('streamlines.field')}: {plan.function.text!r} is a vector field: "
                "its streamlines follow the field itself (field: vector)"
            )
    elif job.streamlines is not None and job.streamlines.field == "vector":
        raise ConfigError(
            f"{at('streamlines.field')}: 'vector' needs a vector-field function; "
            f"{plan.function.text!r} is scalar (use ascent or descent)"
        )
    if job.paths is not None:  # fail before any tile is computed if the paths would not fit
        check_recorded(count_starts(job.paths.starts), job.paths.steps, at("paths"))


def _opt_attrs(opt: OptimizerConfig) -> dict[str, Any]:
    return {
        "optimizer": opt.name,
        "torch_optimizer": opt.torch_class,
        "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in opt.torch_kwargs.items()},
    }


def _bounds(job: JobConfig) -> tuple[tuple[float, float], ...]:
    return tuple((a.start, a.stop) for a in job.grid.axes)


def _landscape(plan: JobPlan, sink: FlowSink, say: Callable[[str], None]) -> None:
    """A loss landscape's makings, and a network's training trajectory projected on its plane
    (stored as the path ``training``, so viewers draw it over the landscape): made when the
    function was built (``plan.built``), written here."""
    built = plan.built
    if built.landscape is not None:
        sink.landscape(built.landscape)
    if built.training is not None:
        sink.paths("training", built.training, dict(built.training_attrs))
        t = int(built.training.stop_step[0]) + 1  # one path: every recorded weight set
        say(f"{plan.job.name}: training trajectory, {t} recorded weight sets, projected on the plane")


PhaseFn = Callable[[str, int, int, str], None]
"""``(phase, done, total, unit)``: where a phase stands (paths: steps over every optimiser;
basins: starts; streamlines: runs), said as it begins, as it goes and as it ends."""


def run_flows(
    plan: JobPlan,
    sink: FlowSink,
    say: Callable[[str], None],
    run_batches: RunBatches | None = None,
    progress: PhaseFn | None = None,
) -> dict[str, float]:
    """Compute whatever of paths/basins/streamlines the job asks for, into ``sink``; seconds each.
    ``run_batches``: runs basins' descents elsewhere (``gradbatch.distributed.basins_on``: on a
    cluster's workers); by default they run here."""
    job = plan.job
    timings: dict[str, float] = {}
    report = progress or (lambda phase, done, total, unit: None)
    _landscape(plan, sink, say)
    if job.paths is not None:
        t0 = time.perf_counter()
        _paths(plan, job.paths, sink, say, report)
        timings["paths_s"] = time.perf_counter() - t0
    if job.basins is not None:
        t0 = time.perf_counter()
        result = _basins(plan, job.basins, sink, say, run_batches, report)
        timings["basins_s"] = time.perf_counter() - t0
        kinds = [p.kind for p in result.points]
        lost = int((result.label < 0).sum())
        say(
            f"{job.name}: basins: {len(kinds)} critical points ({kinds.count('minimum')} minima), starts per "
            f"point {list(result.counts)}, {lost:,} of {result.label.size:,} starts unlabelled "
            f"in {timings['basins_s']:.1f}s"
        )
    if job.streamlines is not None:
        t0 = time.perf_counter()
        report("streamlines", 0, 1, "runs")
        lines = _streamlines(plan, job.streamlines, sink)
        report("streamlines", 1, 1, "runs")
        timings["streamlines_s"] = time.perf_counter() - t0
        say(
            f"{job.name}: {len(lines.seeds)} streamlines, {len(lines.points):,} points "
            f"in {timings['streamlines_s']:.1f}s"
        )
    return timings


def _paths(plan: JobPlan, cfg: PathsConfig, sink: FlowSink, say: Callable[[str], None], report: PhaseFn) -> None:
    """One descent per optimiser from the same starts, each stored under its label."""
    bounds = _bounds(plan.job)
    starts = start_points(cfg.starts, bounds, plan.dtype, plan.device)
    per, total = cfg.steps + 1, (cfg.steps + 1) * len(cfg.optimizers)
    report("paths", 0, total, "steps")
    for i, opt in enumerate(cfg.optimizers):

        def on_step(s: int, base: int = i * per) -> None:
            report("paths", base + s + 1, total, "steps")

        d = descend(plan.function, starts, opt, cfg.steps, cfg.tol, bounds, ascent=cfg.ascent, on_step=on_step)
        attrs = {
            **_opt_attrs(opt),
            "steps": cfg.steps,
            "tol": cfg.tol,
            "ascent": cfg.ascent,
            "reasons": list(REASONS),
            "starts": dataclasses.asdict(cfg.starts),
        }
        sink.paths(opt.label, d, attrs)
        ends = {r: int((d.reason == i).sum()) for i, r in enumerate(REASONS) if (d.reason == i).any()}
        say(f"{plan.job.name}: paths {opt.label}: {len(d.final)} paths, stopped: {ends}")
        report("paths", (i + 1) * per, total, "steps")  # paths that all stopped early end the run


def _basins(
    plan: JobPlan,
    cfg: BasinsConfig,
    sink: FlowSink,
    say: Callable[[str], None],
    run_batches: RunBatches | None,
    report: PhaseFn,
) -> BasinsResult:
    ff, job = plan.function, plan.job

    def progress(done: int, total: int) -> None:
        report("basins", done, total, "starts")

    progress(0, math.prod(cfg.resolution))
    result = compute_basins(
        ff,
        cfg,
        _bounds(job),
        ff.minima,
        plan.dtype,
        plan.device,
        progress=progress,
        run_batches=run_batches,
    )
    attrs = {
        **_opt_attrs(cfg.optimizer),
        "steps": cfg.steps,
        "tol": cfg.tol,
        "merge_tol": cfg.merge_tol,
        "resolution": list(cfg.resolution),
        "reasons": list(REASONS),
        "known_minima": sum(p.known for p in result.points),
    }
    sink.basins(result, tuple(job.grid.names), attrs)
    return result


def _streamlines(plan: JobPlan, cfg: StreamlinesConfig, sink: FlowSink) -> Streamlines:
    lines = compute_streamlines(plan.function, cfg, _bounds(plan.job), plan.dtype, plan.device)
    attrs = {
        k: (v if not isinstance(v, (tuple, dict)) else str(v))
        for k, v in dataclasses.asdict(cfg).items()
        if k != "seeds"
    }
    attrs.update(seeds=dataclasses.asdict(cfg.seeds), stops=list(STOPS))
    sink.streamlines(lines, attrs)
    return lines
