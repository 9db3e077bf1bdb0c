"""Safe expressions: text → :class:`Expr` → a torch function of the grid coordinates.

:func:`gradbatch.config.expression.parse_expression` parses and validates the text without
torch (an AST whitelist; never ``eval``/``exec``, no attribute lookups) into a small frozen
tree; this module compiles that tree into nested closures over torch operations. The language
and every error message are described there.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .config.expression import (
    ARITY,
    CONSTANTS,
    MAX_DEPTH,
    MAX_LENGTH,
    BinOp,
    BoolOp,
    Compare,
    Const,
    IfExp,
    Unary,
    Var,
    parse_expression,
)
from .config.expression import Node as Tree

__all__ = ["Expr", "parse", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_DEPTH"]

Value = torch.Tensor | float
# A node maps the coordinate tuple to a tensor, or to a float where it is a constant: constants
# stay Python floats so that ``x**2`` takes torch's fast scalar-exponent path.
Node = Callable[[tuple[torch.Tensor, ...]], Value]


def _minimum(*args: torch.Tensor) -> torch.Tensor:
    out = args[0]
    for a in args[1:]:
        out = torch.minimum(out, a)
    return out


def _maximum(*args: torch.Tensor) -> torch.Tensor:
    out = args[0]
    for a in args[1:]:
        out = torch.maximum(out, a)
    return out


def _where(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(cond if cond.dtype == torch.bool else cond != 0, a, b)


def _clip(a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(a, lo), hi)


_TORCH: dict[str, Callable[..., torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "arcsin": torch.asin,
    "arccos": torch.acos,
    "arctan": torch.atan,
    "atan2": torch.atan2,
    "arctan2": torch.atan2,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "asinh": torch.asinh,
    "acosh": torch.acosh,
    "atanh": torch.atanh,
    "arcsinh": torch.asinh,
    "arccosh": torch.acosh,
    "arctanh": torch.atanh,
    "exp": torch.exp,
    "expm1": torch.expm1,
    "log": torch.log,
    "log2": torch.log2,
    "log10": torch.log10,
    "log1p": torch.log1p,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sign": lambda a: torch.where(torch.isnan(a), a, torch.sign(a)),  # sign(NaN) is NaN, not 0
    "floor": torch.floor,
    "ceil": torch.ceil,
    "sigmoid": torch.sigmoid,
    "hypot": torch.hypot,
    "pow": torch.pow,
    "min": _minimum,
    "max": _maximum,
    "clip": _clip,
    "where": _where,
}

# name -> (min arguments, max arguments or None for any, torch function)
FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., torch.Tensor]]] = {
    name: (lo, hi, _TORCH[name]) for name, (lo, hi) in ARITY.items()
}

_BINOPS: dict[str, Callable[[Any, Any], torch.Tensor]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
    "%": operator.mod,
}
_CMPOPS: dict[str, Callable[[Any, Any], torch.Tensor]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _tensor(v: Value, like: torch.Tensor) -> torch.Tensor:
    """A tensor on ``like``'s device and dtype (0-d for a constant); bools become 0/1."""
    if isinstance(v, torch.Tensor):
        return v.to(like.dtype) if v.dtype == torch.bool else v
    if like.dtype != torch.float64 and math.isfinite(v) and abs(v) > torch.finfo(like.dtype).max:
        return torch.full((), math.copysign(math.inf, v), dtype=like.dtype, device=like.device)  # 1e100 in float32
    return torch.full((), v, dtype=like.dtype, device=like.device)


def _num(v: Value, like: torch.Tensor) -> Value:
    """Constants stay floats (fast scalar overloads); bool tensors become 0/1."""
    if isinstance(v, torch.Tensor) and v.dtype == torch.bool:
        return v.to(like.dtype)
    return v


def _as_bool(v: Value, like: torch.Tensor) -> torch.Tensor:
    t = v if isinstance(v, torch.Tensor) else _tensor(v, like)
    return t if t.dtype == torch.bool else t != 0


def _pair(a: Value, b: Value, like: torch.Tensor) -> tuple[Value, Value]:
    """Operands for a Python operator: at least one must be a tensor (never float ** float)."""
    a, b = _num(a, like), _num(b, like)
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        a = _tensor(a, like)
    return a, b


