"""Streamlines of the gradient (ascent), its negative (descent) or a vector field, batched.

Lines follow the exact field evaluated by autograd at arbitrary points (never interpolated
from a grid), parametrised by arc length: dx/ds = F(x) / |F(x)|. Every line advances in one
batch, with RK4 at a fixed step or Dormand-Prince RK45 with a step per line.

Evenly spaced seeding (2D; ``seeds: {even: density}``, as matplotlib's ``streamplot``): the
domain is split into 30 x density cells per axis. Seeds are taken from free cells in a spiral
from the boundary inwards, in rounds of well-separated seeds integrated together. A line stops
when it enters a cell another line (or its own earlier part) already holds. Lines shorter than
a tenth of the domain are dropped and their cells freed.

Stored ragged: ``points`` (M, D), ``offsets`` (L + 1), and per line why each end stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from .config import StreamlinesConfig
from .derivatives import value_and_grad
from .errors import ConfigError
from .functions.field import FieldFunction
from .paths import start_points
from .records import STOPS, Streamlines

__all__ = ["STOPS", "Streamlines", "integrate", "compute_streamlines", "spiral_cells"]

_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_E = tuple(b - bs for b, bs in zip(_DP_B, (5179 / 57600, 0.0, 7571 / 16695, 393 / 640,
                                            -92097 / 339200, 187 / 2100, 1 / 40)))


Cols = list[torch.Tensor]  # one (N,) tensor per axis: elementwise maths stays fast


class _Field:
    """Unit direction (one column per axis) and speed of the field at N points."""

    def __init__(self, ff: FieldFunction, kind: str) -> None:
        self.ff = ff
        self.kind = kind

    def __call__(self, x: Cols, sign: torch.Tensor | float = 1.0) -> tuple[Cols, torch.Tensor]:
        if self.kind == "vector":
            with torch.no_grad():
                f = list(cast(tuple, self.ff.fn(*x)))
        else:
            grads = value_and_grad(self.ff.scalar, x)[1]
            f = [torch.zeros_like(c) if g is None else (g if self.kind == "ascent" else -g)
                 for c, g in zip(x, grads)]
        speed2 = f[0] * f[0]
        for c in f[1:]:
            speed2 = speed2 + c * c
        speed = speed2.sqrt()
        inv = sign / speed.clamp_min(torch.finfo(speed.dtype).tiny)
        return [c * inv for c in f], speed


def _cell(x: Cols, lo: Sequence[float], size: Sequence[float], n: Sequence[int]) -> torch.Tensor:
    """Flat cell index of each point (2D mask, row-major (y, x))."""
    ix = ((x[0] - lo[0]) / size[0]).floor().long().clamp(0, n[0] - 1)
    iy = ((x[1] - lo[1]) / size[1]).floor().long().clamp(0, n[1] - 1)
    return iy * n[0] + ix


def _axpy(x: Cols, a: torch.Tensor, k: Cols) -> Cols:
    """x + a * k, columnwise (a: one step length per line)."""
    return [xc + a * kc for xc, kc in zip(x, k)]


@dataclass
class _Mask:
    """Cells of the evenly spaced grid (-1: free, else the owning line) and its geometry."""

    cells: torch.Tensor
    lo: tuple[float, float]
    size: tuple[float, float]
    counts: tuple[int, int]


def integrate(
    field: _Field,
    seeds: torch.Tensor,
    sign: torch.Tensor,
    bounds: Sequence[tuple[float, float]],
    cfg: StreamlinesConfig,
    step: float,
    max_length: float,
    mask: _Mask | None = None,
    owner: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate lines from ``seeds`` (``(L, D)``) in direction ``sign`` (+1/-1 per line).

    Returns positions ``(L, S, D)`` (S <= max_steps + 1; NaN after each line's end), point counts,
    stop codes and arc lengths. With ``mask`` lines claim the cells they enter as ``owner`` and
    stop on entering a cell held by another line (or by their own earlier part).

    Only lines still running are computed: the working set is compacted as lines stop.
    """
    n, d = seeds.shape
    dev, dtype = seeds.device, seeds.dtype
    steps = cfg.max_steps
    # the point buffer grows by doubling: lines rarely need max_steps, and it is (L, steps, D)
    pos = torch.full((n, min(steps + 1, 64), d), float("nan"), dtype=dtype, device=dev)
    pos[:, 0] = seeds
    count = torch.ones(n, dtype=torch.int64, device=dev)
    length = torch.zeros(n, dtype=dtype, device=dev)
    stop = torch.full((n,), STOPS.index("max_steps"), dtype=torch.uint8, device=dev)
    # the working set: lines still running
    ids = torch.arange(n, device=dev)
    x = [seeds[:, k].contiguous() for k in range(d)]
    sgn = sign.to(dtype)
    h = torch.full((n,), step, dtype=dtype, device=dev)
    run_len = torch.zeros(n, dtype=dtype, device=dev)
    run_count = torch.ones(n, dtype=torch.int64, device=dev)
    prev = [torch.zeros(n, dtype=dtype, device=dev) for _ in range(d)]
    own = owner
    current = _cell(x, mask.lo, mask.size, mask.counts) if mask is not None else None
    lo_b = [b[0] for b in bounds]
    hi_b = [b[1] for b in bounds]
    attempts = 0
    while ids.numel() and attempts < 20 * steps:
        attempts += 1
        k1, speed = field(x, sgn)
        # at a critical point the unit direction flips, or the step stops moving
        dot = k1[0] * prev[0]
        for a, b in zip(k1[1:], prev[1:]):
            dot = dot + a * b
        stagnant = (speed < cfg.min_speed) | (dot < 0)
        ha = torch.minimum(h, (max_length - run_len).clamp_min(0))
        if cfg.method == "rk4":
            k2 = field(_axpy(x, 0.5 * ha, k1), sgn)[0]
            k3 = field(_axpy(x, 0.5 * ha, k2), sgn)[0]
            k4 = field(_axpy(x, ha, k3), sgn)[0]
            xn = [xc + ha / 6 * (a + 2 * b + 2 * c + e) for xc, a, b, c, e in zip(x, k1, k2, k3, k4)]
            accept = torch.ones_like(stagnant)
        else:
            ks = [k1]
            for i in range(1, 7):
                xi = [xc + ha * sum(a * kk[j] for a, kk in zip(_DP_A[i], ks)) for j, xc in enumerate(x)]
                ks.append(field(xi, sgn)[0])
            xn = [xc + ha * sum(b * kk[j] for b, kk in zip(_DP_B, ks)) for j, xc in enumerate(x)]
            err2 = torch.zeros_like(ha)
            for j in range(d):
                e = ha * sum(c * kk[j] for c, kk in zip(_DP_E, ks))
                err2 = err2 + e * e
            err = err2.sqrt()
            accept = err <= cfg.tol
            factor = (0.9 * (cfg.tol / err.clamp_min(1e-300)) ** 0.2).clamp(0.2, 5.0)
            h = (ha * factor).clamp(max=step * 20)
        moved2 = torch.zeros_like(ha)
        inside = torch.ones_like(stagnant)  # NaN fails these comparisons too
        for j in range(d):
            dj = xn[j] - x[j]
            moved2 = moved2 + dj * dj
            inside &= (xn[j] >= lo_b[j]) & (xn[j] <= hi_b[j])
        stagnant |= accept & (moved2 < (0.25 * ha) ** 2) & (ha > 0)
        ok = accept & ~stagnant & inside
        held = torch.zeros_like(ok)
        if mask is not None and own is not None and current is not None:
            new_cell = _cell(xn, mask.lo, mask.size, mask.counts)
            moved = ok & (new_cell != current)
            held = moved & (mask.cells[new_cell] != -1)
            claim = moved & ~held
            if bool(claim.any()):  # two lines entering one free cell at once: the lower owner wins
                winner = torch.full_like(mask.cells, torch.iinfo(mask.cells.dtype).max)
                winner.scatter_reduce_(0, new_cell[claim], own[claim], reduce="amin")
                lost = claim & (winner[new_cell] != own)
                held |= lost
                claim &= ~lost
                mask.cells[new_cell[claim]] = own[claim]
            ok &= ~held
            current = torch.where(ok, new_cell, current)
        # advance accepted lines and record their new point
        x = [torch.where(ok, a, b) for a, b in zip(xn, x)]
        prev = [torch.where(ok, a, b) for a, b in zip(k1, prev)]
        run_len = torch.where(ok, run_len + ha, run_len)
        if bool(ok.any()):
            rows, at = ids[ok], run_count[ok]
            if int(at.max()) >= pos.shape[1]:
                grown = torch.full((n, min(steps + 1, 2 * pos.shape[1]), d), float("nan"), dtype=dtype, device=dev)
                grown[:, :pos.shape[1]] = pos
                pos = grown
            for j in range(d):
                pos[rows, at, j] = x[j][ok]
        run_count = run_count + ok.long()
        # which lines end now; why, only for those (a rare, small set)
        long = run_len >= max_length * (1 - 1e-9)
        full = run_count > steps
        ended = long | full | held | stagnant | (accept & ~inside)
        if bool(ended.any()):
            e_inside, e_stag, e_held = inside[ended], stagnant[ended], held[ended]
            e_finite = torch.ones_like(e_inside)
            for j in range(d):
                e_finite &= torch.isfinite(xn[j][ended])
            code = torch.full_like(e_inside, STOPS.index("max_length"), dtype=torch.uint8)
            code[full[ended]] = STOPS.index("max_steps")
            code[e_held] = STOPS.index("occupied")
            code[accept[ended] & ~e_inside] = STOPS.index("domain_edge")
            code[e_stag | ~e_finite] = STOPS.index("stagnation")
            done = ids[ended]
            stop[done] = code
            count[done] = run_count[ended]
            length[done] = run_len[ended]
            keep = ~ended
            ids = ids[keep]
            x = [c[keep] for c in x]
            prev = [c[keep] for c in prev]
            sgn, h, run_len, run_count = sgn[keep], h[keep], run_len[keep], run_count[keep]
            if current is not None and own is not None:
                current, own = current[keep], own[keep]
    if ids.numel():  # out of attempts (rk45 refusing every step): record where they got to
        count[ids] = run_count
        length[ids] = run_len
    return pos, count, stop, length


