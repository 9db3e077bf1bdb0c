"""Built-in sources: a function from the table in :mod:`gradbatch.builtins`, written in the
expression language, with its usual domain and its known minima."""

from __future__ import annotations

from collections.abc import Mapping

from ..builtins import BUILTINS
from ..config import BuiltinSource
from ..expr import parse
from .field import FieldFunction
from .registry import BuildContext, BuiltFunction, SourceBuilder

__all__ = ["from_builtin", "BuiltinBuilder"]


def from_builtin(name: str, ndim: int, params: Mapping[str, float]) -> FieldFunction:
    b = BUILTINS[name]
    text, variables = b.template(ndim)
    expr = parse(text, variables, params)
    return FieldFunction(expr, "scalar", 1, "builtin", f"{name}: {text}", b.minima(ndim))


class BuiltinBuilder(SourceBuilder):
    def build(self, settings: BuiltinSource, ctx: BuildContext) -> BuiltFunction:
        return BuiltFunction(from_builtin(settings.name, ctx.ndim, ctx.params), self)
