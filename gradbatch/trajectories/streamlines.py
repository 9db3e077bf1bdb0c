"""Streamlines of the gradient (ascent), its negative (descent) or a vector field, batched.

Lines follow the exact field evaluated by autograd at arbitrary points (never interpolated
from a grid), parametrised by arc length: dx/ds = F(x) / |F(x)|. Every line advances in one
batch, with RK4 at a fixed step or Dormand-Prince RK45 with a step per line
(:mod:`gradbatch.integrate`); this module seeds the lines and joins their halves.

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

import numpy as np
import torch

from ..config import StreamlinesConfig
from ..errors import ConfigError
from ..functions.field import FieldFunction
from ..records import STOPS, Streamlines
from .integrate import Field, Mask, integrate
from .paths import start_points

__all__ = ["STOPS", "Streamlines", "integrate", "compute_streamlines", "spiral_cells"]


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


def _assemble(
    pos: torch.Tensor,
    count: torch.Tensor,
    stop: torch.Tensor,
    length: torch.Tensor,
    backward: torch.Tensor | None,
    forward: torch.Tensor | None,
    n: int,
) -> Streamlines:
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
    return Streamlines(
        points,
        offsets,
        seeds,
        stop_np[b_idx] if b_idx is not None else none,
        stop_np[f_idx] if f_idx is not None else none,
        np.asarray(total, dtype=np.float64) * np.ones(n),
    )


def compute_streamlines(
    ff: FieldFunction,
    cfg: StreamlinesConfig,
    bounds: Sequence[tuple[float, float]],
    dtype: torch.dtype,
    device: torch.device,
    sync_every: int | None = None,
) -> Streamlines:
    """The streamlines ``cfg`` asks for. ``sync_every``: see :func:`~.integrate.integrate`."""
    field = Field(ff, cfg.field)
    ranges = [hi - lo for lo, hi in bounds]
    diag = math.sqrt(sum(r * r for r in ranges))
    max_length = cfg.max_length or 4 * diag
    if cfg.even_density:
        return _even(field, cfg, bounds, dtype, device, max_length, sync_every)
    step = cfg.step or min(ranges) / 200
    seeds = start_points(cfg.seeds, bounds, dtype, device)
    return _lines(field, seeds, cfg, bounds, step, max_length, sync_every=sync_every)


def _lines(
    field: Field,
    seeds: torch.Tensor,
    cfg: StreamlinesConfig,
    bounds: Sequence[tuple[float, float]],
    step: float,
    max_length: float,
    mask: Mask | None = None,
    owner: torch.Tensor | None = None,
    sync_every: int | None = None,
) -> Streamlines:
    n = seeds.shape[0]
    dev = seeds.device
    dirs = {"forward": [1], "backward": [-1], "both": [-1, 1]}[cfg.direction]
    all_seeds = torch.cat([seeds] * len(dirs))
    sign = torch.cat([torch.full((n,), s, device=dev) for s in dirs])
    owners = torch.cat([owner] * len(dirs)) if owner is not None else None
    pos, count, stop, length = integrate(
        field, all_seeds, sign, bounds, cfg, step, max_length, mask, owners, sync_every
    )
    idx = torch.arange(n * len(dirs), device=dev).reshape(len(dirs), n)
    backward = idx[0] if -1 in dirs else None
    forward = idx[-1] if 1 in dirs else None
    return _assemble(pos, count, stop, length, backward, forward, n)


def _even(
    field: Field,
    cfg: StreamlinesConfig,
    bounds: Sequence[tuple[float, float]],
    dtype: torch.dtype,
    device: torch.device,
    max_length: float,
    sync_every: int | None = None,
) -> Streamlines:
    if len(bounds) != 2:
        raise ConfigError("streamlines.seeds: evenly spaced seeding is for 2D grids; use grid: or random:")
    nx = ny = max(1, int(round(30 * cfg.even_density)))
    size = ((bounds[0][1] - bounds[0][0]) / nx, (bounds[1][1] - bounds[1][0]) / ny)
    lo = (bounds[0][0], bounds[1][0])
    step = cfg.step or min(size)  # one cell, as matplotlib's streamplot
    min_length = 0.1 * min(hi - lo_ for lo_, hi in bounds)
    mask = Mask(torch.full((nx * ny,), -1, dtype=torch.int64, device=device), lo, size, (nx, ny))
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
            blocked[max(iy - gap + 1, 0) : iy + gap, max(ix - gap + 1, 0) : ix + gap] = True
        order = np.asarray(rest, dtype=np.int64)
        if not picked:
            break
        ids = torch.arange(next_id, next_id + len(picked), device=device)
        next_id += len(picked)
        mask.cells[torch.tensor([iy * nx + ix for ix, iy in picked], device=device)] = ids
        centres = torch.tensor(picked, dtype=torch.float64) + 0.5
        seeds = (
            (torch.tensor(lo, dtype=torch.float64) + centres * torch.tensor(size, dtype=torch.float64))
            .to(dtype)
            .to(device)
        )
        lines = _lines(field, seeds, cfg, bounds, step, max_length, mask, ids, sync_every)
        short = lines.length < min_length
        if short.any():  # too short to draw: free their cells
            drop = ids[torch.as_tensor(short, device=device)]
            mask.cells[torch.isin(mask.cells, drop)] = -1
            lines = _select(lines, np.flatnonzero(~short))
        results.append(lines)
    return _concat(results, 2, dtype)


def _select(s: Streamlines, keep: np.ndarray) -> Streamlines:
    pieces = [s.points[s.offsets[i] : s.offsets[i + 1]] for i in keep]
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
    return Streamlines(
        np.concatenate([p.points for p in parts]),
        np.concatenate(offsets),
        np.concatenate([p.seeds for p in parts]),
        np.concatenate([p.stop_backward for p in parts]),
        np.concatenate([p.stop_forward for p in parts]),
        np.concatenate([p.length for p in parts]),
    )