def spiral_cells(nx: int, ny: int) -> list[tuple[int, int]]:
    """Cells (ix, iy) from the boundary inwards, as matplotlib's streamplot seeds them."""
    out: list[tuple[int, int]] = []
    x0, y0, x1, y1 = 0, 0, nx - 1, ny - 1
    while x0 <= x1 and y0 <= y1:
        out += [(i, y0) for i in range(x0, x1 + 1)]
        out += [(x1, j) for j in range(y0 + 1, y1 + 1)]
        if y1 > y0:
            out += [(i, y1) for i in range(x1 - 1, x0 - 1, -1)]
        if x1 > x0:
            out += [(x0, j) for j in range(y1 - 1, y0, -1)]
        x0, y0, x1, y1 = x0 + 1, y0 + 1, x1 - 1, y1 - 1
    return out


def _assemble(pos: torch.Tensor, count: torch.Tensor, stop: torch.Tensor, length: torch.Tensor,
              backward: torch.Tensor | None, forward: torch.Tensor | None, n: int) -> Streamlines:
    """Join the halves of each line: backward half reversed, then the forward half (whose first
    point, the seed, the backward half already has). Vectorised with index arithmetic."""
    pos_np, count_np = pos.cpu().numpy(), count.cpu().numpy()
    stop_np, len_np = stop.cpu().numpy(), length.cpu().numpy()
    none = np.full(n, STOPS.index("not_integrated"), np.uint8)
    b_idx = backward.cpu().numpy() if backward is not None else None
    f_idx = forward.cpu().numpy() if forward is not None else None
    nb = count_np[b_idx] if b_idx is not None else np.zeros(n, np.int64)
    nf = count_np[f_idx] if f_idx is not None else np.zeros(n, np.int64)
    if b_idx is not None and f_idx is not None:
        nf = nf - 1  # the seed is the backward half's last point
    sizes = nb + nf
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    if b_idx is not None:  # point k of line i is step nb[i] - 1 - k of its backward half
        line = np.repeat(np.arange(n), nb)
        k = np.arange(int(nb.sum())) - np.repeat(np.cumsum(nb) - nb, nb)
        rows_parts.append((line, b_idx[line], nb[line] - 1 - k, offsets[line] + k))
    if f_idx is not None:
        skip = 1 if b_idx is not None else 0
        line = np.repeat(np.arange(n), nf)
        k = np.arange(int(nf.sum())) - np.repeat(np.cumsum(nf) - nf, nf)
        rows_parts.append((line, f_idx[line], k + skip, offsets[line] + nb[line] + k))
    points = np.empty((int(offsets[-1]), pos_np.shape[2]), dtype=pos_np.dtype)
    for _, src_row, src_step, dest in rows_parts:
        points[dest] = pos_np[src_row, src_step]
    first = b_idx if b_idx is not None else f_idx
    assert first is not None
    seeds = pos_np[first, 0]
    total = (len_np[b_idx] if b_idx is not None else 0) + (len_np[f_idx] if f_idx is not None else 0)
    return Streamlines(points, offsets, seeds,
                       stop_np[b_idx] if b_idx is not None else none,
                       stop_np[f_idx] if f_idx is not None else none,
                       np.asarray(total, dtype=np.float64) * np.ones(n))


