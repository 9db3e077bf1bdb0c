"""The value and exact derivatives of one tile.

For a scalar field f the kernel returns ``value`` and ``grad_<axis>`` (one reverse-mode pass over
``f(...).sum()``: points are independent, so the gradient of the sum is every point's own
gradient). For a vector field v it returns the components and the Jacobian rows
``d v_i / d axis`` (one pass per component), from which divergence and curl are formed. The
passes are :mod:`gradbatch.derivatives`' (eager autograd; torch.func when compiled). Everything
stays on the tile's device.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import torch

from ..config import CompileMode, Output
from ..derivatives import jacobian, jacobian_functional, zeros_for_unused
from ..errors import EngineError, FunctionError
from ..functions.field import FieldFunction
from .coords import expand_axes

__all__ = [
    "Kernel",
    "build_kernel",
    "value_and_jacobian",
    "warm_up",
    "field_names",
    "CheckStats",
    "TileSummary",
    "tile_summary",
    "needs_derivatives",
    "finite_difference_check",
    "check_steps",
    "COMPILE_MIN_POINTS",
]

COMPILE_MIN_POINTS = 300_000_000
"""``compile: auto`` compiles jobs with at least this many points in the process when no kernel
of theirs is in the cache (:mod:`gradbatch.engine.aot`). Measured again on a 2-core CPU with
torch's own caches warm: the 8192² ripple job took 10.4 s compiled against 3.6 s eager, so
compiling costs about 7 s; a compiled 512² tile saves about 5 ms (19 ns a point), so it pays back
after roughly 3.6e8 points."""

Coords = tuple[torch.Tensor, ...]
TileFn = Callable[..., dict[str, torch.Tensor]]


def field_names(ff: FieldFunction, axes: Sequence[str], outputs: Sequence[Output]) -> list[str]:
    """Names of the datasets a job writes, in order."""
    names: list[str] = []
    for o in outputs:
        if o is Output.VALUE:
            names.append("value")
        elif o is Output.GRADIENT:
            names += [f"grad_{a}" for a in axes]
        elif o is Output.COMPONENTS:
            names += [f"v_{a}" for a in axes]
        elif o is Output.DIVERGENCE:
            names.append("divergence")
        elif o is Output.CURL:
            names += ["curl"] if len(axes) == 2 else [f"curl_{a}" for a in axes]
        elif o is Output.MAGNITUDE:
            names.append("magnitude")
    return names


def _jacobian(
    ff: FieldFunction, coords: Coords, functional: bool = False
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Values (one per component) and Jacobian rows ``jac[i][j] = d value_i / d coord_j``.

    ``functional`` uses torch.func (what torch.compile traces); otherwise plain autograd, which
    is as fast eagerly and has no first-call cost (torch.func's first call takes ~2 s).
    A component without a graph has zero derivatives, unless it is user code that lost its
    graph: then the stored gradient would be a silent zero, and it is an error.
    """
    if functional:
        return jacobian_functional(ff.fn, coords, ff.kind == "vector")
    values, rows = jacobian(ff.fn, coords, ff.kind == "vector")
    out: list[list[torch.Tensor]] = []
    for row in rows:
        if row is None:  # constant in every coordinate
            if ff.user_code:  # or computed where autograd cannot see it
                raise FunctionError(
                    f"callable {ff.text!r} returned a tensor without an autograd graph (computed "
                    "under torch.no_grad(), .detach(), or through numpy?), so its gradient would "
                    "be stored as zero; compute it with torch operations on the inputs (a constant "
                    "field: return e.g. 0 * x + c)"
                )
            out.append([torch.zeros_like(c) for c in coords])
            continue
        if ff.user_code and all(g is None for g in row):
            raise FunctionError(
                f"callable {ff.text!r} returned a tensor whose autograd graph does not reach its "
                "inputs (converted through a list or numpy, or new tensors built from their "
                "values?), so its gradient would be stored as zero; compute it with torch "
                "operations on the inputs"
            )
        out.append(zeros_for_unused(row, coords))
    return values, out


