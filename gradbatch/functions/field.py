"""The engine's view of any function: :class:`FieldFunction`, whatever source built it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..records import Minimum

__all__ = ["FieldFunction", "TensorFn"]

TensorFn = Callable[..., "torch.Tensor | tuple[torch.Tensor, ...]"]


@dataclass(frozen=True)
class FieldFunction:
    """An elementwise function of the grid coordinates, ready for the engine.

    ``fn(*coords)`` takes one tensor per axis (same shape, dtype, device) and returns one tensor
    of that shape (``kind == "scalar"``) or a tuple of ``ncomp`` of them (``kind == "vector"``).
    """

    fn: TensorFn
    kind: str
    ncomp: int
    source: str  # "expression" | "vector" | "builtin" | "callable" | "landscape" | "network"
    text: str  # what it is, for provenance: the expression(s), builtin name or callable ref
    minima: tuple[Minimum, ...] = ()
    code_hash: str | None = None  # a callable's source files, hashed: part of the job for --resume

    @property
    def user_code(self) -> bool:
        """Whether ``fn`` is the user's own code, which can lose its autograd graph (computed
        through numpy, under ``no_grad``): the engine then says so instead of storing zeros."""
        return self.source == "callable"

    @property
    def thread_safe(self) -> bool:
        """Whether tiles may be computed on several threads at once. Not a user's code (it may
        keep state), nor a network (``functional_call`` swaps the module's parameters while it
        runs): those get one thread computing, with torch's threads inside it."""
        return self.source in ("expression", "vector", "builtin", "landscape")

    def scalar(self, *coords: torch.Tensor) -> torch.Tensor:
        """The value of a scalar field at the points (one tensor per axis)."""
        out = self.fn(*coords)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self.text!r} is a vector field, not a scalar one")
        return out
