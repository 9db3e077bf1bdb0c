"""Basins of attraction: descend from every point of a grid of starts, label where each ends.

The minima are the built-in's known ones where the function has them; otherwise they are the
end points of converged runs, merged within ``merge_tol``. Each minimum (critical point) found
is classified by the eigenvalues of its Hessian. A start is labelled with the minimum its run
ends within ``merge_tol`` of, else -1 (it diverged, left the domain, or ended elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import hessian

from .config_trajectories import BasinsConfig, Starts
from .functions import FieldFunction, Minimum
from .paths import REASONS, descend, start_points

__all__ = ["CriticalPoint", "BasinsResult", "compute_basins", "classify"]


@dataclass(frozen=True)
class CriticalPoint:
    point: tuple[float, ...]
    value: float
    kind: str  # "minimum" | "maximum" | "saddle" | "degenerate"
    eigenvalues: tuple[float, ...]
    known: bool  # one of the built-in's known minima


@dataclass(frozen=True)
class BasinsResult:
    """``label``, ``steps`` and ``reason`` have the starts grid's shape in array order."""

    axes: tuple[np.ndarray, ...]  # start coordinates per axis, grid order
    label: np.ndarray  # int32: index into ``points``, -1 for none
    steps: np.ndarray  # int32: steps taken
    reason: np.ndarray  # uint8: index into paths.REASONS
    points: tuple[CriticalPoint, ...]
    counts: tuple[int, ...]  # starts per point


def classify(ff: FieldFunction, point: Sequence[float] | np.ndarray, rel_tol: float = 1e-6
             ) -> tuple[str, tuple[float, ...]]:
    """Hessian eigenvalues at ``point`` (float64) and what they make it."""
    x = torch.tensor(point, dtype=torch.float64)
    try:
        h = hessian(lambda v: ff.scalar(*v.unbind()))(x)
    except (RuntimeError, NotImplementedError):  # no second derivatives (a loss landscape's chunks)
        h = _fd_hessian(ff, x)
    ev = torch.linalg.eigvalsh((h + h.T) / 2)
    scale = max(1.0, float(ev.abs().max()))
    pos = bool((ev > rel_tol * scale).all())
    neg = bool((ev < -rel_tol * scale).all())
    small = bool((ev.abs() <= rel_tol * scale).any())
    kind = "minimum" if pos else "maximum" if neg else "degenerate" if small else "saddle"
    return kind, tuple(float(e) for e in ev)


def _fd_hessian(ff: FieldFunction, x: torch.Tensor) -> torch.Tensor:
    """Central differences of the autograd gradient: the Hessian where autograd has only first
    derivatives."""

    def grad(at: torch.Tensor) -> torch.Tensor:
        c = [v.clone().requires_grad_() for v in at.unbind()]
        return torch.stack(torch.autograd.grad(ff.scalar(*c), c))

    n = x.numel()
    cols = []
    for i in range(n):
        h = 1e-5 * max(1.0, abs(float(x[i])))
        e = torch.zeros_like(x)
        e[i] = h
        cols.append((grad(x + e) - grad(x - e)) / (2 * h))
    return torch.stack(cols, 1)


def _merge(points: np.ndarray, tol: float) -> list[np.ndarray]:
    """Greedy clustering of end points: each new point joins the first centre within tol."""
    centres: list[np.ndarray] = []
    members: list[list[np.ndarray]] = []
    # snapping to cells first keeps this fast for a million end points
    cells = np.unique(np.round(points / tol).astype(np.int64), axis=0) * tol
    for c in cells:
        for i, centre in enumerate(centres):
            if np.linalg.norm(centre - c) <= tol:
                members[i].append(c)
                centres[i] = np.mean(members[i], axis=0)
                break
        else:
            centres.append(c.astype(np.float64))
            members.append([c])
    return centres


BatchResult = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]  # lo, hi, finals, steps, reasons
RunBatches = Callable[[int], Iterable[BatchResult]]


def basin_batch(ff: FieldFunction, cfg: BasinsConfig, bounds: Sequence[tuple[float, float]], dtype: torch.dtype,
                device: torch.device, lo: int, hi: int) -> BatchResult:
    """Descend from starts ``lo:hi`` of the basins' grid of starts."""
    starts = start_points(Starts(grid=cfg.resolution), bounds, dtype, device)[lo:hi]
    r = descend(ff, starts, cfg.optimizer, cfg.steps, cfg.tol, bounds, record=False, fused=True)
    return lo, hi, r.final, r.stop_step, r.reason


def compute_basins(
    ff: FieldFunction,
    cfg: BasinsConfig,
    bounds: Sequence[tuple[float, float]],
    known: Sequence[Minimum],
    dtype: torch.dtype,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
    run_batches: RunBatches | None = None,
) -> BasinsResult:
    """Descend from a ``cfg.resolution`` grid of starts in batches of ``cfg.batch``.

    ``run_batches`` computes batches elsewhere (a cluster: ``gradbatch.distributed``); each
    start's descent is independent of its batch, so the result is the same.
    """
    n = int(np.prod(cfg.resolution))
    finals = np.empty((n, len(bounds)))
    steps = np.empty(n, dtype=np.int32)
    reason = np.empty(n, dtype=np.uint8)
    results: Iterable[BatchResult]
    if run_batches is None:
        batches = [(lo, min(lo + cfg.batch, n)) for lo in range(0, n, cfg.batch)]
        results = (basin_batch(ff, cfg, bounds, dtype, device, lo, hi) for lo, hi in batches)
    else:
        results = run_batches(n)
    done = 0
    for lo, hi, fin, st, re in results:
        finals[lo:hi], steps[lo:hi], reason[lo:hi] = fin, st, re
        done += hi - lo
        if progress is not None:
            progress(done, n)
    usable = (reason == REASONS.index("converged")) | (reason == REASONS.index("max_steps"))
    if known:
        centres = [np.asarray(m.point, dtype=np.float64) for m in known]
    else:
        converged = finals[reason == REASONS.index("converged")]
        centres = _merge(converged, cfg.merge_tol) if len(converged) else []
    label = np.full(n, -1, dtype=np.int32)
    if centres:
        c = np.stack(centres)
        dist = np.linalg.norm(finals[:, None, :] - c[None, :, :], axis=2) if n * len(c) <= 50_000_000 else None
        if dist is None:  # very many starts and centres: label in slices
            for a in range(0, n, 1 << 16):
                d = np.linalg.norm(finals[a:a + (1 << 16), None, :] - c[None], axis=2)
                nearest = d.argmin(axis=1)
                ok = (d[np.arange(len(nearest)), nearest] <= cfg.merge_tol) & usable[a:a + (1 << 16)]
                label[a:a + (1 << 16)] = np.where(ok, nearest, -1)
        else:
            nearest = dist.argmin(axis=1)
            ok = (dist[np.arange(n), nearest] <= cfg.merge_tol) & usable
            label = np.where(ok, nearest, -1).astype(np.int32)
    points = []
    for i, centre in enumerate(centres):
        kind, ev = classify(ff, centre)
        value = float(ff.scalar(*torch.tensor(centre, dtype=torch.float64).unbind()))
        points.append(CriticalPoint(tuple(float(v) for v in centre), value, kind, ev, bool(known)))
    counts = tuple(int((label == i).sum()) for i in range(len(points)))
    shape = tuple(reversed(cfg.resolution))
    axes = tuple(np.linspace(lo, hi, k) for (lo, hi), k in zip(bounds, cfg.resolution))
    return BasinsResult(axes, label.reshape(shape), steps.reshape(shape), reason.reshape(shape),
                        tuple(points), counts)
