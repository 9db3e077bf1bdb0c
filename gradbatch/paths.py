"""Batched optimiser trajectories: every start point an independent run, all advanced together.

All start points are rows of one ``(N, D)`` parameter tensor handed to the real ``torch.optim``
optimiser. The loss is the sum of f over the rows, so each row's gradient is its own point's
gradient. Every optimiser here updates elementwise, so row i follows exactly the path a
single-point ``torch.optim`` loop from start i would follow. Paths stop one by one; a stopped
row is held where it stopped::

    step s:  evaluate f and grad f at every row ─▶ record ─▶ stop rules ─▶ optimizer.step()
             (rows stopped earlier are restored to their final position after the step)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config_trajectories import OptimizerConfig, Starts
from .errors import ConfigError
from .functions import FieldFunction

__all__ = ["REASONS", "Descent", "start_points", "descend", "MAX_RECORDED_POINTS"]

REASONS = ("converged", "left_domain", "diverged", "max_steps")
"""Why a path stopped, by code: converged (gradient norm below tol), left_domain (outside the
grid's box), diverged (a non-finite value or gradient), max_steps."""

MAX_RECORDED_POINTS = 50_000_000
"""Largest paths x (steps + 1) recorded in memory; dense grids of starts belong in basins:."""

Bounds = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Descent:
    """The result of :func:`descend` for N starts in D dimensions (host arrays).

    ``positions``, ``values``, ``grad_norms`` are ``(N, steps + 1, D)``, ``(N, steps + 1)``,
    ``(N, steps + 1)`` when recorded (NaN after each path's stop step), else None.
    ``final`` is ``(N, D)``; ``stop_step`` the index of each path's last position; ``reason``
    indexes :data:`REASONS`.
    """

    final: np.ndarray
    final_value: np.ndarray
    stop_step: np.ndarray
    reason: np.ndarray
    positions: np.ndarray | None = None
    values: np.ndarray | None = None
    grad_norms: np.ndarray | None = None


def start_points(starts: Starts, bounds: Bounds, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(N, D)`` start points. A grid is flattened with the first axis varying fastest."""
    if starts.points:
        return torch.tensor(starts.points, dtype=dtype, device=device)
    if starts.grid:
        axes = [torch.linspace(lo, hi, n, dtype=torch.float64) for (lo, hi), n in zip(bounds, starts.grid)]
        mesh = torch.meshgrid(*reversed(axes), indexing="ij")  # array order: last axis slowest
        cols = [m.reshape(-1) for m in reversed(mesh)]
        return torch.stack(cols, dim=1).to(dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(starts.seed)
    u = torch.rand((starts.random, len(bounds)), generator=gen, dtype=torch.float64)
    lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
    hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
    return (lo + u * (hi - lo)).to(dtype=dtype, device=device)


def count_starts(starts: Starts) -> int:
    if starts.points:
        return len(starts.points)
    if starts.grid:
        return math.prod(starts.grid)
    return starts.random


def _optimizer(opt: OptimizerConfig, param: torch.Tensor, ascent: bool) -> torch.optim.Optimizer:
    cls = getattr(torch.optim, opt.torch_class)
    return cls([param], maximize=ascent, **opt.torch_kwargs)


def descend(
    ff: FieldFunction,
    starts: torch.Tensor,
    opt: OptimizerConfig,
    steps: int,
    tol: float,
    bounds: Bounds,
    ascent: bool = False,
    record: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Descent:
    """Run ``opt`` from every row of ``starts`` (``(N, D)``) for at most ``steps`` steps."""
    n, d = starts.shape
    if record and n * (steps + 1) > MAX_RECORDED_POINTS:
        raise ConfigError(f"paths: {n:,} starts x {steps + 1:,} steps is more than the "
                          f"{MAX_RECORDED_POINTS:,} positions recorded in memory; use fewer starts or "
                          "steps, or basins: for dense grids of starts")
    dev, dtype = starts.device, starts.dtype
    p = starts.detach().clone().requires_grad_(True)
    optimizer = _optimizer(opt, p, ascent)
    lo = torch.tensor([b[0] for b in bounds], dtype=dtype, device=dev)
    hi = torch.tensor([b[1] for b in bounds], dtype=dtype, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    reason = torch.full((n,), REASONS.index("max_steps"), dtype=torch.uint8, device=dev)
    stop_step = torch.full((n,), steps, dtype=torch.int64, device=dev)
    final_value = torch.full((n,), float("nan"), dtype=dtype, device=dev)
    if record:  # every row every step; rows are held after stopping, NaN is put in afterwards
        positions = torch.empty((n, steps + 1, d), dtype=dtype, device=dev)
        values = torch.empty((n, steps + 1), dtype=dtype, device=dev)
        gnorms = torch.empty((n, steps + 1), dtype=dtype, device=dev)
    held: torch.Tensor | None = None
    for s in range(steps + 1):
        optimizer.zero_grad(set_to_none=False)
        v = ff.fn(*p.unbind(dim=1))
        v.sum().backward()
        assert p.grad is not None
        with torch.no_grad():
            x = p.detach()
            gn = p.grad.norm(dim=1)
            vd = v.detach()
            if record:
                positions[:, s] = x
                values[:, s] = vd
                gnorms[:, s] = gn
            bad = ~(torch.isfinite(vd) & torch.isfinite(gn))
            out = ((x < lo) | (x > hi)).any(dim=1)
            stop_now = active & (bad | out | (gn < tol))
            if bool(stop_now.any()):  # rare: sort out why, and hold those rows from now on
                code = torch.where(bad, REASONS.index("diverged"),
                                   torch.where(out, REASONS.index("left_domain"), REASONS.index("converged")))
                reason[stop_now] = code[stop_now].to(torch.uint8)
                stop_step[stop_now] = s
                final_value[stop_now] = vd[stop_now]
                active &= ~stop_now
                held = x.clone()  # positions of stopped rows stay as they are now
        if on_step is not None:
            on_step(s)
        if s == steps or not bool(active.any()):
            break
        optimizer.step()
        if held is not None:
            with torch.no_grad():
                p.copy_(torch.where(active[:, None], p, held))
    final_value = torch.where(active, vd, final_value)
    if record:
        after = torch.arange(steps + 1, device=dev)[None, :] > stop_step[:, None]
        positions[after] = float("nan")
        values[after] = float("nan")
        gnorms[after] = float("nan")
    final = p.detach()
    return Descent(
        final.cpu().numpy(), final_value.cpu().numpy(), stop_step.cpu().numpy(), reason.cpu().numpy(),
        positions.cpu().numpy() if record else None,
        values.cpu().numpy() if record else None,
        gnorms.cpu().numpy() if record else None,
    )
