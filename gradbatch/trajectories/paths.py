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

import torch

from ..config import OptimizerConfig, Starts
from ..derivatives import value_and_grad
from ..errors import ConfigError
from ..functions.field import FieldFunction
from ..records import REASONS, Descent

__all__ = [
    "REASONS",
    "STALL_WINDOW",
    "Descent",
    "start_points",
    "count_starts",
    "check_recorded",
    "descend",
    "MAX_RECORDED_POINTS",
]

STALL_WINDOW = 100
"""Steps between stall checks. A path is ``stalled`` at a check when, over the last window,

- its best gradient norm did not halve, and
- its best value did not fall (rise, for ascent) by more than ``STALL_NOISE`` times the change
  that moving one coordinate by one unit in the last place (ulp) makes, and
- its gradient norm is at most ``STALL_NOISE`` times the change in the gradient such a one-ulp
  move makes: the dtype's noise floor there (float32 gradients at Himmelblau's minima settle
  near 3e-5, above the default tol); or, for SGD (momentum below 0.93) and Adagrad, its
  position did not change at all: their step at an unchanged point never grows again (a
  momentum's velocity has settled within a window), so the path is frozen for good (plain SGD
  with a small learning rate freezes where lr * |grad f| is below half an ulp). Adam and RMSprop
  can start moving again as their second-moment average decays, so for them only the noise
  floor counts.

A slow path that still makes progress (SGD down Rosenbrock's valley) lowers its value by far
more than that noise over a window, so it is not cut short; nor is Adam crawling towards a
minimum by less than an ulp a step while its gradient is still well above the floor."""

STALL_NOISE = 2.0

SYNC_EVERY = 32
"""On a GPU, steps between the loop's one question to the device (does any path still run?)."""

MAX_RECORDED_POINTS = 50_000_000
"""Largest paths x (steps + 1) recorded in memory; dense grids of starts belong in basins:."""

Bounds = Sequence[tuple[float, float]]


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
        raise ConfigError(
            f"{where}: {n:,} starts x {steps + 1:,} steps is more than the "
            f"{MAX_RECORDED_POINTS:,} positions recorded in memory; use fewer starts or "
            "steps, or basins: for dense grids of starts"
        )


def count_starts(starts: Starts) -> int:
    if starts.points:
        return len(starts.points)
    if starts.grid:
        return math.prod(starts.grid)
    return starts.random


def _optimizer(
    opt: OptimizerConfig, params: list[torch.Tensor], ascent: bool, fused: bool = False
) -> torch.optim.Optimizer:
    """The torch.optim optimiser; ``fused`` asks for torch's one-kernel implementation where it
    has one for the parameters' device (Adam, AdamW, SGD, Adagrad): faster, equal to the
    default up to rounding."""
    cls = getattr(torch.optim, opt.torch_class)
    if fused and params and has_fused_kernel(opt.torch_class, params[0].device):
        return cls(params, maximize=ascent, fused=True, **opt.torch_kwargs)
    return cls(params, maximize=ascent, **opt.torch_kwargs)


_FUSED_OPS = {"Adam": "_fused_adam_", "AdamW": "_fused_adamw_", "SGD": "_fused_sgd_", "Adagrad": "_fused_adagrad_"}


def has_fused_kernel(torch_class: str, device: torch.device) -> bool:
    """Whether this torch build has a fused kernel of ``torch_class`` for ``device``. torch
    accepts ``fused=True`` when the optimiser is made and fails at its first ``step()`` where
    there is none (Adagrad on CUDA, any optimiser on a device without one), after all the
    work before it; the dispatcher knows beforehand."""
    op = _FUSED_OPS.get(torch_class)
    if op is None:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS", "xpu": "XPU"}.get(device.type)
    if key is None:
        return False
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", key))
    except RuntimeError:  # the operator is not in this build
        return False


def _frozen_is_final(opt: OptimizerConfig) -> bool:
    """Whether a row of ``opt`` that did not move for a whole stall window never will: Adagrad's
    steps only shrink, SGD's settle once its velocity has (momentum**window below 1e-3)."""
    if opt.torch_class == "Adagrad":
        return True
    return opt.torch_class == "SGD" and float(opt.torch_kwargs.get("momentum", 0.0)) ** STALL_WINDOW < 1e-3


