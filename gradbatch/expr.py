"""Safe expressions: text → :class:`Expr` → a torch function of the grid coordinates.

The text is parsed by :func:`ast.parse` and then walked against a whitelist of node types;
each allowed node becomes a small closure over torch operations. Nothing is ever passed to
``eval``/``exec``/``compile``, no attribute is ever looked up, and numbers are converted to
floats before anything is computed, so ``9**9**9`` is an ``inf`` on the device, not a hang.

Language (Python syntax, a small subset)::

    numbers        1, 2.5, 1e-3                 (converted to floating point)
    variables      the grid's axis names        (x, y, z, or whatever the grid calls them)
    constants      pi, e, and names from ``params:``
    arithmetic     + - * / % **  and ^ (power, as in maths texts)
    comparisons    < <= > >= == !=  (chains allowed) -> 0/1; and, or, not; a if cond else b
    functions      see FUNCTIONS below (elementwise; min/max take two or more arguments)

Anything else is rejected with an :class:`~gradbatch.errors.ExpressionError` naming the
offending token and its 1-based column in the text the user wrote.
"""

from __future__ import annotations

import ast
import math
import operator
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from .errors import ExpressionError

__all__ = ["Expr", "parse", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_DEPTH"]

MAX_LENGTH = 10_000
"""Longest expression text accepted, in characters."""
MAX_DEPTH = 100
"""Deepest nesting of sub-expressions accepted (parentheses, operators, calls)."""

Value = Union[torch.Tensor, float]
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


# name -> (min arguments, max arguments or None for any, torch function)
FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., torch.Tensor]]] = {
    "sin": (1, 1, torch.sin),
    "cos": (1, 1, torch.cos),
    "tan": (1, 1, torch.tan),
    "asin": (1, 1, torch.asin),
    "acos": (1, 1, torch.acos),
    "atan": (1, 1, torch.atan),
    "arcsin": (1, 1, torch.asin),
    "arccos": (1, 1, torch.acos),
    "arctan": (1, 1, torch.atan),
    "atan2": (2, 2, torch.atan2),
    "arctan2": (2, 2, torch.atan2),
    "sinh": (1, 1, torch.sinh),
    "cosh": (1, 1, torch.cosh),
    "tanh": (1, 1, torch.tanh),
    "asinh": (1, 1, torch.asinh),
    "acosh": (1, 1, torch.acosh),
    "atanh": (1, 1, torch.atanh),
    "arcsinh": (1, 1, torch.asinh),
    "arccosh": (1, 1, torch.acosh),
    "arctanh": (1, 1, torch.atanh),
    "exp": (1, 1, torch.exp),
    "expm1": (1, 1, torch.expm1),
    "log": (1, 1, torch.log),
    "log2": (1, 1, torch.log2),
    "log10": (1, 1, torch.log10),
    "log1p": (1, 1, torch.log1p),
    "sqrt": (1, 1, torch.sqrt),
    "abs": (1, 1, torch.abs),
    "sign": (1, 1, lambda a: torch.where(torch.isnan(a), a, torch.sign(a))),  # sign(NaN) is NaN, not 0
    "floor": (1, 1, torch.floor),
    "ceil": (1, 1, torch.ceil),
    "sigmoid": (1, 1, torch.sigmoid),
    "hypot": (2, 2, torch.hypot),
    "pow": (2, 2, torch.pow),
    "min": (2, None, _minimum),
    "max": (2, None, _maximum),
    "clip": (3, 3, _clip),
    "where": (3, 3, _where),
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_BINOPS: dict[type, Callable[[Any, Any], torch.Tensor]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], torch.Tensor]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
# Friendly names for syntax people try that is not allowed.
_FORBIDDEN = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "star-arguments",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.JoinedStr: "a string",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
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
    language described in the module docstring.
    """
    params = dict(params or {})
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, got {type(text).__name__} {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed"
        )
    if not text.strip():
        raise ExpressionError("expression is empty")
    _check_characters(text)
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    _check_parentheses(flat)
    # '^' means power in maths texts; Python would read it as xor with the wrong precedence.
    source, columns = _caret_to_pow(flat)
    lead = len(source) - len(source.lstrip())
    source, columns = source[lead:], columns[lead:]
    try:
        with warnings.catch_warnings():  # e.g. "invalid hexadecimal literal" for 0x1for: not a second line
            warnings.simplefilter("ignore")
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        col = columns[min(max((exc.offset or 1) - 1, 0), len(columns) - 1)] + 1
        raise ExpressionError(
            f"invalid syntax in expression {_short(text)} at column {col}: {exc.msg}",
            text=flat,
            column=col,
        ) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(
            f"expression is nested too deeply; at most {MAX_DEPTH} levels are allowed"
        ) from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python accepts
        raise ExpressionError(f"invalid expression {_short(text)}: {exc}") from None
    builder = _Builder(flat, source, columns, tuple(variables), params)
    builder.check_depth(tree.body)
    root = builder.build(tree.body)
    return Expr(
        text=text,
        variables=tuple(variables),
        params=params,
        used=frozenset(builder.used),
        _root=root,
    )


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


_MATH_SIGNS = {"\u2212": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*", "\u00f7": "/", "\u2013": "-"}


def _check_characters(text: str) -> None:
    """Expressions are ASCII. Python's parser NFKC-normalises identifiers, so a fullwidth 'ｘ' or a
    mathematical italic '𝑥' would silently *be* x; refuse them, and control characters, by name."""
    for i, ch in enumerate(text):
        if ch.isascii() and (ch.isprintable() or ch in "\t\n\r"):
            continue
        name = unicodedata.name(ch, "a control character")
        looks = unicodedata.normalize("NFKC", ch)
        hint = (f"; write {_MATH_SIGNS[ch]!r}" if ch in _MATH_SIGNS
                else f" (Python would silently read it as {looks!r})" if looks != ch and looks.isascii()
                and looks.isprintable() else "")
        raise ExpressionError(
            f"character U+{ord(ch):04X} ({name}) at column {i + 1} is not allowed: expressions are "
            f"ASCII text{hint}",
            column=i + 1,
        )


def _check_parentheses(text: str) -> None:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression is nested too deeply at column {i + 1}; "
                    f"at most {MAX_DEPTH} levels are allowed",
                    text=text,
                    column=i + 1,
                )
        elif ch in ")]}":
            depth -= 1


def _caret_to_pow(text: str) -> tuple[str, list[int]]:
    """Replace '^' with '**'; return the new text and, per new column, the original column."""
    out: list[str] = []
    columns: list[int] = []
    for i, ch in enumerate(text):
        if ch == "^":
            out.append("**")
            columns.extend((i, i))
        else:
            out.append(ch)
            columns.append(i)
    columns.append(len(text))  # one past the end, for errors at end of input
    return "".join(out), columns


class _Builder:
    """Turns a whitelisted AST into nested closures over the coordinate tuple."""

    def __init__(
        self,
        text: str,
        source: str,
        columns: list[int],
        variables: tuple[str, ...],
        params: dict[str, float],
    ) -> None:
        self.text = text
        self.source = source
        self.columns = columns
        self.variables = variables
        self.params = params
        self.used: set[str] = set()

    # -- errors ---------------------------------------------------------------------------
    def _col(self, node: ast.AST) -> int:
        off = getattr(node, "col_offset", 0)
        return self.columns[min(off, len(self.columns) - 1)] + 1

    def fail(self, node: ast.AST, what: str) -> ExpressionError:
        col = self._col(node)
        segment = ast.get_source_segment(self.source, node) or ""
        if len(segment) > 40:
            segment = segment[:37] + "..."
        token = f" {segment!r}" if segment else ""
        return ExpressionError(f"{what}{token} at column {col}", text=self.text, column=col)

    def check_depth(self, root: ast.AST) -> None:
        stack: list[tuple[ast.AST, int]] = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.fail(node, f"expression is nested more than {MAX_DEPTH} levels deep:")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # -- building -------------------------------------------------------------------------
    def build(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unaryop(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.IfExp):
            cond, a, b = self.build(node.test), self.build(node.body), self.build(node.orelse)
            return lambda c: torch.where(_as_bool(cond(c), c[0]), _tensor(a(c), c[0]), _tensor(b(c), c[0]))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):  # point at the '.name', the offending token
            col = self.columns[min(node.value.end_col_offset or 0, len(self.columns) - 1)] + 1
            raise ExpressionError(f"attribute access is not allowed: '.{node.attr}' at column {col}",
                                  text=self.text, column=col)
        what = _FORBIDDEN.get(type(node), f"'{type(node).__name__}' syntax")
        raise self.fail(node, f"{what} is not allowed:")

    def _constant(self, node: ast.Constant) -> Node:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(node, f"only numbers are allowed as literals, got {type(v).__name__}")
        try:
            value = float(v)
        except OverflowError:
            raise self.fail(node, "number is too large:") from None
        return _const(value)

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if name in self.variables:
            self.used.add(name)
            index = self.variables.index(name)
            return lambda c: c[index]
        if name in self.params:
            return _const(float(self.params[name]))
        if name in CONSTANTS:
            return _const(CONSTANTS[name])
        if name in FUNCTIONS:
            raise self.fail(node, f"'{name}' is a function; call it with arguments, e.g. {name}(x):")
        allowed = ", ".join([*self.variables, *sorted(self.params), *CONSTANTS])
        raise self.fail(node, f"unknown name '{name}' (allowed names: {allowed}):")

    def _binop(self, node: ast.BinOp) -> Node:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed:")
        left, right = self.build(node.left), self.build(node.right)

        def run(c: tuple[torch.Tensor, ...]) -> Value:
            a, b = _pair(left(c), right(c), c[0])
            return op(a, b)

        return run

    def _unaryop(self, node: ast.UnaryOp) -> Node:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda c: torch.neg(_tensor(operand(c), c[0]))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda c: torch.logical_not(_as_bool(operand(c), c[0]))
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed:")

    def _compare(self, node: ast.Compare) -> Node:
        ops = []
        for op in node.ops:
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise self.fail(node, f"comparison {type(op).__name__} is not allowed:")
            ops.append(fn)
        operands = [self.build(node.left)] + [self.build(n) for n in node.comparators]

        def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
            ref = c[0]
            vals = [o(c) for o in operands]
            out = ops[0](*_pair(vals[0], vals[1], ref))
            for i in range(1, len(ops)):
                out = torch.logical_and(out, ops[i](*_pair(vals[i], vals[i + 1], ref)))
            return out

        return run

    def _boolop(self, node: ast.BoolOp) -> Node:
        parts = [self.build(v) for v in node.values]
        combine = torch.logical_and if isinstance(node.op, ast.And) else torch.logical_or

        def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
            out = _as_bool(parts[0](c), c[0])
            for p in parts[1:]:
                out = combine(out, _as_bool(p(c), c[0]))
            return out

        return run

    def _call(self, node: ast.Call) -> Node:
        if isinstance(node.func, ast.Attribute):
            self.build(node.func)  # raises: attribute access is named as the offence
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, "only calls of named functions are allowed, not")
        name = node.func.id
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self.fail(
                node.func,
                f"unknown function '{name}' (allowed functions: {', '.join(sorted(FUNCTIONS))}):",
            )
        if node.keywords:
            raise self.fail(node.keywords[0], f"{name}() takes no keyword arguments:")
        lo, hi, fn = spec
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise self.fail(node, f"{name}() takes {want} argument(s), got {n}:")
        args = [self.build(a) for a in node.args]
        if name == "where":
            def run_where(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
                ref = c[0]
                cond, a, b = (a(c) for a in args)
                return torch.where(_as_bool(cond, ref), _tensor(a, ref), _tensor(b, ref))

            return run_where

        def run(c: tuple[torch.Tensor, ...]) -> torch.Tensor:
            ref = c[0]
            return fn(*(_tensor(a(c), ref) for a in args))

        return run


def _const(value: float) -> Node:
    return lambda c: value