def value_and_jacobian(ff: FieldFunction, coords: Coords) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Values and exact Jacobian of ``ff`` at arbitrary points (eager autograd).

    ``coords``: one tensor per axis, all of one shape ``S``. Returns ``values`` (one tensor of
    shape ``S`` per component: one for a scalar field) and ``jac[i][j] = d values[i] / d axis j``.
    For a scalar field ``jac[0]`` is the gradient.
    """
    return _jacobian(ff, coords)


def needs_derivatives(ff: FieldFunction, outputs: Sequence[Output]) -> bool:
    """Whether any output is made of derivatives (else no autograd graph is built)."""
    return any(
        o in (Output.GRADIENT, Output.DIVERGENCE, Output.CURL, Output.CHECK)
        or (o is Output.MAGNITUDE and ff.kind == "scalar")
        for o in outputs
    )


def _assemble(
    ff: FieldFunction, axes: Sequence[str], outputs: Sequence[Output], coords: Coords, functional: bool = False
) -> dict[str, torch.Tensor]:
    if needs_derivatives(ff, outputs):
        values, jac = _jacobian(ff, coords, functional)
    else:  # values only: no autograd graph at all (a network landscape's value costs a third)
        with torch.no_grad():
            out_fn = ff.fn(*coords)
        values, jac = ([cast(torch.Tensor, out_fn)] if ff.kind == "scalar" else list(cast(tuple, out_fn))), []
    if jac:
        jac = _undefined_to_nan(values, jac, check_first=not functional and values[0].device.type == "cpu")
    out: dict[str, torch.Tensor] = {}
    n = len(axes)
    for o in outputs:
        if o is Output.VALUE:
            out["value"] = values[0]
        elif o is Output.GRADIENT:
            for a, g in zip(axes, jac[0]):
                out[f"grad_{a}"] = g
        elif o is Output.COMPONENTS:
            for a, v in zip(axes, values):
                out[f"v_{a}"] = v
        elif o is Output.DIVERGENCE:
            div = jac[0][0]
            for i in range(1, n):
                div = div + jac[i][i]
            out["divergence"] = div
        elif o is Output.CURL:
            if n == 2:
                out["curl"] = jac[1][0] - jac[0][1]
            else:  # (dvz/dy - dvy/dz, dvx/dz - dvz/dx, dvy/dx - dvx/dy)
                out[f"curl_{axes[0]}"] = jac[2][1] - jac[1][2]
                out[f"curl_{axes[1]}"] = jac[0][2] - jac[2][0]
                out[f"curl_{axes[2]}"] = jac[1][0] - jac[0][1]
        elif o is Output.MAGNITUDE:
            parts = jac[0] if ff.kind == "scalar" else values
            acc = parts[0] * parts[0]
            for p in parts[1:]:
                acc = acc + p * p
            out["magnitude"] = torch.sqrt(acc)
    return out


def _undefined_to_nan(
    values: Sequence[torch.Tensor], jac: list[list[torch.Tensor]], check_first: bool
) -> list[list[torch.Tensor]]:
    """Derivatives are NaN where the value is not finite: outside the function's domain or at a
    pole the derivative is undefined, not autograd's formal value (log(x) at x < 0 has value NaN
    but d/dx = 1/x). ``check_first``: one cheap sum decides whether any point needs it (on the
    CPU; on CUDA or when compiled the masking runs unconditionally, without a host sync)."""
    out = []
    for v, row in zip(values, jac):
        if check_first and bool(torch.isfinite(v.sum())):
            out.append(row)
            continue
        bad = ~torch.isfinite(v)
        out.append([torch.where(bad, torch.full_like(g, float("nan")), g) for g in row])
    return out


class TileSummary(NamedTuple):
    """What a picture needs to know of a tile's fields, on the tile's device (row i: field i).

    ``nonfinite`` (fields, 3) int64: NaN, +inf, -inf points; ``ranges`` (fields, 3) float64: the
    finite minimum, maximum and smallest positive value (NaN where there is none);
    ``nonpositive`` (fields,) int64: finite values <= 0. Summed or reduced over the tiles they
    give the whole field's exact statistics, whatever the pyramid averages away."""

    nonfinite: torch.Tensor
    ranges: torch.Tensor
    nonpositive: torch.Tensor


