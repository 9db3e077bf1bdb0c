"""Integrating streamlines, every line in one batch: dx/ds = F(x) / |F(x)|.

The field is evaluated exactly at arbitrary points (autograd, never interpolated from a grid),
with RK4 at a fixed step or Dormand-Prince RK45 with a step per line. Lines stop at the domain's
edge, at a critical point, after ``max_length`` or ``max_steps``, or (evenly spaced seeding) on
entering a cell of the :class:`Mask` that another line holds. Only lines still running are
computed: the working set is compacted as lines stop, at once on the CPU; on a GPU every
:data:`~gradbatch.trajectories.paths.SYNC_EVERY` steps, the lines that stopped in between being
carried along masked, so that the host waits for the device once per that many steps, not
several times a step. The lines are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from ..config import StreamlinesConfig
from ..derivatives import value_and_grad
from ..functions.field import FieldFunction
from ..records import STOPS
from .paths import SYNC_EVERY

__all__ = ["Cols", "Field", "Mask", "cell", "integrate"]

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
_DP_E = tuple(
    b - bs for b, bs in zip(_DP_B, (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40))
)


Cols = list[torch.Tensor]  # one (N,) tensor per axis: elementwise maths stays fast


class Field:
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
            f = [torch.zeros_like(c) if g is None else (g if self.kind == "ascent" else -g) for c, g in zip(x, grads)]
        speed2 = f[0] * f[0]
        for c in f[1:]:
            speed2 = speed2 + c * c
        speed = speed2.sqrt()
        inv = sign / speed.clamp_min(torch.finfo(speed.dtype).tiny)
        return [c * inv for c in f], speed


def cell(x: Cols, lo: Sequence[float], size: Sequence[float], n: Sequence[int]) -> torch.Tensor:
    """Flat cell index of each point (2D mask, row-major (y, x))."""
    ix = ((x[0] - lo[0]) / size[0]).floor().long().clamp(0, n[0] - 1)
    iy = ((x[1] - lo[1]) / size[1]).floor().long().clamp(0, n[1] - 1)
    return iy * n[0] + ix


def _axpy(x: Cols, a: torch.Tensor, k: Cols) -> Cols:
    """x + a * k, columnwise (a: one step length per line)."""
    return [xc + a * kc for xc, kc in zip(x, k)]


@dataclass
class Mask:
    """Cells of the evenly spaced grid (-1: free, else the owning line) and its geometry."""

    cells: torch.Tensor
    lo: tuple[float, float]
    size: tuple[float, float]
    counts: tuple[int, int]


@dataclass
class _Run:
    """Every line's record (``pos`` ``(L, S, D)``, ``count``, ``length``, ``stop``) and the working
    set of lines still running (``ids`` into the record, and their state), compacted as lines stop."""

    pos: torch.Tensor
    count: torch.Tensor
    length: torch.Tensor
    stop: torch.Tensor
    ids: torch.Tensor
    x: Cols
    prev: Cols  # each line's last accepted direction: a flip means a critical point
    sgn: torch.Tensor
    h: torch.Tensor
    run_len: torch.Tensor
    run_count: torch.Tensor
    current: torch.Tensor | None  # each line's cell of the mask
    own: torch.Tensor | None  # each line's owner id in the mask
    live: torch.Tensor | None = None  # between compactions (GPU): which lines of the set still run

    @classmethod
    def start(
        cls,
        seeds: torch.Tensor,
        sign: torch.Tensor,
        step: float,
        steps: int,
        mask: Mask | None,
        owner: torch.Tensor | None,
    ) -> _Run:
        n, d = seeds.shape
        dev, dtype = seeds.device, seeds.dtype
        # the point buffer grows by doubling: lines rarely need max_steps, and it is (L, steps, D)
        pos = torch.full((n, min(steps + 1, 64), d), float("nan"), dtype=dtype, device=dev)
        pos[:, 0] = seeds
        x = [seeds[:, k].contiguous() for k in range(d)]
        return cls(
            pos,
            torch.ones(n, dtype=torch.int64, device=dev),
            torch.zeros(n, dtype=dtype, device=dev),
            torch.full((n,), STOPS.index("max_steps"), dtype=torch.uint8, device=dev),
            torch.arange(n, device=dev),
            x,
            [torch.zeros(n, dtype=dtype, device=dev) for _ in range(d)],
            sign.to(dtype),
            torch.full((n,), step, dtype=dtype, device=dev),
            torch.zeros(n, dtype=dtype, device=dev),
            torch.ones(n, dtype=torch.int64, device=dev),
            cell(x, mask.lo, mask.size, mask.counts) if mask is not None else None,
            owner,
        )

    def keep(self, keep: torch.Tensor) -> None:
        """Drop the lines that stopped from the working set."""
        self.ids = self.ids[keep]
        self.x = [c[keep] for c in self.x]
        self.prev = [c[keep] for c in self.prev]
        self.sgn, self.h, self.run_len, self.run_count = (
            self.sgn[keep],
            self.h[keep],
            self.run_len[keep],
            self.run_count[keep],
        )
        if self.current is not None and self.own is not None:
            self.current, self.own = self.current[keep], self.own[keep]
        if self.live is not None:
            self.live = self.live[keep]

    def reserve(self, steps: int, limit: int) -> None:
        """Grow the point buffer (by doubling, to at most ``limit`` points a line) so that every
        running line can take ``steps`` more points without asking the device again."""
        need = min(int(self.run_count.max()) + steps, limit)
        have = self.pos.shape[1]
        if need > have:
            n, d = self.pos.shape[0], self.pos.shape[2]
            size = min(max(need, 2 * have), limit)
            grown = torch.full((n, size, d), float("nan"), dtype=self.pos.dtype, device=self.pos.device)
            grown[:, :have] = self.pos
            self.pos = grown


def integrate(
    field: Field,
    seeds: torch.Tensor,
    sign: torch.Tensor,
    bounds: Sequence[tuple[float, float]],
    cfg: StreamlinesConfig,
    step: float,
    max_length: float,
    mask: Mask | None = None,
    owner: torch.Tensor | None = None,
    sync_every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate lines from ``seeds`` (``(L, D)``) in direction ``sign`` (+1/-1 per line).

    Returns positions ``(L, S, D)`` (S <= max_steps + 1; NaN after each line's end), point counts,
    stop codes and arc lengths. With ``mask`` lines claim the cells they enter as ``owner`` and
    stop on entering a cell held by another line (or by their own earlier part).

    Only lines still running are computed: the working set is compacted as lines stop, every
    ``sync_every`` steps (default: 1 on the CPU, where asking the device costs nothing,
    :data:`~gradbatch.trajectories.paths.SYNC_EVERY` elsewhere); the lines are the same.
    """
    every = sync_every or (1 if seeds.device.type == "cpu" else SYNC_EVERY)
    run = _Run.start(seeds, sign, step, cfg.max_steps, mask, owner)
    attempts, limit = 0, 20 * cfg.max_steps
    if every == 1:
        while run.ids.numel() and attempts < limit:
            attempts += 1
            _attempt(run, field, bounds, cfg, step, max_length, mask)
    else:
        run.live = torch.ones_like(run.ids, dtype=torch.bool)
        while run.ids.numel() and attempts < limit:
            batch = min(every, limit - attempts)
            run.reserve(batch, cfg.max_steps + 1)
            for _ in range(batch):
                _attempt(run, field, bounds, cfg, step, max_length, mask)
            attempts += batch
            run.keep(run.live)
    if run.ids.numel():  # out of attempts (rk45 refusing every step): record where they got to
        run.count[run.ids] = run.run_count
        run.length[run.ids] = run.run_len
    return run.pos, run.count, run.stop, run.length


