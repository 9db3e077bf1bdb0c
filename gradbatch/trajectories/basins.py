"""Basins of attraction: descend from every point of a grid of starts, label where each ends.

Each start's descent ends somewhere: at a minimum (converged, or stalled at the dtype's noise
floor), near one (out of steps while oscillating round it with a large learning rate, or still
crawling down a valley), or nowhere (diverged, left the domain). Every end point that is not
lost is then *polished*: Newton steps in float64 on the exact Hessian (double backward;
differences of the autograd gradient where the function has first derivatives only), in a
trust region that starts at one grid spacing::

    end points ──polish──▶ stationary points ──cluster (merge_tol)──▶ centres ──Newton──▶ table
       converged / stalled: Newton (any stationary point: a saddle it sits on stays a saddle)
       max_steps:           saddle-free Newton (|eigenvalues|: only downhill, to a minimum)

A start is labelled with the critical point its polished end point clusters at, else -1: it
diverged or left the domain, or polishing did not reach a stationary point inside the box in
``POLISH_STEPS`` steps (a flat plain). ``steps`` and ``stop_reason`` still say how the
optimiser's own run ended. The table lists the built-in's known minima first (in the
built-in's order; count 0 where no start reached one), then every other critical point found,
in coordinate order, each classified by the eigenvalues of its Hessian.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ..config import BasinsConfig, Starts
from ..derivatives import value_grad_hessian
from ..functions.field import FieldFunction
from ..records import REASONS, BasinsResult, CriticalPoint, Minimum
from .paths import descend, start_points

__all__ = [
    "CriticalPoint",
    "BasinsResult",
    "compute_basins",
    "classify",
    "polish",
    "derivatives",
    "POLISH_STEPS",
    "POLISH_RADIUS",
]

POLISH_STEPS = 60
"""Newton iterations at most (a degenerate minimum like x**4 converges linearly, by 2/3 a step)."""

POLISH_RADIUS = 1.0
"""How far polishing may move an end point, as a fraction of the box's diagonal (and it must end
inside the box): far enough to finish a run still crawling down Rosenbrock's valley."""


POLISH_XTOL = 1e-10
"""A Newton step shorter than this (as a fraction of the box's size per axis) ends polishing."""


# -- derivatives of a batch of points ----------------------------------------------------------