@dataclass(frozen=True)
class Expr:
    """A parsed, validated expression: call it with one coordinate tensor per variable.

    ``expr(*coords)`` takes tensors of one shape, dtype and device (one per name in
    ``variables``, in order) and returns a tensor of that shape: the function is elementwise,
    so point ``i`` of the result depends only on point ``i`` of the inputs.
    """

    text: str
    variables: tuple[str, ...]
    params: Mapping[str, float] = field(default_factory=dict)
    used: frozenset[str] = frozenset()
    _root: Node = field(default=lambda coords: coords[0], repr=False, compare=False)

    def __call__(self, *coords: torch.Tensor) -> torch.Tensor:
        if len(coords) != len(self.variables):
            raise TypeError(f"expected {len(self.variables)} coordinate tensors, got {len(coords)}")
        out = self._root(coords)
        ref = coords[0]
        out = _tensor(out, ref)
        if out.shape != ref.shape:
            out = torch.broadcast_to(out, ref.shape)
        return out


def parse(
    text: str,
    variables: Sequence[str],
    params: Mapping[str, float] | None = None,
) -> Expr:
    """Parse ``text`` into an :class:`Expr` over ``variables`` with named constants ``params``.

    Raises :class:`ExpressionError` (naming the token and its column) for anything outside the
    language described in :mod:`gradbatch.config.expression`.
    """
    parsed = parse_expression(text, variables, params)
    return Expr(
        text=parsed.text,
        variables=parsed.variables,
        params=parsed.params,
        used=parsed.used,
        _root=compile_tree(parsed.root),
    )


def compile_tree(node: Tree) -> Node:
    """A validated expression tree → nested closures over the coordinate tuple."""
    if isinstance(node, Const):
        value = node.value
        return lambda c: value
    if isinstance(node, Var):
        index = node.index
        return lambda c: c[index]
    if isinstance(node, BinOp):
        return _binop(_BINOPS[node.op], compile_tree(node.left), compile_tree(node.right))
    if isinstance(node, Unary):
        operand = compile_tree(node.operand)
        if node.op == "-":
            return lambda c: torch.neg(_tensor(operand(c), c[0]))
        return lambda c: torch.logical_not(_as_bool(operand(c), c[0]))
    if isinstance(node, Compare):
        return _compare([_CMPOPS[op] for op in node.ops], [compile_tree(n) for n in node.operands])
    if isinstance(node, BoolOp):
        return _boolop(
            torch.logical_and if node.op == "and" else torch.logical_or, [compile_tree(v) for v in node.values]
        )
    if isinstance(node, IfExp):
        cond, a, b = compile_tree(node.test), compile_tree(node.body), compile_tree(node.orelse)
        return lambda c: torch.where(_as_bool(cond(c), c[0]), _tensor(a(c), c[0]), _tensor(b(c), c[0]))
    return _call(node.name, [compile_tree(a) for a in node.args])


def _binop(op: Callable[[Any, Any], torch.Tensor], left: Node, right: Node) -> Node:
    def run(c: tuple[torch.Tensor, ...]) -> Value:
        a, b = _pair(left(c), right(c), c[0])
        return op(a, b)

    return run


def _compare(ops: list[Callable[[Any, Any], torch.Tensor]], operands: list[Node]) -> Node:
    def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ref = c[0]
        vals = [o(c) for o in operands]
        out = ops[0](*_pair(vals[0], vals[1], ref))
        for i in range(1, len(ops)):
            out = torch.logical_and(out, ops[i](*_pair(vals[i], vals[i + 1], ref)))
        return out

    return run


def _boolop(combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], parts: list[Node]) -> Node:
    def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out = _as_bool(parts[0](c), c[0])
        for p in parts[1:]:
            out = combine(out, _as_bool(p(c), c[0]))
        return out

    return run


def _call(name: str, args: list[Node]) -> Node:
    if name == "where":

        def run_where(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
            ref = c[0]
            cond, a, b = (a(c) for a in args)
            return torch.where(_as_bool(cond, ref), _tensor(a, ref), _tensor(b, ref))

        return run_where
    fn = _TORCH[name]

    def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ref = c[0]
        return fn(*(_tensor(a(c), ref) for a in args))

    return run