def _attempt(
    run: _Run,
    field: Field,
    bounds: Sequence[tuple[float, float]],
    cfg: StreamlinesConfig,
    step: float,
    max_length: float,
    mask: Mask | None,
) -> None:
    """One step of every running line: accepted, refused (rk45), or the line's end."""
    k1, speed = field(run.x, run.sgn)
    # at a critical point the unit direction flips, or the step stops moving
    dot = k1[0] * run.prev[0]
    for a, b in zip(k1[1:], run.prev[1:]):
        dot = dot + a * b
    stagnant = (speed < cfg.min_speed) | (dot < 0)
    ha = torch.minimum(run.h, (max_length - run.run_len).clamp_min(0))
    if cfg.method == "rk4":
        xn = _rk4(field, run.x, run.sgn, k1, ha)
        accept = torch.ones_like(stagnant)
    else:
        xn, accept, run.h = _rk45(field, run.x, run.sgn, k1, ha, cfg.tol, step)
    moved2 = torch.zeros_like(ha)
    inside = torch.ones_like(stagnant)  # NaN fails these comparisons too
    for j, (lo, hi) in enumerate(bounds):
        dj = xn[j] - run.x[j]
        moved2 = moved2 + dj * dj
        inside &= (xn[j] >= lo) & (xn[j] <= hi)
    stagnant |= accept & (moved2 < (0.25 * ha) ** 2) & (ha > 0)
    ok = accept & ~stagnant & inside
    if run.live is not None:  # lines that stopped since the last compaction stay where they are
        ok &= run.live
    held = torch.zeros_like(ok)
    if mask is not None and run.own is not None and run.current is not None:
        ok, held = _claim(run, mask, xn, ok)
    _advance(run, xn, k1, ha, ok, cfg.max_steps)
    # which lines end now; why, only for those (a rare, small set)
    long = run.run_len >= max_length * (1 - 1e-9)
    full = run.run_count > cfg.max_steps
    ended = long | full | held | stagnant | (accept & ~inside)
    if run.live is not None:
        _end(run, ended & run.live, xn, full, held, stagnant, accept, inside)
    elif bool(ended.any()):
        _end(run, ended, xn, full, held, stagnant, accept, inside)


