"""Batched optimiser trajectories: every start point an independent run, all advanced together.

All start points are the elements of one parameter tensor per axis, handed to the real
``torch.optim`` optimiser. The loss is the sum of f over the rows, so each row's gradient is its own point's
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

__all__ = ["REASONS", "Descent", "start_points", "count_starts", "check_recorded", "descend",
           "MAX_RECORDED_POINTS"]

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


def check_recorded(n: int, steps: int, where: str = "paths") -> None:
    """Refuse recording more than MAX_RECORDED_POINTS positions (ConfigError naming ``where``)."""
    if n * (steps + 1) > MAX_RECORDED_POINTS:
        raise ConfigError(f"{where}: {n:,} starts x {steps + 1:,} steps is more than the "
                          f"{MAX_RECORDED_POINTS:,} positions recorded in memory; use fewer starts or "
                          "steps, or basins: for dense grids of starts")


def count_starts(starts: Starts) -> int:
    if starts.points:
        return len(starts.points)
    if starts.grid:
        return math.prod(starts.grid)
    return starts.random


def _optimizer(opt: OptimizerConfig, params: list[torch.Tensor], ascent: bool,
               fused: bool = False) -> torch.optim.Optimizer:
    """The torch.optim optimiser; ``fused`` asks for torch's one-kernel implementation where it
    has one (Adam, AdamW, SGD, Adagrad): faster, equal to the default up to rounding."""
    cls = getattr(torch.optim, opt.torch_class)
    if fused:
        try:
            return cls(params, maximize=ascent, fused=True, **opt.torch_kwargs)
        except (TypeError, RuntimeError, ValueError):
            pass  # no fused version of this optimiser (or for this device): the default one
    return cls(params, maximize=ascent, **opt.torch_kwargs)


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
    fused: bool = False,
) -> Descent:
    """Run ``opt`` from every row of ``starts`` (``(N, D)``) for at most ``steps`` steps.

    ``record``: keep every position (paths) or only the end (basins). ``fused``: use torch's
    fused optimiser where there is one (not bitwise equal to a default torch.optim loop).
    """
    n, d = starts.shape
    if record:
        check_recorded(n, steps)
    dev, dtype = starts.device, starts.dtype
    # one contiguous parameter per axis: elementwise maths, fast gradients and checks
    cols = [starts[:, k].detach().clone().contiguous().requires_grad_(True) for k in range(d)]
    optimizer = _optimizer(opt, cols, ascent, fused)
    bnds = [(float(b[0]), float(b[1])) for b in bounds]
    active = torch.ones(n, dtype=torch.bool, device=dev)
    reason = torch.full((n,), REASONS.index("max_steps"), dtype=torch.uint8, device=dev)
    stop_step = torch.full((n,), steps, dtype=torch.int64, device=dev)
    if record:  # every row every step; rows are held after stopping, NaN is put in afterwards
        positions = torch.empty((n, steps + 1, d), dtype=dtype, device=dev)
        values = torch.empty((n, steps + 1), dtype=dtype, device=dev)
        gnorms = torch.empty((n, steps + 1), dtype=dtype, device=dev)
    held: list[torch.Tensor] | None = None
    for s in range(steps + 1):
        optimizer.zero_grad(set_to_none=False)
        v = ff.scalar(*cols)
        if v.requires_grad:  # a constant function has no gradient to take
            v.sum().backward()
        with torch.no_grad():
            grads = [c.grad if c.grad is not None else torch.zeros_like(c) for c in cols]
            gn2 = grads[0] * grads[0]
            for g in grads[1:]:
                gn2 = gn2 + g * g
            vd = v.detach()
            inside = (cols[0] >= bnds[0][0]) & (cols[0] <= bnds[0][1])
            for c, (lo_k, hi_k) in zip(cols[1:], bnds[1:]):
                inside &= (c >= lo_k) & (c <= hi_k)
            if record:
                for k, c in enumerate(cols):
                    positions[:, s, k] = c
                values[:, s] = vd
                gnorms[:, s] = gn2.sqrt()
            # one cheap test per step (NaN fails every comparison, so it is caught here too) ...
            stop_now = active & ~(inside & (gn2 >= tol * tol) & torch.isfinite(vd))
            if bool(stop_now.any()):  # ... and the reason only for the rare rows that stop
                bad = ~(torch.isfinite(vd) & torch.isfinite(gn2))
                code = torch.where(bad, REASONS.index("diverged"),
                                   torch.where(~inside, REASONS.index("left_domain"), REASONS.index("converged")))
                reason[stop_now] = code[stop_now].to(torch.uint8)
                stop_step[stop_now] = s
                active &= ~stop_now
                held = [c.detach().clone() for c in cols]  # stopped rows stay where they are now
        if on_step is not None:
            on_step(s)
        if s == steps or not bool(active.any()):
            break
        optimizer.step()
        if held is not None:
            with torch.no_grad():
                for c, h in zip(cols, held):
                    c.copy_(torch.where(active, c, h))
    final_value = vd  # stopped rows were held, so this is f at every path's final position
    if record:
        after = torch.arange(steps + 1, device=dev)[None, :] > stop_step[:, None]
        positions[after] = float("nan")
        values[after] = float("nan")
        gnorms[after] = float("nan")
    final = torch.stack([c.detach() for c in cols], dim=1)
    return Descent(
        final.cpu().numpy(), final_value.cpu().numpy(), stop_step.cpu().numpy(), reason.cpu().numpy(),
        positions.cpu().numpy() if record else None,
        values.cpu().numpy() if record else None,
        gnorms.cpu().numpy() if record else None,
    )