def derivatives(
    ff: FieldFunction, x: torch.Tensor, hessian: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """f ``(M,)``, grad f ``(M, D)`` and, if asked, the Hessian ``(M, D, D)`` of the scalar field
    ``ff`` at the rows of ``x``: :func:`gradbatch.derivatives.value_grad_hessian` (exact by double
    backward, or differences of the autograd gradient where autograd has first derivatives only)."""
    return value_grad_hessian(ff.scalar, x, hessian)


def _kinds(h: torch.Tensor, rel_tol: float) -> list[tuple[str, tuple[float, ...]]]:
    """What the Hessians ``(K, D, D)`` make their points, and their eigenvalues (ascending)."""
    out = []
    for ev in torch.linalg.eigvalsh((h + h.transpose(1, 2)) / 2).cpu():
        scale = max(1.0, float(ev.abs().max()))
        pos = bool((ev > rel_tol * scale).all())
        neg = bool((ev < -rel_tol * scale).all())
        small = bool((ev.abs() <= rel_tol * scale).any())
        kind = "minimum" if pos else "maximum" if neg else "degenerate" if small else "saddle"
        out.append((kind, tuple(float(e) for e in ev)))
    return out


def classify(
    ff: FieldFunction, point: Sequence[float] | np.ndarray, rel_tol: float = 1e-6
) -> tuple[str, tuple[float, ...]]:
    """Hessian eigenvalues at ``point`` (float64) and what they make it."""
    x = torch.tensor(np.asarray(point, dtype=np.float64).reshape(1, -1))
    h = derivatives(ff, x)[2]
    assert h is not None
    return _kinds(h, rel_tol)[0]


# -- polishing end points ---------------------------------------------------------------------


def polish(
    ff: FieldFunction,
    x0: torch.Tensor,
    downhill: torch.Tensor,
    span: torch.Tensor,
    first_step: float,
    radius: float = POLISH_RADIUS,
    steps: int = POLISH_STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton's method from each row of ``x0`` ``(M, D)`` float64, in a trust region.

    Distances are measured in units of ``span`` (the box's size per axis): the first step is at
    most ``first_step``, a row never moves more than ``radius * sqrt(D)`` from its start.
    ``downhill`` rows take saddle-free steps (the Hessian's eigenvalues made positive) accepted
    only where f falls, so they end at a minimum; the others take plain Newton steps accepted
    where |grad f| falls, so they end at the nearest stationary point of any kind.

    Returns the polished points and whether each reached a stationary point (a Newton step
    shorter than ``POLISH_XTOL``) within the radius.
    """
    m, d = x0.shape
    x = x0.clone()
    ok = torch.zeros(m, dtype=torch.bool, device=x0.device)
    live = torch.ones(m, dtype=torch.bool, device=x0.device)
    delta = torch.full((m,), first_step, dtype=x0.dtype, device=x0.device)
    reach = radius * d**0.5
    for _ in range(steps):
        idx = live.nonzero().squeeze(1)
        if not len(idx):
            break
        xi, down = x[idx], downhill[idx]
        f, g, h = derivatives(ff, xi)
        assert h is not None
        finite = torch.isfinite(f) & torch.isfinite(g).all(1) & torch.isfinite(h).flatten(1).all(1)
        h = torch.where(finite[:, None, None], h, torch.zeros_like(h))
        lam, vec = torch.linalg.eigh((h + h.transpose(1, 2)) / 2)
        size = lam.abs().clamp_min(1e-12 * lam.abs().amax(1, keepdim=True)).clamp_min(1e-300)
        curv = torch.where(down[:, None] | (lam >= 0), size, -size)
        gt = (vec.transpose(1, 2) @ torch.where(finite[:, None], g, 0.0)[:, :, None]).squeeze(2)
        p = -(vec @ (gt / curv)[:, :, None]).squeeze(2)
        length = (p / span).norm(dim=1)
        done = finite & (length <= POLISH_XTOL)
        x[idx[done]] = xi[done] + p[done]
        ok[idx[done]] = True
        trial = xi + p * (delta[idx] / length).clamp(max=1.0)[:, None]
        ft, gt_ = derivatives(ff, trial, hessian=False)[:2]
        gn, gn_t = g.norm(dim=1), gt_.norm(dim=1)
        better = torch.where(down, (ft < f) | ((ft <= f) & (gn_t < gn)), gn_t < gn)
        accept = finite & ~done & better & torch.isfinite(ft) & torch.isfinite(gn_t)
        x[idx[accept]] = trial[accept]
        grow = accept & (length > delta[idx])
        delta[idx] = torch.where(
            grow, (2 * delta[idx]).clamp(max=reach), torch.where(accept, delta[idx], delta[idx] / 4)
        )
        far = ((x[idx] - x0[idx]) / span).norm(dim=1) > reach
        stuck = delta[idx] < POLISH_XTOL
        live[idx[done | ~finite | far | stuck]] = False
    return x, ok & (((x - x0) / span).norm(dim=1) <= reach)


# -- end points to critical points ------------------------------------------------------------


def _clusters(points: np.ndarray, tol: float) -> np.ndarray:
    """Single-linkage clusters of ``points`` ``(F, D)`` at distance ``tol``: each point's cluster
    (0, 1, ...). Points snap to cells of side ``tol`` first, so a million polished end points (a
    few distinct places) cost one ``unique``; neighbouring cells join when their means are within
    ``tol``."""
    if not len(points):
        return np.zeros(0, dtype=np.int64)
    keys, inverse = np.unique(np.floor(points / tol).astype(np.int64), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    means = np.zeros((len(keys), points.shape[1]))
    np.add.at(means, inverse, points)
    means /= np.bincount(inverse, minlength=len(keys))[:, None]
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cell = {k: i for i, k in enumerate(map(tuple, keys.tolist()))}
    offsets = np.stack(np.meshgrid(*[[-1, 0, 1]] * points.shape[1], indexing="ij"), -1).reshape(-1, points.shape[1])
    for i, k in enumerate(keys):
        for j in (cell.get(tuple(n)) for n in (k + offsets).tolist()):
            if j is not None and j > i and np.linalg.norm(means[i] - means[j]) <= tol:
                parent[root(j)] = root(i)
    _, cluster_of_cell = np.unique([root(i) for i in range(len(keys))], return_inverse=True)
    return np.asarray(cluster_of_cell).reshape(-1)[inverse]


def _representatives(points: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per cluster, the member nearest the cluster's mean ``(C, D)``: the mean itself for a
    compact cluster, and still a member for a ring of minima (whose mean is its centre)."""
    k = int(label.max()) + 1
    means = np.zeros((k, points.shape[1]))
    np.add.at(means, label, points)
    means /= np.bincount(label, minlength=k)[:, None]
    dist = np.linalg.norm(points - means[label], axis=1)
    order = np.lexsort((dist, label))  # by cluster, nearest first
    first = order[np.unique(label[order], return_index=True)[1]]
    return points[first]


def _critical_points(
    ff: FieldFunction,
    finals: np.ndarray,
    reason: np.ndarray,
    known: Sequence[Minimum],
    cfg: BasinsConfig,
    bounds: Sequence[tuple[float, float]],
    device: torch.device,
) -> tuple[np.ndarray, list[CriticalPoint]]:
    """Polish the end points, cluster them, refine each cluster's centre; the label of each
    start (-1: none) and the table (known minima first)."""
    n, d = finals.shape
    lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64, device=device)
    hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64, device=device)
    span = (hi - lo).clamp_min(1e-300)
    first_step = max(1.0 / (k - 1) for k in cfg.resolution)
    codes = [REASONS.index(r) for r in ("converged", "stalled", "max_steps")]
    usable = np.flatnonzero(np.isin(reason, codes) & np.isfinite(finals).all(1))
    found = np.zeros(n, dtype=bool)
    polished = np.full((n, d), np.nan)
    for a in range(0, len(usable), cfg.batch):
        rows = usable[a : a + cfg.batch]
        x0 = torch.tensor(finals[rows], dtype=torch.float64, device=device)
        downhill = torch.tensor(reason[rows] == REASONS.index("max_steps"), device=device)
        x, ok = polish(ff, x0, downhill, span, first_step)
        edge = 1e-9 * span
        ok &= ((x >= lo - edge) & (x <= hi + edge)).all(1)
        polished[rows] = x.cpu().numpy()
        found[rows] = ok.cpu().numpy()
    points = polished[found]
    cluster = _clusters(points, cfg.merge_tol)
    centres = _representatives(points, cluster) if len(points) else np.zeros((0, d))
    if len(centres):  # refined by Newton (to any stationary point: a saddle stays a saddle)
        c0 = torch.tensor(centres, dtype=torch.float64, device=device)
        refined, ok = polish(ff, c0, torch.zeros(len(c0), dtype=torch.bool, device=device), span, first_step)
        centres = torch.where(ok[:, None], refined, c0).cpu().numpy()
    # clusters at a known minimum take its row; the others follow, merged and in coordinate order
    table: list[np.ndarray] = [np.asarray(m.point, dtype=np.float64) for m in known]
    row_of = np.full(len(centres), -1, dtype=np.int64)
    if known and len(centres):
        dist = np.linalg.norm(centres[:, None, :] - np.array(table)[None], axis=2)
        near = dist.argmin(1)
        hit = dist[np.arange(len(centres)), near] <= cfg.merge_tol
        row_of[hit] = near[hit]
    rest = np.flatnonzero(row_of < 0)
    if len(rest):
        merged = _clusters(centres[rest], cfg.merge_tol)
        firsts = centres[rest][np.unique(merged, return_index=True)[1]]
        order = np.lexsort(firsts.T[::-1])  # coordinate order: first axis first
        new_row = np.empty(len(firsts), dtype=np.int64)
        new_row[order] = len(table) + np.arange(len(firsts))
        table.extend(firsts[order])
        row_of[rest] = new_row[merged]
    label = np.full(n, -1, dtype=np.int32)
    label[found] = row_of[cluster]
    return label, _table(ff, table, len(known), device)


def _table(ff: FieldFunction, points: Sequence[np.ndarray], n_known: int, device: torch.device) -> list[CriticalPoint]:
    if not points:
        return []
    x = torch.tensor(np.array(points), dtype=torch.float64, device=device)
    f, _, h = derivatives(ff, x)
    assert h is not None
    return [
        CriticalPoint(tuple(float(v) for v in p), float(v), kind, ev, i < n_known)
        for i, (p, v, (kind, ev)) in enumerate(zip(points, f.cpu(), _kinds(h, 1e-6)))
    ]


BatchResult = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]  # lo, hi, finals, steps, reasons
RunBatches = Callable[[int], Iterable[BatchResult]]


def basin_batch(
    ff: FieldFunction,
    cfg: BasinsConfig,
    bounds: Sequence[tuple[float, float]],
    dtype: torch.dtype,
    device: torch.device,
    lo: int,
    hi: int,
) -> BatchResult:
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
    label, points = _critical_points(ff, finals, reason, known, cfg, bounds, device)
    counts = tuple(int((label == i).sum()) for i in range(len(points)))
    shape = tuple(reversed(cfg.resolution))
    axes = tuple(np.linspace(lo, hi, k) for (lo, hi), k in zip(bounds, cfg.resolution))
    return BasinsResult(axes, label.reshape(shape), steps.reshape(shape), reason.reshape(shape), tuple(points), counts)