def _rk4(field: Field, x: Cols, sgn: torch.Tensor, k1: Cols, ha: torch.Tensor) -> Cols:
    k2 = field(_axpy(x, 0.5 * ha, k1), sgn)[0]
    k3 = field(_axpy(x, 0.5 * ha, k2), sgn)[0]
    k4 = field(_axpy(x, ha, k3), sgn)[0]
    return [xc + ha / 6 * (a + 2 * b + 2 * c + e) for xc, a, b, c, e in zip(x, k1, k2, k3, k4)]


def _rk45(
    field: Field, x: Cols, sgn: torch.Tensor, k1: Cols, ha: torch.Tensor, tol: float, step: float
) -> tuple[Cols, torch.Tensor, torch.Tensor]:
    """A Dormand-Prince step: the new points, whether each step's error is within ``tol``, and
    each line's next step length."""
    ks = [k1]
    for i in range(1, 7):
        xi = [xc + ha * sum(a * kk[j] for a, kk in zip(_DP_A[i], ks)) for j, xc in enumerate(x)]
        ks.append(field(xi, sgn)[0])
    xn = [xc + ha * sum(b * kk[j] for b, kk in zip(_DP_B, ks)) for j, xc in enumerate(x)]
    err2 = torch.zeros_like(ha)
    for j in range(len(x)):
        e = ha * sum(c * kk[j] for c, kk in zip(_DP_E, ks))
        err2 = err2 + e * e
    err = err2.sqrt()
    accept = err <= tol
    # x ** 0.2 as exp(0.2 log x): torch's vectorised pow rounds differently in a batch's last,
    # partial vector, and a line's steps must not depend on how many others still run
    factor = (0.9 * torch.exp(0.2 * torch.log(tol / err.clamp_min(1e-300)))).clamp(0.2, 5.0)
    return xn, accept, (ha * factor).clamp(max=step * 20)