class _StallWatch:
    """The state of the stall rule (:data:`STALL_WINDOW`) for N rows: each row's best objective
    (f, or -f for ascent) and squared gradient norm so far, the same at the last check, and the
    position at the last check."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device, frozen_is_final: bool) -> None:
        self.frozen_is_final = frozen_is_final
        inf = float("inf")
        self.best_loss = torch.full((n,), inf, dtype=dtype, device=device)
        self.best_g2 = torch.full((n,), inf, dtype=dtype, device=device)
        self.ref_loss = self.best_loss.clone()
        self.ref_g2 = self.best_g2.clone()
        self.ref_pos: list[torch.Tensor] | None = None

    def update(self, loss: torch.Tensor, g2: torch.Tensor) -> None:
        torch.minimum(self.best_loss, loss, out=self.best_loss)
        torch.minimum(self.best_g2, g2, out=self.best_g2)

    def check(
        self,
        ff: FieldFunction,
        cols: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        g2: torch.Tensor,
        active: torch.Tensor,
    ) -> torch.Tensor:
        """The rows that are stalled now (bool, N); then this check becomes the reference."""
        stalled = torch.zeros_like(active)
        # the cheap test first: rows whose gradient norm halved in the window are progressing
        maybe = active & ~(self.best_g2 < 0.25 * self.ref_g2)
        if self.ref_pos is not None and bool(maybe.any()):
            idx = maybe.nonzero().squeeze(1)
            x = [c.detach()[idx] for c in cols]
            g_noise, f_noise = _noise(ff, x, [g[idx] for g in grads])
            fell = (self.ref_loss[idx] - self.best_loss[idx]) > STALL_NOISE * f_noise
            floor = g2[idx].sqrt() <= STALL_NOISE * g_noise
            frozen = torch.full_like(fell, self.frozen_is_final)
            for xk, rk in zip(x, self.ref_pos):
                frozen &= xk == rk[idx]
            stalled[idx] = ~fell & (floor | frozen)
        self.ref_loss.copy_(self.best_loss)
        self.ref_g2.copy_(self.best_g2)
        self.ref_pos = [c.detach().clone() for c in cols]
        return stalled


def _noise(
    ff: FieldFunction, x: Sequence[torch.Tensor], g: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """How much the gradient (norm of the change) and the value change when one coordinate of
    each point moves by one unit in the last place, up or down (the largest of the 2D moves):
    the resolution of f and grad f in the points' dtype, rounding in the function's own
    arithmetic included. ``x``, ``g``: (M,) tensors, one per axis."""
    with torch.enable_grad():
        f0 = ff.scalar(*x).detach()
        g_noise = torch.zeros_like(f0)
        f_noise = torch.zeros_like(f0)
        for k in range(len(x)):
            for towards in (float("inf"), float("-inf")):
                moved = [v.clone() for v in x]
                moved[k] = torch.nextafter(moved[k], torch.full_like(moved[k], towards))
                v, gk = value_and_grad(ff.scalar, moved)
                with torch.no_grad():
                    d2 = torch.zeros_like(f0)
                    for a, b in zip(gk, g):
                        d = (a if a is not None else torch.zeros_like(b)) - b
                        d2 += d * d
                    torch.maximum(g_noise, d2.sqrt(), out=g_noise)
                    torch.maximum(f_noise, (v - f0).abs(), out=f_noise)
    return g_noise, f_noise


class _Paths:
    """What N descending paths have done so far: which still run, why and when each stopped,
    and (``record``) every position, value and gradient norm, on the starts' device."""

    def __init__(
        self, n: int, d: int, steps: int, dtype: torch.dtype, dev: torch.device, record: bool, ask: bool = True
    ) -> None:
        # ``ask``: asking the device costs nothing (the CPU), so the work for stopping rows is
        # done only at steps where some stop; else it is done every step without asking
        self.steps, self.record, self.ask = steps, record, ask
        self.stopped_any = False
        self.active = torch.ones(n, dtype=torch.bool, device=dev)
        self.reason = torch.full((n,), REASONS.index("max_steps"), dtype=torch.uint8, device=dev)
        self.stop_step = torch.full((n,), steps, dtype=torch.int64, device=dev)
        self.held: list[torch.Tensor] | None = None  # where stopped rows are held (set by start)
        if record:  # every row every step; rows are held after stopping, NaN is put in afterwards
            self.positions = torch.empty((n, steps + 1, d), dtype=dtype, device=dev)
            self.values = torch.empty((n, steps + 1), dtype=dtype, device=dev)
            self.gnorms = torch.empty((n, steps + 1), dtype=dtype, device=dev)

    def observe(
        self,
        s: int,
        cols: Sequence[torch.Tensor],
        vd: torch.Tensor,
        gn2: torch.Tensor,
        bnds: Sequence[tuple[float, float]],
        tol: float,
    ) -> None:
        """Record step ``s`` and stop the rows that converged, left the box or diverged."""
        inside = (cols[0] >= bnds[0][0]) & (cols[0] <= bnds[0][1])
        for c, (lo_k, hi_k) in zip(cols[1:], bnds[1:]):
            inside &= (c >= lo_k) & (c <= hi_k)
        if self.record:
            for k, c in enumerate(cols):
                self.positions[:, s, k] = c
            self.values[:, s] = vd
            self.gnorms[:, s] = gn2.sqrt()
        # NaN fails every comparison, so it is caught here too. Unless asking is free, nothing
        # here waits for the device: which rows stop, and why, is kept on it
        stop_now = self.active & ~(inside & (gn2 >= tol * tol) & torch.isfinite(vd))
        if self.ask and not bool(stop_now.any()):
            return
        bad = ~(torch.isfinite(vd) & torch.isfinite(gn2))
        code = torch.where(
            bad,
            REASONS.index("diverged"),
            torch.where(~inside, REASONS.index("left_domain"), REASONS.index("converged")),
        )
        self.stop(s, stop_now, code.to(torch.uint8), cols)

    def start(self, cols: Sequence[torch.Tensor]) -> None:
        self.held = [c.detach().clone() for c in cols]

    def stop(self, s: int, rows: torch.Tensor, code: torch.Tensor | int, cols: Sequence[torch.Tensor]) -> None:
        """Stop ``rows`` (bool, N) at step ``s`` with reason ``code`` (one, or one per row)."""
        code_t = torch.as_tensor(code, dtype=torch.uint8, device=rows.device)
        if code_t.dim() == 0:
            self.reason.masked_fill_(rows, code_t)
        else:
            torch.where(rows, code_t, self.reason, out=self.reason)
        self.stop_step.masked_fill_(rows, s)
        self.active &= ~rows
        self.stopped_any = True
        assert self.held is not None
        for h, c in zip(self.held, cols):  # stopped rows stay where they are now
            torch.where(rows, c.detach(), h, out=h)

    def hold(self, cols: Sequence[torch.Tensor]) -> None:
        """After an optimiser step: put stopped rows back where they stopped."""
        if self.ask and not self.stopped_any:
            return
        assert self.held is not None
        with torch.no_grad():
            for c, h in zip(cols, self.held):
                torch.where(self.active, c, h, out=c)

    def result(self, cols: Sequence[torch.Tensor], final_value: torch.Tensor) -> Descent:
        rec = self.record
        if rec:
            after = torch.arange(self.steps + 1, device=final_value.device)[None, :] > self.stop_step[:, None]
            for t in (self.positions, self.values, self.gnorms):
                t[after] = float("nan")
        final = torch.stack([c.detach() for c in cols], dim=1)
        return Descent(
            final.cpu().numpy(),
            final_value.cpu().numpy(),
            self.stop_step.cpu().numpy(),
            self.reason.cpu().numpy(),
            self.positions.cpu().numpy() if rec else None,
            self.values.cpu().numpy() if rec else None,
            self.gnorms.cpu().numpy() if rec else None,
        )


