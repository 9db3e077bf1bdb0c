"""Value and exact derivatives of a batch of independent points: the one autograd helper.

Every caller (the tile kernel, descent paths' noise floor, basins' Newton steps, streamlines,
a loss landscape's chunks, the callable probe) evaluates an elementwise function ``fn(*coords)``
of one tensor per axis. Points are independent, so the gradient of ``fn(...).sum()`` is every
point's own gradient: one reverse pass for the whole batch.

Measured (DEVELOPERS.md): eager ``torch.autograd.grad`` of ``f(...).sum()`` is as fast as
``torch.func`` and has no first-call cost (torch.func's first call takes ~2 s); passing
``grad_outputs`` instead of summing imports sympy (0.5-0.9 s). So everything here is eager
autograd of a sum, except :func:`jacobian_functional`, which ``torch.compile`` traces.

torch only: no other gradbatch module is imported here (errors aside), so every stage can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch.func import grad_and_value, vjp

__all__ = [
    "leaves",
    "value_and_grad",
    "jacobian",
    "jacobian_functional",
    "reaches",
    "value_grad_hessian",
    "zeros_for_unused",
]

Coords = Sequence[torch.Tensor]
ScalarFn = Callable[..., torch.Tensor]
Grads = list["torch.Tensor | None"]


def leaves(coords: Coords, clone: bool = False) -> list[torch.Tensor]:
    """Fresh autograd leaves with the values of ``coords``. ``clone`` copies them (contiguous,
    when ``coords`` are strided views such as the columns of an ``(M, D)`` tensor)."""
    if clone:
        return [c.detach().clone().requires_grad_(True) for c in coords]
    return [c.detach().requires_grad_(True) for c in coords]


def zeros_for_unused(grads: Sequence[torch.Tensor | None], coords: Coords) -> list[torch.Tensor]:
    """Gradients with zeros where the function does not depend on a coordinate (None)."""
    return [torch.zeros_like(c) if g is None else g for c, g in zip(coords, grads)]


def value_and_grad(fn: ScalarFn, coords: Coords, clone: bool = False) -> tuple[torch.Tensor, Grads]:
    """``fn``'s value at the points (detached) and its gradient, one tensor per axis.

    A gradient is None where ``fn`` does not depend on that coordinate, and all are None when
    its value carries no autograd graph at all (a constant function).
    """
    with torch.enable_grad():
        xs = leaves(coords, clone)
        v = fn(*xs)
        if not v.requires_grad:
            return v.detach(), [None] * len(xs)
        grads = torch.autograd.grad(v.sum(), xs, allow_unused=True)
    return v.detach(), list(grads)


def jacobian(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]], coords: Coords, vector: bool
) -> tuple[list[torch.Tensor], list[Grads | None]]:
    """Values (one per component: one for a scalar field) and Jacobian rows
    ``rows[i][j] = d values[i] / d coords[j]``, eagerly.

    ``rows[i]`` is None when component i carries no autograd graph (constant, or computed where
    autograd cannot see it); an entry is None where the component does not depend on that axis.
    Callers decide what that means (zeros, or an error naming user code).
    """
    with torch.enable_grad():
        xs = leaves(coords)
        out = fn(*xs)
        values = list(cast(tuple, out)) if vector else [cast(torch.Tensor, out)]
        rows: list[Grads | None] = []
        for i, v in enumerate(values):
            if not v.requires_grad:
                rows.append(None)
                continue
            rows.append(list(torch.autograd.grad(v.sum(), xs, retain_graph=i < len(values) - 1, allow_unused=True)))
    return [v.detach() for v in values], rows


def jacobian_functional(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]], coords: Coords, vector: bool
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """:func:`jacobian` through ``torch.func`` (what ``torch.compile`` traces): one
    ``grad_and_value`` pass for a scalar field, one ``vjp`` pullback per component of a vector."""
    n = len(coords)
    if not vector:

        def summed(*c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            v = cast(torch.Tensor, fn(*c))
            return v.sum(), v

        grads, (_, value) = grad_and_value(summed, argnums=tuple(range(n)), has_aux=True)(*coords)
        return [value], [list(grads)]
    result = vjp(lambda *c: tuple(cast(tuple, fn(*c))), *coords)
    values, pullback = result[0], result[1]
    rows = []
    for i in range(len(values)):
        cot = tuple(torch.ones_like(v) if j == i else torch.zeros_like(v) for j, v in enumerate(values))
        rows.append(list(pullback(cot)))
    return list(values), rows


def reaches(outputs: Sequence[torch.Tensor], xs: Sequence[torch.Tensor]) -> bool:
    """Whether any of ``outputs`` has an autograd graph back to any of the leaves ``xs``."""
    tracked = [p for p in outputs if p.requires_grad]
    if not tracked:
        return False
    with torch.enable_grad():
        total = torch.stack([p.sum() for p in tracked]).sum()
        grads = torch.autograd.grad(total, list(xs), allow_unused=True)
    return any(g is not None for g in grads)


def value_grad_hessian(
    fn: ScalarFn, x: torch.Tensor, hessian: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """f ``(M,)``, grad f ``(M, D)`` and, if asked, the Hessian ``(M, D, D)`` at the rows of ``x``.

    The Hessian is exact (double backward of the batch: D backward passes, each row's own
    second derivatives since f is elementwise). Where autograd has first derivatives only (a
    loss landscape's chunks hand back stored gradients; a once-differentiable function), it is
    central differences of the autograd gradient instead.
    """
    with torch.enable_grad():
        cols = leaves(x.unbind(1), clone=True)
        v = fn(*cols)
        if not v.requires_grad:  # a constant function
            zero = torch.zeros_like(x)
            return (
                v.detach(),
                zero,
                (torch.zeros(*x.shape, x.shape[1], dtype=x.dtype, device=x.device) if hessian else None),
            )
        grads = torch.autograd.grad(v.sum(), cols, create_graph=hessian, allow_unused=True)
        g = zeros_for_unused(grads, cols)
        if not hessian:
            return v.detach(), torch.stack([gk.detach() for gk in g], 1), None
        h = _double_backward(g, cols)
    if h is None:
        h = _fd_hessian(fn, x)
    return v.detach(), torch.stack([gk.detach() for gk in g], 1), h


def _double_backward(g: Sequence[torch.Tensor], cols: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """Rows of the Hessian by differentiating each gradient component; None where autograd cannot
    (no component depends on the point through autograd, or double backward is refused)."""
    if not any(gk.requires_grad for gk in g):
        return None  # first derivatives only (or a linear function: differences give 0 too)
    rows = []
    try:
        for gk in g:
            if not gk.requires_grad:
                rows.append(torch.zeros(len(cols[0]), len(cols), dtype=gk.dtype, device=gk.device))
                continue
            hk = torch.autograd.grad(gk.sum(), cols, retain_graph=True, allow_unused=True)
            rows.append(
                torch.stack([r.detach() if r is not None else torch.zeros_like(c) for r, c in zip(hk, cols)], 1)
            )
    except (RuntimeError, NotImplementedError):
        return None
    return torch.stack(rows, 1)


def _fd_hessian(fn: ScalarFn, x: torch.Tensor) -> torch.Tensor:
    """Central differences of the autograd gradient, ``(M, D, D)``: the Hessian where autograd
    has only first derivatives."""
    d = x.shape[1]
    cols = []
    for i in range(d):
        h = 1e-5 * x[:, i].abs().clamp_min(1.0)
        e = torch.zeros_like(x)
        e[:, i] = h
        up = value_grad_hessian(fn, x + e, hessian=False)[1]
        down = value_grad_hessian(fn, x - e, hessian=False)[1]
        cols.append((up - down) / (2 * h[:, None]))
    hess = torch.stack(cols, 2)
    return (hess + hess.transpose(1, 2)) / 2