def _claim(run: _Run, mask: Mask, xn: Cols, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines entering a new cell claim it; those entering a held one stop there (``held``)."""
    assert run.current is not None and run.own is not None
    own, current = run.own, run.current
    new_cell = cell(xn, mask.lo, mask.size, mask.counts)
    moved = ok & (new_cell != current)
    held = moved & (mask.cells[new_cell] != -1)
    claim = moved & ~held
    if run.live is not None:  # on the device, without asking whether any line claims
        _claim_masked(mask, new_cell, own, claim, held)
    elif bool(claim.any()):  # two lines entering one free cell at once: the lower owner wins
        winner = torch.full_like(mask.cells, torch.iinfo(mask.cells.dtype).max)
        winner.scatter_reduce_(0, new_cell[claim], own[claim], reduce="amin")
        lost = claim & (winner[new_cell] != own)
        held |= lost
        claim &= ~lost
        mask.cells[new_cell[claim]] = own[claim]
    ok &= ~held
    run.current = torch.where(ok, new_cell, current)
    return ok, held


def _claim_masked(
    mask: Mask, new_cell: torch.Tensor, own: torch.Tensor, claim: torch.Tensor, held: torch.Tensor
) -> None:
    """:func:`_claim`'s claiming without a host sync: lines that do not claim aim at a spare
    cell past the mask's end, so every line takes part in the same few kernels. Updates
    ``claim`` and ``held`` in place."""
    spare = mask.cells.numel()
    at = torch.where(claim, new_cell, spare)
    winner = torch.full((spare + 1,), torch.iinfo(mask.cells.dtype).max, dtype=mask.cells.dtype, device=own.device)
    winner.scatter_reduce_(0, at, own, reduce="amin")
    lost = claim & (winner[new_cell] != own)
    held |= lost
    claim &= ~lost
    cells = torch.cat([mask.cells, mask.cells.new_full((1,), -1)])
    cells.index_put_((torch.where(claim, new_cell, spare),), own)  # one winner a cell: no clash
    mask.cells.copy_(cells[:spare])


def _advance(run: _Run, xn: Cols, k1: Cols, ha: torch.Tensor, ok: torch.Tensor, steps: int) -> None:
    """Move the accepted lines and record their new point (growing the buffer as needed)."""
    run.x = [torch.where(ok, a, b) for a, b in zip(xn, run.x)]
    run.prev = [torch.where(ok, a, b) for a, b in zip(k1, run.prev)]
    run.run_len = torch.where(ok, run.run_len + ha, run.run_len)
    if run.live is not None:  # room was reserved: every line writes (the others their old value)
        at = run.run_count.clamp(max=run.pos.shape[1] - 1)
        for j in range(len(run.x)):
            run.pos[run.ids, at, j] = torch.where(ok, run.x[j], run.pos[run.ids, at, j])
    elif bool(ok.any()):
        rows, at = run.ids[ok], run.run_count[ok]
        pos = run.pos
        if int(at.max()) >= pos.shape[1]:
            n, d = pos.shape[0], pos.shape[2]
            grown = torch.full(
                (n, min(steps + 1, 2 * pos.shape[1]), d), float("nan"), dtype=pos.dtype, device=pos.device
            )
            grown[:, : pos.shape[1]] = pos
            run.pos = pos = grown
        for j in range(len(run.x)):
            pos[rows, at, j] = run.x[j][ok]
    run.run_count = run.run_count + ok.long()


def _end(
    run: _Run,
    ended: torch.Tensor,
    xn: Cols,
    full: torch.Tensor,
    held: torch.Tensor,
    stagnant: torch.Tensor,
    accept: torch.Tensor,
    inside: torch.Tensor,
) -> None:
    """Record why each ``ended`` line stopped, and drop it from the working set: at once (the
    CPU), or, between compactions, by marking it no longer live (no host sync)."""
    finite = torch.ones_like(inside)
    for c in xn:
        finite &= torch.isfinite(c)
    code = torch.full_like(inside, STOPS.index("max_length"), dtype=torch.uint8)
    code = torch.where(full, STOPS.index("max_steps"), code)
    code = torch.where(held, STOPS.index("occupied"), code)
    code = torch.where(accept & ~inside, STOPS.index("domain_edge"), code)
    code = torch.where(stagnant | ~finite, STOPS.index("stagnation"), code)
    if run.live is None:
        done = run.ids[ended]
        run.stop[done] = code[ended]
        run.count[done] = run.run_count[ended]
        run.length[done] = run.run_len[ended]
        run.keep(~ended)
        return
    ids = run.ids
    run.stop[ids] = torch.where(ended, code, run.stop[ids])
    run.count[ids] = torch.where(ended, run.run_count, run.count[ids])
    run.length[ids] = torch.where(ended, run.run_len, run.length[ids])
    run.live &= ~ended