def _gradients(
    ff: FieldFunction, cols: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """f at the rows, its gradient left in each parameter's ``.grad`` for the optimiser (the
    optimiser's own protocol: ``backward`` of the sum), and the squared gradient norm."""
    v = ff.scalar(*cols)
    if v.requires_grad:  # a constant function has no gradient to take
        v.sum().backward()
    with torch.no_grad():
        grads = [c.grad if c.grad is not None else torch.zeros_like(c) for c in cols]
        gn2 = grads[0] * grads[0]
        for g in grads[1:]:
            gn2 = gn2 + g * g
    return grads, gn2, v.detach()


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
    sync_every: int | None = None,
) -> Descent:
    """Run ``opt`` from every row of ``starts`` (``(N, D)``) for at most ``steps`` steps.

    ``record``: keep every position (paths) or only the end (basins). ``fused``: use torch's
    fused optimiser where there is one (not bitwise equal to a default torch.optim loop).
    ``sync_every``: steps between asking the device whether any path still runs (default: 1
    on the CPU, where asking costs nothing, :data:`SYNC_EVERY` elsewhere); the result is the same.
    """
    n, d = starts.shape
    if record:
        check_recorded(n, steps)
    # one contiguous parameter per axis: elementwise maths, fast gradients and checks
    cols = [starts[:, k].detach().clone().contiguous().requires_grad_(True) for k in range(d)]
    optimizer = _optimizer(opt, cols, ascent, fused)
    bnds = [(float(b[0]), float(b[1])) for b in bounds]
    # whether any path still runs is asked of the device every `every` steps: on CUDA each ask
    # waits for the queued steps; rows that stopped meanwhile are held where they stopped
    every = sync_every or (1 if starts.device.type == "cpu" else SYNC_EVERY)
    paths = _Paths(n, d, steps, starts.dtype, starts.device, record, ask=every == 1)
    paths.start(cols)
    watch = _StallWatch(n, starts.dtype, starts.device, frozen_is_final=_frozen_is_final(opt))
    for s in range(steps + 1):
        optimizer.zero_grad(set_to_none=False)
        grads, gn2, vd = _gradients(ff, cols)
        with torch.no_grad():
            paths.observe(s, cols, vd, gn2, bnds, tol)
            watch.update(-vd if ascent else vd, gn2)
        if s and s % STALL_WINDOW == 0 and s < steps and bool(paths.active.any()):
            stalled = watch.check(ff, cols, grads, gn2, paths.active)
            if bool(stalled.any()):
                paths.stop(s, stalled, REASONS.index("stalled"), cols)
        if on_step is not None:
            on_step(s)
        if s == steps or (s % every == 0 and not bool(paths.active.any())):
            break
        optimizer.step()
        paths.hold(cols)
    return paths.result(cols, vd)  # stopped rows were held, so vd is f at every path's final position
