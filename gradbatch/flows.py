"""A job's descent paths, basins and streamlines: computed after its fields, stored in its group."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .basins import compute_basins
from .config import JobConfig
from .config import DataLandscapeSource, NetworkSource
from .config import OptimizerConfig
from .engine import JobPlan
from .errors import ConfigError
from .paths import check_recorded, count_starts, descend, start_points
from .records import REASONS, STOPS, Descent, LandscapeMakings
from .store import write_basins, write_landscape, write_paths, write_streamlines
from .streamlines import compute_streamlines

__all__ = ["check_flows", "run_flows"]


def check_flows(plan: JobPlan) -> None:
    """Settings that depend on the function's kind (known once a callable is probed)."""
    job = plan.job
    at = (lambda key: f"{job.where}.{key}" if job.where else key)
    if plan.function.kind == "vector":
        if job.paths is not None or job.basins is not None:
            raise ConfigError(f"{at('paths' if job.paths else 'basins')}: descent needs a scalar function; "
                              f"{plan.function.text!r} is a vector field (use streamlines:)")
        if job.streamlines is not None and job.streamlines.field != "vector":
            raise ConfigError(f"{at('streamlines.field')}: {plan.function.text!r} is a vector field: "
                              "its streamlines follow the field itself (field: vector)")
    elif job.streamlines is not None and job.streamlines.field == "vector":
        raise ConfigError(f"{at('streamlines.field')}: 'vector' needs a vector-field function; "
                          f"{plan.function.text!r} is scalar (use ascent or descent)")
    if job.paths is not None:  # fail before any tile is computed if the paths would not fit
        check_recorded(count_starts(job.paths.starts), job.paths.steps, at("paths"))


def _opt_attrs(opt: OptimizerConfig) -> dict[str, Any]:
    return {"optimizer": opt.name, "torch_optimizer": opt.torch_class,
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in opt.torch_kwargs.items()}}


def _bounds(job: JobConfig) -> tuple[tuple[float, float], ...]:
    return tuple((a.start, a.stop) for a in job.grid.axes)


def _landscape(plan: JobPlan, part: Path, say: Callable[[str], None]) -> None:
    """A loss landscape's makings, and a network's training trajectory projected on its plane
    (stored as the path ``training``, so viewers draw it over the landscape)."""
    src = plan.job.function
    at = f"{plan.job.where}.function" if plan.job.where else "function"
    if isinstance(src, DataLandscapeSource):
        from .landscape import load_data, lstsq_minimum

        x, y = load_data(src, f"{at}.landscape.data")
        attrs: dict[str, Any] = {"kind": "data", "model": src.model, "loss": src.loss, "rows": len(x),
                                 "data": str(dataclasses.asdict(src.data))}
        if src.model == "linear":
            attrs["lstsq"] = list(lstsq_minimum(x, y))
        write_landscape(part, plan.job.name, LandscapeMakings({"x": x, "y": y}, attrs))
        return
    if not isinstance(src, NetworkSource):
        return
    import numpy as np
    import torch

    from .landscape import network_landscape, project

    _, net, plane = network_landscape(src, plan.job.grid.ndim, f"{at}.network")
    theta, dirs = plane.flat()
    names = list(plane.theta)
    with torch.no_grad():
        at_theta = float(net.loss(torch.func.functional_call(net.model, plane.theta, (net.inputs,)), net.targets))
    attrs = {"kind": "network", "description": net.description, "directions": src.directions,
             "include_1d": src.include_1d, "seed": src.seed, "checkpoints": [str(c) for c in src.checkpoints],
             "parameters": names, "shapes": [list(v.shape) for v in plane.theta.values()],
             "loss_at_theta": at_theta, "model": str(src.model)}
    if plane.explained_variance is not None:
        attrs["explained_variance"] = plane.explained_variance
    write_landscape(part, plan.job.name, LandscapeMakings({"theta": theta, "directions": dirs}, attrs))
    if not net.trajectory or src.directions not in ("pca", "checkpoints"):
        return  # random directions miss a trajectory almost entirely (Li et al. 2018, section 7)
    coords = project(plane, net.trajectory)  # [T, ndim]
    with torch.no_grad():
        losses = np.array([float(net.loss(torch.func.functional_call(net.model, s, (net.inputs,)), net.targets))
                           for s in net.trajectory])
    last = np.concatenate([net.trajectory[-1][n].reshape(-1).numpy() for n in names])
    rel = float(np.linalg.norm(dirs.T @ coords[-1] + theta - last)) / max(float(np.linalg.norm(theta)), 1e-12)
    t = len(coords)
    d = Descent(final=coords[-1:], final_value=losses[-1:], stop_step=np.array([t - 1]),
                reason=np.array([REASONS.index("max_steps")], dtype=np.int8), positions=coords[None],
                values=losses[None], grad_norms=np.full((1, t), np.nan))
    write_paths(part, plan.job.name, "training", d,
                {"optimizer": "training", "recorded_steps": net.steps, "values_are": "the model's loss at the "
                 "recorded weights (not the plane's)", "final_offset_from_plane": rel, "reasons": list(REASONS)})
    say(f"{plan.job.name}: training trajectory, {t} recorded weight sets, projected on the plane")