def compute_streamlines(
    ff: FieldFunction,
    cfg: StreamlinesConfig,
    bounds: Sequence[tuple[float, float]],
    dtype: torch.dtype,
    device: torch.device,
) -> Streamlines:
    field = _Field(ff, cfg.field)
    ranges = [hi - lo for lo, hi in bounds]
    diag = math.sqrt(sum(r * r for r in ranges))
    max_length = cfg.max_length or 4 * diag
    if cfg.even_density:
        return _even(field, cfg, bounds, dtype, device, max_length)
    step = cfg.step or min(ranges) / 200
    seeds = start_points(cfg.seeds, bounds, dtype, device)
    return _lines(field, seeds, cfg, bounds, step, max_length)


def _lines(field: _Field, seeds: torch.Tensor, cfg: StreamlinesConfig, bounds: Sequence[tuple[float, float]],
           step: float, max_length: float, mask: _Mask | None = None, owner: torch.Tensor | None = None
           ) -> Streamlines:
    n = seeds.shape[0]
    dev = seeds.device
    dirs = {"forward": [1], "backward": [-1], "both": [-1, 1]}[cfg.direction]
    all_seeds = torch.cat([seeds] * len(dirs))
    sign = torch.cat([torch.full((n,), s, device=dev) for s in dirs])
    owners = torch.cat([owner] * len(dirs)) if owner is not None else None
    pos, count, stop, length = integrate(field, all_seeds, sign, bounds, cfg, step, max_length, mask, owners)
    idx = torch.arange(n * len(dirs), device=dev).reshape(len(dirs), n)
    backward = idx[0] if -1 in dirs else None
    forward = idx[-1] if 1 in dirs else None
    return _assemble(pos, count, stop, length, backward, forward, n)


