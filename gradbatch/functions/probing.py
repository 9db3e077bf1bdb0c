"""Checking a built function on a few points before any tile: what it returns, and (for user
code) whether its result carries an autograd graph back to its inputs."""

from __future__ import annotations

import torch

from ..derivatives import leaves, reaches
from ..errors import FunctionError
from .field import FieldFunction

__all__ = ["probe", "probe_graph"]


def _probe_coords(ndim: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.linspace(0.1, 0.9, 4, dtype=dtype, device=device) for _ in range(ndim))


def _call(ff: FieldFunction, coords: tuple[torch.Tensor, ...]) -> object:
    try:
        return ff.fn(*coords)
    except FunctionError:
        raise
    except SystemExit as exc:
        raise FunctionError(f"{ff.source} {ff.text!r} called sys.exit({exc.code!r})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise FunctionError(f"{ff.source} {ff.text!r} failed: {type(exc).__name__}: {exc}") from exc


def probe(ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> FieldFunction:
    """Call ``ff`` on a few points and check what it returns; fix ``kind`` for callables.

    Raises :class:`FunctionError` naming the function when it fails or returns something that
    is not one tensor per point (scalar) or one tensor per axis (vector).
    """
    coords = _probe_coords(ndim, dtype, device)
    out = _call(ff, coords)
    shape = coords[0].shape
    if isinstance(out, torch.Tensor):
        parts: tuple[object, ...] = (out,)
        kind = "scalar"
    elif isinstance(out, (tuple, list)):
        parts = tuple(out)
        kind = "vector"
    else:
        raise FunctionError(
            f"{ff.source} {ff.text!r} returned {type(out).__name__}; expected a tensor "
            f"(scalar field) or a tuple of {ndim} tensors (vector field)"
        )
    if kind == "vector" and len(parts) != ndim:
        raise FunctionError(
            f"{ff.source} {ff.text!r} returned {len(parts)} components; a vector field on a "
            f"{ndim}-axis grid needs {ndim}, one per axis"
        )
    for p in parts:
        if not isinstance(p, torch.Tensor) or p.shape != shape or not p.is_floating_point():
            got = f"{p.dtype} tensor of shape {tuple(p.shape)}" if isinstance(p, torch.Tensor) else type(p).__name__
            raise FunctionError(
                f"{ff.source} {ff.text!r} must return floating-point tensors shaped like its "
                f"inputs ({tuple(shape)}, elementwise); got {got}"
            )
    if ff.user_code:
        return FieldFunction(ff.fn, kind, len(parts), ff.source, ff.text, ff.minima, ff.code_hash)
    return ff


def probe_graph(ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
    """A callable's result must carry an autograd graph back to its inputs, or every gradient
    the engine takes of it is zero (checked again on every tile that takes derivatives)."""
    coords = _probe_coords(ndim, dtype, device)
    with torch.enable_grad():
        xs = leaves(coords)
        try:
            out = ff.fn(*xs)
        except FunctionError:
            raise
        except Exception as exc:
            raise FunctionError(
                f"callable {ff.text!r} failed on inputs that require grad: {type(exc).__name__}: {exc}"
            ) from exc
    parts = out if isinstance(out, (tuple, list)) else (out,)
    if not reaches(parts, xs):
        raise FunctionError(
            f"callable {ff.text!r} returned a tensor without an autograd graph to its inputs (computed "
            "under torch.no_grad(), .detach(), or through numpy or a list?), so its gradient would be "
            "stored as zero; "
            "compute it with torch operations on the inputs (a constant field: return e.g. 0 * x + c)"
        )