def tile_summary(fields: Sequence[torch.Tensor]) -> TileSummary:
    """The :class:`TileSummary` of a tile's fields (each non-empty), on their device. On CUDA
    nothing waits for the host. On the CPU numpy does it, on the tensors' memory: its boolean
    masks and reductions are several times faster than torch's there (measured: a 1024^2
    float32 field of both signs takes about 6 ms, against 35 ms with torch.where)."""
    if fields and fields[0].device.type == "cpu":
        rows = [_summary_cpu(v.numpy()) for v in fields]
        return TileSummary(
            torch.tensor([r[0] for r in rows], dtype=torch.int64),
            torch.tensor([r[1] for r in rows], dtype=torch.float64),
            torch.tensor([r[2] for r in rows], dtype=torch.int64),
        )
    return _summary_torch(fields)


def _summary_torch(fields: Sequence[torch.Tensor]) -> TileSummary:
    """:func:`tile_summary` in torch, on any device, without a host sync: every field at once
    (stacked), a dozen kernels a tile whatever the number of fields. Fields of several shapes
    or dtypes (not a tile's) are summarised one by one."""
    if len({(tuple(t.shape), t.dtype) for t in fields}) > 1:
        parts = [_summary_torch([t]) for t in fields]
        return TileSummary(*(torch.cat(p) for p in zip(*parts)))
    v = torch.stack(list(fields)).reshape(1, len(fields), -1)
    return TileSummary(*(t[0] for t in _summary_rows(v, None)))


