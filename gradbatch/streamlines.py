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

import numpy as np
import torch

from .config_trajectories import StreamlinesConfig
from .errors import ConfigError
from .functions import FieldFunction
from .paths import start_points

__all__ = ["STOPS", "Streamlines", "integrate", "compute_streamlines", "spiral_cells"]

STOPS = ("max_length", "max_steps", "stagnation", "domain_edge", "occupied", "not_integrated")
"""Why one end of a line stopped, by code."""

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


@dataclass(frozen=True)
class Streamlines:
    """Ragged lines: line i is ``points[offsets[i]:offsets[i + 1]]``, from its backward end
    through its seed to its forward end."""

    points: np.ndarray  # (M, D)
    offsets: np.ndarray  # (L + 1,) int64
    seeds: np.ndarray  # (L, D)
    stop_backward: np.ndarray  # (L,) uint8, index into STOPS
    stop_forward: np.ndarray  # (L,) uint8
    length: np.ndarray  # (L,) arc length


class _Field:
    """Unit direction and speed of the field at a batch of points ``(N, D)``."""

    def __init__(self, ff: FieldFunction, kind: str) -> None:
        self.ff = ff
        self.kind = kind

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "vector":
            with torch.no_grad():
                f = torch.stack(list(self.ff.fn(*x.unbind(dim=1))), dim=1)  # type: ignore[arg-type]
        else:
            with torch.enable_grad():
                xl = x.detach().requires_grad_(True)
                v = self.ff.fn(*xl.unbind(dim=1))
                (g,) = torch.autograd.grad(v.sum(), xl)  # type: ignore[union-attr]
            f = g if self.kind == "ascent" else -g
        speed = f.norm(dim=1)
        return f / speed.clamp_min(torch.finfo(f.dtype).tiny)[:, None], speed


def _cells(x: torch.Tensor, lo: torch.Tensor, size: torch.Tensor, n: Sequence[int]) -> torch.Tensor:
    """Flat cell index of each point (2D mask, row-major (y, x))."""
    ij = ((x - lo) / size).floor().long()
    ix = ij[:, 0].clamp(0, n[0] - 1)
    iy = ij[:, 1].clamp(0, n[1] - 1)
    return iy * n[0] + ix


