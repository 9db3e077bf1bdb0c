"""Expression sources: one safe expression (a scalar field) or one per axis (a vector field)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..config import ExpressionSource, VectorSource
from ..expr import Expr, parse
from .field import FieldFunction
from .registry import BuildContext, BuiltFunction, SourceBuilder

__all__ = ["from_expression", "from_vector", "ExpressionBuilder", "VectorBuilder"]


def from_expression(text: str, axes: Sequence[str], params: Mapping[str, float]) -> FieldFunction:
    expr = parse(text, axes, params)
    return FieldFunction(expr, "scalar", 1, "expression", text)


def from_vector(texts: Sequence[str], axes: Sequence[str], params: Mapping[str, float]) -> FieldFunction:
    exprs: tuple[Expr, ...] = tuple(parse(t, axes, params) for t in texts)

    def vector(*coords: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(e(*coords) for e in exprs)

    return FieldFunction(vector, "vector", len(exprs), "vector", "[" + ", ".join(texts) + "]")


class ExpressionBuilder(SourceBuilder):
    def build(self, settings: ExpressionSource, ctx: BuildContext) -> BuiltFunction:
        return BuiltFunction(from_expression(settings.text, ctx.axes, ctx.params), self)


class VectorBuilder(SourceBuilder):
    def build(self, settings: VectorSource, ctx: BuildContext) -> BuiltFunction:
        return BuiltFunction(from_vector(settings.texts, ctx.axes, ctx.params), self)