def block_summary(fields: Sequence[torch.Tensor], valid: tuple[int, ...], tile: tuple[int, ...]) -> TileSummary:
    """:func:`tile_summary` of every tile of a block of tiles at once, in the same dozen kernels.

    ``fields``: tensors of the block's padded shape, a whole number of ``tile`` along each
    dimension; ``valid``: the part of it inside the grid. Each summary tensor gets a leading
    dimension, one row per tile of the block in row-major order (tiles wholly outside ``valid``
    included, all zero counts and NaN ranges)."""
    v = torch.stack(list(fields))  # (F, *padded)
    padded = tuple(v.shape[1:])
    counts = [n // t for n, t in zip(padded, tile)]
    v = _tiles_first(v, counts, tile)
    mask = None
    if tuple(valid) != padded:
        m = torch.zeros(padded, dtype=torch.bool, device=v.device)
        m[tuple(slice(0, n) for n in valid)] = True
        mask = _tiles_first(m.unsqueeze(0), counts, tile)
    return _summary_rows(v, mask)


def _tiles_first(v: torch.Tensor, counts: Sequence[int], tile: Sequence[int]) -> torch.Tensor:
    """``(F, *padded)`` -> ``(tiles, F, points a tile)``, tiles in row-major order."""
    nd = len(tile)
    split = [v.shape[0]]
    for n, t in zip(counts, tile):
        split += [n, t]
    order = [1 + 2 * i for i in range(nd)] + [0] + [2 + 2 * i for i in range(nd)]
    return v.reshape(split).permute(order).reshape(math.prod(counts), v.shape[0], -1)


def _summary_rows(v: torch.Tensor, mask: torch.Tensor | None) -> TileSummary:
    """The summary of ``v`` (tiles, fields, points), one row per tile; ``mask`` (tiles, 1,
    points): the points that count (None: all)."""
    nan, pinf, ninf, finite = torch.isnan(v), torch.isposinf(v), torch.isneginf(v), torch.isfinite(v)
    if mask is not None:
        nan, pinf, ninf, finite = nan & mask, pinf & mask, ninf & mask, finite & mask
    counts = torch.stack([nan.sum(2), pinf.sum(2), ninf.sum(2)], 2)
    inf = torch.full((), float("inf"), dtype=v.dtype, device=v.device)
    ranges = torch.stack(
        [
            torch.where(finite, v, inf).amin(2),
            torch.where(finite, v, -inf).amax(2),
            torch.where(finite & (v > 0), v, inf).amin(2),
        ],
        2,
    ).to(torch.float64)
    ranges = torch.where(torch.isinf(ranges), torch.full_like(ranges, float("nan")), ranges)  # inf: no such value
    nonpositive = (finite & (v <= 0)).sum(2)
    return TileSummary(counts.to(torch.int64), ranges, nonpositive.to(torch.int64))


def _summary_cpu(a: np.ndarray) -> tuple[list[int], list[float], int]:
    """NaN/+inf/-inf counts, [min, max, min positive] of the finite values (NaN: none) and
    their count <= 0, of one host array. A finite sum (one cheap pass) skips the counting, and
    a field of one sign needs no mask at all."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or a sum past the dtype's range
        total = a.sum()
    if np.isfinite(total):
        counts, finite = [0, 0, 0], a
    else:
        counts = [int(np.count_nonzero(np.isnan(a))), int(np.count_nonzero(a == np.inf))]
        counts.append(int(np.count_nonzero(a == -np.inf)))
        finite = a[np.isfinite(a)]
    if finite.size == 0:
        return counts, [math.nan] * 3, 0
    lo, hi = float(finite.min()), float(finite.max())
    if lo > 0:
        return counts, [lo, hi, lo], 0
    if hi <= 0:
        return counts, [lo, hi, math.nan], int(finite.size)
    positive = finite[finite > 0]
    return counts, [lo, hi, float(positive.min())], int(finite.size - positive.size)


@dataclass
class Kernel:
    """Callable ``kernel(axes1d) -> {field name: tensor}`` for a tile; maybe compiled.

    ``axes1d``: the tile's coordinates along each axis (1D, grid order, see
    :func:`~gradbatch.engine.coords.tile_axes`); fields come back in the tile's array shape. The
    coordinate grids are built inside the kernel, so a compiled kernel fuses that work too.
    """

    fn: TileFn
    eager: TileFn
    compiled: bool
    cached: str = ""  # a kernel from the compiled-kernel cache: its folder (see engine.aot)

    def __call__(self, axes1d: Coords) -> dict[str, torch.Tensor]:
        return self.fn(*axes1d)


def build_kernel(
    ff: FieldFunction,
    axes: Sequence[str],
    outputs: Sequence[Output],
    compile_mode: CompileMode,
    points: int,
) -> Kernel:
    """The tile function for ``ff``. ``points`` (the job's size) decides ``compile: auto``."""
    outputs = tuple(o for o in outputs if o is not Output.CHECK)

    def eager(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        return _assemble(ff, axes, outputs, expand_axes(axes1d))

    def functional(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        return _assemble(ff, axes, outputs, expand_axes(axes1d), functional=True)

    want = compile_mode is CompileMode.ON or (compile_mode is CompileMode.AUTO and points >= COMPILE_MIN_POINTS)
    if not want:
        return Kernel(eager, eager, False)
    compiled = torch.compile(functional, fullgraph=True, dynamic=False)
    return Kernel(compiled, eager, True)


def warm_up(kernel: Kernel, axes1d: Coords, compile_mode: CompileMode) -> Kernel:
    """Run the kernel once; if compiling fails, fall back to eager (``auto``) or raise (``on``)."""
    if not kernel.compiled:
        return kernel
    try:
        kernel(axes1d)
        return kernel
    except torch.cuda.OutOfMemoryError:
        # not a compile failure: the tile is too large for the device. The caller's split
        # (engine.runner._compute) runs the tile in eager slabs
        return kernel
    except Exception as exc:  # compilation is an optimisation: any failure of it is reported
        if compile_mode is CompileMode.ON:
            raise EngineError(
                f"torch.compile failed ({type(exc).__name__}: {exc}); set compile: off to run eagerly"
            ) from exc
        warnings.warn(f"torch.compile failed ({type(exc).__name__}); running eagerly", stacklevel=2)
        return Kernel(kernel.eager, kernel.eager, False)


@dataclass
class CheckStats:
    """Largest disagreement between autograd and float64 central differences so far."""

    max_abs_error: float = 0.0
    max_scaled_error: float = 0.0  # |autograd - fd| / max(1, |fd|)
    where: tuple[float, ...] = ()
    nan_points: int = 0
    steps: tuple[float, ...] = ()

    def row(self, ndim: int) -> list[float]:
        """This tile's check as stored in ``_tiles/check``: max_abs, max_scaled, nan_points, where."""
        where = list(self.where) if len(self.where) == ndim else [float("nan")] * ndim
        return [self.max_abs_error, self.max_scaled_error, float(self.nan_points), *where]

    @classmethod
    def from_rows(cls, rows: Any, steps: Sequence[float]) -> CheckStats:
        """The check over every tile whose row was written (rows of NaN: tiles not checked)."""
        rows = np.asarray(rows, dtype=np.float64)
        rows = rows[~np.isnan(rows[:, 0])] if rows.size else rows
        if not len(rows):
            return cls(steps=tuple(steps))
        worst = int(np.argmax(rows[:, 0]))
        return cls(
            float(rows[worst, 0]),
            float(rows[:, 1].max()),
            tuple(float(v) for v in rows[worst, 3:]),
            int(rows[:, 2].sum()),
            tuple(steps),
        )

    def merge(self, other: CheckStats) -> None:
        if other.max_abs_error > self.max_abs_error or not self.where:
            self.max_abs_error = other.max_abs_error
            self.where = other.where
        self.max_scaled_error = max(self.max_scaled_error, other.max_scaled_error)
        self.nan_points += other.nan_points
        self.steps = other.steps


def finite_difference_check(
    ff: FieldFunction, coords: Coords, valid: tuple[int, ...], steps: Sequence[float]
) -> CheckStats:
    """Compare autograd derivatives with central differences in float64 (seed 003's check,
    vectorised over the tile). ``steps[j]`` is the difference step along axis j."""
    c64 = tuple(c.to(torch.float64) for c in coords)
    crop = tuple(slice(0, n) for n in valid)
    values, jac = _jacobian(ff, c64)
    worst_abs = torch.zeros((), dtype=torch.float64, device=c64[0].device)
    worst_scaled = worst_abs.clone()
    worst_at: tuple[float, ...] = ()
    nan_points = 0
    with torch.no_grad():
        for j, h in enumerate(steps):
            plus = list(c64)
            minus = list(c64)
            plus[j] = c64[j] + h
            minus[j] = c64[j] - h
            fp = ff.fn(*plus)
            fm = ff.fn(*minus)
            fp = (fp,) if isinstance(fp, torch.Tensor) else tuple(fp)
            fm = (fm,) if isinstance(fm, torch.Tensor) else tuple(fm)
            for i in range(len(values)):
                fd = ((fp[i] - fm[i]) / (2 * h))[crop]
                ad = jac[i][j].detach()[crop]
                err = (ad - fd).abs()
                bad = torch.isnan(err)
                nan_points += int(bad.sum())
                err = torch.where(bad, torch.zeros_like(err), err)
                scaled = err / torch.clamp(fd.abs(), min=1.0)
                m = err.max()
                if m > worst_abs or not worst_at:
                    worst_abs = m
                    flat = int(err.argmax())
                    idx = torch.unravel_index(torch.tensor(flat), err.shape)
                    worst_at = tuple(float(c[crop][tuple(int(t) for t in idx)]) for c in c64)
                worst_scaled = torch.maximum(worst_scaled, torch.where(torch.isnan(scaled), 0, scaled).max())
    return CheckStats(float(worst_abs), float(worst_scaled), worst_at, nan_points, tuple(steps))


def check_steps(axes_values: Sequence[Any]) -> tuple[float, ...]:
    """A central-difference step per axis: eps64^(1/3) times the axis' coordinate scale."""
    eps = torch.finfo(torch.float64).eps ** (1.0 / 3.0)
    out = []
    for v in axes_values:
        scale = max(1.0, max(abs(float(v[0])), abs(float(v[-1]))))
        out.append(eps * scale)
    return tuple(out)