def integrate(
    field: _Field,
    seeds: torch.Tensor,
    sign: torch.Tensor,
    bounds: Sequence[tuple[float, float]],
    cfg: StreamlinesConfig,
    step: float,
    max_length: float,
    mask: torch.Tensor | None = None,
    owner: torch.Tensor | None = None,
    cell_size: torch.Tensor | None = None,
    cell_counts: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate lines from ``seeds`` (``(L, D)``) in direction ``sign`` (+1/-1 per line).

    Returns positions ``(L, max_steps + 1, D)`` (NaN after each line's end), point counts,
    stop codes and arc lengths. With ``mask`` (flat cells, -1 = free) lines claim the cells
    they enter as ``owner`` and stop on entering a cell held by another line.
    """
    n, d = seeds.shape
    dev, dtype = seeds.device, seeds.dtype
    lo = torch.tensor([b[0] for b in bounds], dtype=dtype, device=dev)
    hi = torch.tensor([b[1] for b in bounds], dtype=dtype, device=dev)
    steps = cfg.max_steps
    pos = torch.full((n, steps + 1, d), float("nan"), dtype=dtype, device=dev)
    pos[:, 0] = seeds
    count = torch.ones(n, dtype=torch.int64, device=dev)
    x = seeds.clone()
    length = torch.zeros(n, dtype=dtype, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    stop = torch.full((n,), STOPS.index("max_steps"), dtype=torch.uint8, device=dev)
    h = torch.full((n,), step, dtype=dtype, device=dev)
    rows = torch.arange(n, device=dev)
    current = None
    if mask is not None:
        assert cell_size is not None and owner is not None, "mask needs cell_size and owner"
        current = _cells(x, lo, cell_size, cell_counts)
    s_dir = sign.to(dtype)[:, None]
    prev = torch.zeros_like(seeds)  # last accepted direction: a reversal means a sink or source
    attempts = 0
    while bool(active.any()) and attempts < 20 * steps:
        attempts += 1
        idx = rows[active]
        xa = x[idx]
        k1, speed = field(xa)
        k1 = k1 * s_dir[idx]
        # at a critical point the unit direction flips from one step to the next
        stagnant = (speed < cfg.min_speed) | ((k1 * prev[idx]).sum(dim=1) < 0)
        ha = h[idx].clamp(max=(max_length - length[idx]).clamp_min(0))
        if cfg.method == "rk4":
            k2 = field(xa + 0.5 * ha[:, None] * k1)[0] * s_dir[idx]
            k3 = field(xa + 0.5 * ha[:, None] * k2)[0] * s_dir[idx]
            k4 = field(xa + ha[:, None] * k3)[0] * s_dir[idx]
            xn = xa + ha[:, None] / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            accept = torch.ones_like(stagnant)
        else:
            ks = [k1]
            for i in range(1, 7):
                xi = xa + ha[:, None] * sum(a * k for a, k in zip(_DP_A[i], ks))
                ks.append(field(xi)[0] * s_dir[idx])
            xn = xa + ha[:, None] * sum(b * k for b, k in zip(_DP_B, ks))
            err = (ha[:, None] * sum(e * k for e, k in zip(_DP_E, ks))).norm(dim=1)
            accept = err <= cfg.tol
            factor = (0.9 * (cfg.tol / err.clamp_min(1e-300)) ** 0.2).clamp(0.2, 5.0)
            h[idx] = (ha * factor).clamp(max=step * 20)
        # a step that barely moves (its stages cancel around a sink) also means a critical point
        stagnant |= accept & ((xn - xa).norm(dim=1) < 0.25 * ha) & (ha > 0)
        inside = ((xn >= lo) & (xn <= hi)).all(dim=1)
        ok = accept & ~stagnant & inside & torch.isfinite(xn).all(dim=1)
        if mask is not None and cell_size is not None:
            new_cell = _cells(xn, lo, cell_size, cell_counts)
            moved = ok & (new_cell != current[idx])  # type: ignore[index]
            held = moved & (mask[new_cell] != -1)
            claim = moved & ~held
            if bool(claim.any()):  # two lines entering one free cell at once: the lower owner wins
                winner = torch.full_like(mask, torch.iinfo(mask.dtype).max)
                winner.scatter_reduce_(0, new_cell[claim], owner[idx][claim], reduce="amin")  # type: ignore[index]
                lost = claim & (winner[new_cell] != owner[idx])  # type: ignore[index]
                held |= lost
                claim &= ~lost
                mask[new_cell[claim]] = owner[idx][claim]  # type: ignore[index]
            ok &= ~held
            current[idx[ok]] = new_cell[ok]  # type: ignore[index]
            stop[idx[held]] = STOPS.index("occupied")
        # record accepted steps
        good = idx[ok]
        pos[good, count[good]] = xn[ok]
        prev[good] = k1[ok]
        count[good] += 1
        x[good] = xn[ok]
        length[good] += ha[ok]
        # stop rules
        stop[idx[stagnant]] = STOPS.index("stagnation")
        stop[idx[accept & ~stagnant & ~inside]] = STOPS.index("domain_edge")
        stop[idx[accept & ~stagnant & inside & ~torch.isfinite(xn).all(dim=1)]] = STOPS.index("stagnation")
        ended = torch.zeros(n, dtype=torch.bool, device=dev)
        ended[idx[~ok & accept]] = True  # stagnant, outside, occupied or non-finite
        ended[idx[stagnant]] = True
        full = count > steps
        stop[full & active & ~ended] = STOPS.index("max_steps")
        long = length >= max_length * (1 - 1e-9)
        stop[long & active & ~ended & ~full] = STOPS.index("max_length")
        active &= ~(ended | full | long)
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
    """Join the halves of each line: backward half reversed, then the forward half."""
    pos_np, count_np = pos.cpu().numpy(), count.cpu().numpy()
    stop_np, len_np = stop.cpu().numpy(), length.cpu().numpy()
    pieces: list[np.ndarray] = []
    offsets = [0]
    sb = np.full(n, STOPS.index("not_integrated"), np.uint8)
    sf = np.full(n, STOPS.index("not_integrated"), np.uint8)
    total = np.zeros(n)
    b_idx = backward.cpu().numpy() if backward is not None else None
    f_idx = forward.cpu().numpy() if forward is not None else None
    seeds = np.empty((n, pos_np.shape[2]), dtype=pos_np.dtype)
    for i in range(n):
        parts = []
        if b_idx is not None:
            j = b_idx[i]
            parts.append(pos_np[j, :count_np[j]][::-1])
            sb[i], total[i] = stop_np[j], total[i] + len_np[j]
            seeds[i] = pos_np[j, 0]
        if f_idx is not None:
            j = f_idx[i]
            part = pos_np[j, :count_np[j]]
            parts.append(part[1:] if parts else part)
            sf[i], total[i] = stop_np[j], total[i] + len_np[j]
            seeds[i] = pos_np[j, 0]
        line = np.concatenate(parts)
        pieces.append(line)
        offsets.append(offsets[-1] + len(line))
    points = np.concatenate(pieces) if pieces else np.empty((0, pos_np.shape[2]), pos_np.dtype)
    return Streamlines(points, np.asarray(offsets, np.int64), seeds, sb, sf, total)


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
           step: float, max_length: float, **even: object) -> Streamlines:
    n = seeds.shape[0]
    dev = seeds.device
    dirs = {"forward": [1], "backward": [-1], "both": [-1, 1]}[cfg.direction]
    all_seeds = torch.cat([seeds] * len(dirs))
    sign = torch.cat([torch.full((n,), s, device=dev) for s in dirs])
    if "owner" in even:
        even = {**even, "owner": torch.cat([even["owner"]] * len(dirs))}  # type: ignore[list-item]
    pos, count, stop, length = integrate(field, all_seeds, sign, bounds, cfg, step, max_length, **even)  # type: ignore[arg-type]
    idx = torch.arange(n * len(dirs), device=dev).reshape(len(dirs), n)
    backward = idx[0] if -1 in dirs else None
    forward = idx[-1] if 1 in dirs else None
    return _assemble(pos, count, stop, length, backward, forward, n)


def _even(field: _Field, cfg: StreamlinesConfig, bounds: Sequence[tuple[float, float]],
          dtype: torch.dtype, device: torch.device, max_length: float) -> Streamlines:
    if len(bounds) != 2:
        raise ConfigError("streamlines.seeds: evenly spaced seeding is for 2D grids; use grid: or random:")
    nx = ny = max(1, int(round(30 * cfg.even_density)))
    lo = torch.tensor([b[0] for b in bounds], dtype=dtype, device=device)
    size = torch.tensor([(b[1] - b[0]) / c for b, c in zip(bounds, (nx, ny))], dtype=dtype, device=device)
    step = cfg.step or 0.5 * float(size.min())
    min_length = 0.1 * min(hi - lo_ for lo_, hi in bounds)
    mask = torch.full((nx * ny,), -1, dtype=torch.int64, device=device)
    order = spiral_cells(nx, ny)
    results: list[Streamlines] = []
    next_id = 0
    taken = np.zeros(len(order), dtype=bool)
    batch = 1 << 30  # every free cell at least `gap` cells from the others in this round
    gap = 3
    while True:
        free = (mask.cpu().numpy() == -1).reshape(ny, nx)
        blocked = np.zeros((ny, nx), dtype=bool)  # within 2 cells of a seed picked this round
        picked: list[tuple[int, int]] = []
        for k, (ix, iy) in enumerate(order):
            if taken[k]:
                continue
            if not free[iy, ix]:
                taken[k] = True
                continue
            if not blocked[iy, ix]:
                picked.append((ix, iy))
                taken[k] = True
                blocked[max(iy - gap + 1, 0):iy + gap, max(ix - gap + 1, 0):ix + gap] = True
                if len(picked) == batch:
                    break
        if not picked:
            break
        ids = torch.arange(next_id, next_id + len(picked), device=device)
        next_id += len(picked)
        cells = torch.tensor([iy * nx + ix for ix, iy in picked], device=device)
        mask[cells] = ids
        seeds = lo + (torch.tensor(picked, dtype=dtype, device=device) + 0.5) * size
        lines = _lines(field, seeds, cfg, bounds, step, max_length, mask=mask, owner=ids,
                       cell_size=size, cell_counts=(nx, ny))
        short = lines.length < min_length
        if short.any():  # too short to draw: free their cells
            drop = ids[torch.as_tensor(short, device=device)]
            mask[torch.isin(mask, drop)] = -1
            keep = np.flatnonzero(~short)
            lines = _select(lines, keep)
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