def _even(field: _Field, cfg: StreamlinesConfig, bounds: Sequence[tuple[float, float]],
          dtype: torch.dtype, device: torch.device, max_length: float) -> Streamlines:
    if len(bounds) != 2:
        raise ConfigError("streamlines.seeds: evenly spaced seeding is for 2D grids; use grid: or random:")
    nx = ny = max(1, int(round(30 * cfg.even_density)))
    size = ((bounds[0][1] - bounds[0][0]) / nx, (bounds[1][1] - bounds[1][0]) / ny)
    lo = (bounds[0][0], bounds[1][0])
    step = cfg.step or min(size)  # one cell, as matplotlib's streamplot
    min_length = 0.1 * min(hi - lo_ for lo_, hi in bounds)
    mask = _Mask(torch.full((nx * ny,), -1, dtype=torch.int64, device=device), lo, size, (nx, ny))
    order = np.array([iy * nx + ix for ix, iy in spiral_cells(nx, ny)], dtype=np.int64)
    results: list[Streamlines] = []
    next_id = 0
    gap = 3  # seeds of one round start at least this many cells apart
    while True:
        free = mask.cells.cpu().numpy() == -1
        order = order[free[order]]  # each cell is tried as a seed once, as in matplotlib
        blocked = np.zeros((ny, nx), dtype=bool)  # near a seed picked this round
        picked: list[tuple[int, int]] = []
        rest: list[int] = []
        for flat in order.tolist():
            iy, ix = divmod(flat, nx)
            if blocked[iy, ix]:
                rest.append(flat)
                continue
            picked.append((ix, iy))
            blocked[max(iy - gap + 1, 0):iy + gap, max(ix - gap + 1, 0):ix + gap] = True
        order = np.asarray(rest, dtype=np.int64)
        if not picked:
            break
        ids = torch.arange(next_id, next_id + len(picked), device=device)
        next_id += len(picked)
        mask.cells[torch.tensor([iy * nx + ix for ix, iy in picked], device=device)] = ids
        centres = torch.tensor(picked, dtype=torch.float64) + 0.5
        seeds = (torch.tensor(lo, dtype=torch.float64) + centres * torch.tensor(size, dtype=torch.float64)).to(dtype).to(device)
        lines = _lines(field, seeds, cfg, bounds, step, max_length, mask, ids)
        short = lines.length < min_length
        if short.any():  # too short to draw: free their cells
            drop = ids[torch.as_tensor(short, device=device)]
            mask.cells[torch.isin(mask.cells, drop)] = -1
            lines = _select(lines, np.flatnonzero(~short))
        results.append(lines)
    return _concat(results, 2, dtype)


def _select(s: Streamlines, keep: np.ndarray) -> Streamlines:
    pieces = [s.points[s.offsets[i]:s.offsets[i + 1]] for i in keep]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    points = np.concatenate(pieces) if pieces else s.points[:0]
    return Streamlines(points, offsets, s.seeds[keep], s.stop_backward[keep], s.stop_forward[keep], s.length[keep])


def _concat(parts: list[Streamlines], d: int, dtype: torch.dtype) -> Streamlines:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    if not parts:
        e = np.empty((0, d), np_dtype)
        return Streamlines(e, np.zeros(1, np.int64), e, np.empty(0, np.uint8), np.empty(0, np.uint8), np.empty(0))
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    return Streamlines(np.concatenate([p.points for p in parts]), np.concatenate(offsets),
                       np.concatenate([p.seeds for p in parts]), np.concatenate([p.stop_backward for p in parts]),
                       np.concatenate([p.stop_forward for p in parts]), np.concatenate([p.length for p in parts]))