def run_flows(plan: JobPlan, part: Path, say: Callable[[str], None], cluster: Any = None) -> dict[str, float]:
    """Compute and store whatever of paths/basins/streamlines the job asks for; seconds each.
    ``cluster`` (``gradbatch.distributed.Cluster``): basins' descents run on its workers."""
    job = plan.job
    bounds = _bounds(job)
    timings: dict[str, float] = {}
    ff = plan.function
    _landscape(plan, part, say)
    if job.paths is not None:
        cfg = job.paths
        t0 = time.perf_counter()
        starts = start_points(cfg.starts, bounds, plan.dtype, plan.device)
        for opt in cfg.optimizers:
            d = descend(ff, starts, opt, cfg.steps, cfg.tol, bounds, ascent=cfg.ascent)
            attrs = {**_opt_attrs(opt), "steps": cfg.steps, "tol": cfg.tol, "ascent": cfg.ascent,
                     "reasons": list(REASONS), "starts": dataclasses.asdict(cfg.starts)}
            write_paths(part, job.name, opt.label, d, attrs)
            ends = {r: int((d.reason == i).sum()) for i, r in enumerate(REASONS) if (d.reason == i).any()}
            say(f"{job.name}: paths {opt.label}: {len(d.final)} paths, stopped: {ends}")
        timings["paths_s"] = time.perf_counter() - t0
    if job.basins is not None:
        bcfg = job.basins
        t0 = time.perf_counter()
        batches = None
        if cluster is not None:
            from .distributed import basins_on

            batches = basins_on(cluster, plan)
        result = compute_basins(ff, bcfg, bounds, ff.minima, plan.dtype, plan.device,
                                progress=lambda done, total: say(f"{job.name}: basins {done:,}/{total:,} starts"),
                                run_batches=batches)
        attrs = {**_opt_attrs(bcfg.optimizer), "steps": bcfg.steps, "tol": bcfg.tol,
                 "merge_tol": bcfg.merge_tol, "resolution": list(bcfg.resolution), "reasons": list(REASONS),
                 "known_minima": sum(p.known for p in result.points)}
        write_basins(part, job.name, result, job.grid.names, attrs)
        timings["basins_s"] = time.perf_counter() - t0
        kinds = [p.kind for p in result.points]
        lost = int((result.label < 0).sum())
        say(f"{job.name}: basins: {len(kinds)} critical points ({kinds.count('minimum')} minima), starts per "
            f"point {list(result.counts)}, {lost:,} of {result.label.size:,} starts unlabelled "
            f"in {timings['basins_s']:.1f}s")
    if job.streamlines is not None:
        scfg = job.streamlines
        t0 = time.perf_counter()
        lines = compute_streamlines(ff, scfg, bounds, plan.dtype, plan.device)
        attrs = {k: (v if not isinstance(v, (tuple, dict)) else str(v))
                 for k, v in dataclasses.asdict(scfg).items() if k != "seeds"}
        attrs.update(seeds=dataclasses.asdict(scfg.seeds), stops=list(STOPS))
        write_streamlines(part, job.name, lines, attrs)
        timings["streamlines_s"] = time.perf_counter() - t0
        say(f"{job.name}: {len(lines.seeds)} streamlines, {len(lines.points):,} points "
            f"in {timings['streamlines_s']:.1f}s")
    return timings
