"""Expression text → a small frozen tree, validated without torch.

The text is parsed by :func:`ast.parse` and walked against a whitelist of node types; what is
allowed becomes a node of the tree below, and anything else an
:class:`~gradbatch.errors.ExpressionError` naming the offending token and its 1-based column in
the text the user wrote. Nothing is ever passed to ``eval``/``exec``/``compile``, no attribute
is ever looked up, and numbers become floats here, so ``9**9**9`` is an ``inf`` when computed,
not a hang. The config checks a job's expressions with this alone (no torch import);
:mod:`gradbatch.expr` compiles the same tree to torch closures.

Language (Python syntax, a small subset)::

    numbers        1, 2.5, 1e-3                 (converted to floating point)
    variables      the grid's axis names        (x, y, z, or whatever the grid calls them)
    constants      pi, e, and names from ``params:``
    arithmetic     + - * / % **  and ^ (power, as in maths texts)
    comparisons    < <= > >= == !=  (chains allowed) -> 0/1; and, or, not; a if cond else b
    functions      see ARITY below (elementwise; min/max take two or more arguments)

Tree::

    Const(2.0)          a number, a parameter or a constant, already a float
    Var(0, "x")         the coordinate of the variable at that index
    BinOp("**", l, r)   + - * / ** %          Unary("-" | "not", operand)
    Compare(("<", "<="), (a, b, c))           BoolOp("and" | "or", (a, b, ...))
    IfExp(test, body, orelse)                 Call("sin", (arg,))
"""

from __future__ import annotations

import ast
import math
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ExpressionError

__all__ = [
    "ParsedExpression",
    "parse_expression",
    "ARITY",
    "CONSTANTS",
    "MAX_LENGTH",
    "MAX_DEPTH",
    "Const",
    "Var",
    "BinOp",
    "Unary",
    "Compare",
    "BoolOp",
    "IfExp",
    "Call",
    "Node",
]

MAX_LENGTH = 10_000
"""Longest expression text accepted, in characters."""
MAX_DEPTH = 100
"""Deepest nesting of sub-expressions accepted (parentheses, operators, calls)."""

# name -> (min arguments, max arguments or None for any)
ARITY: dict[str, tuple[int, int | None]] = {
    **{name: (1, 1) for name in ("sin", "cos", "tan", "asin", "acos", "atan", "arcsin", "arccos", "arctan")},
    "atan2": (2, 2),
    "arctan2": (2, 2),
    **{
        name: (1, 1)
        for name in (
            "sinh",
            "cosh",
            "tanh",
            "asinh",
            "acosh",
            "atanh",
            "arcsinh",
            "arccosh",
            "arctanh",
            "exp",
            "expm1",
            "log",
            "log2",
            "log10",
            "log1p",
            "sqrt",
            "abs",
            "sign",
            "floor",
            "ceil",
            "sigmoid",
        )
    },
    "hypot": (2, 2),
    "pow": (2, 2),
    "min": (2, None),
    "max": (2, None),
    "clip": (3, 3),
    "where": (3, 3),
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Var:
    index: int
    name: str


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / ** %
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not" ("+x" is x itself)
    operand: Node


@dataclass(frozen=True)
class Compare:
    ops: tuple[str, ...]  # < <= > >= == !=, one fewer than operands
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    values: tuple[Node, ...]


@dataclass(frozen=True)
class IfExp:
    test: Node
    body: Node
    orelse: Node


@dataclass(frozen=True)
class Call:
    name: str  # a key of ARITY
    args: tuple[Node, ...]


Node = Const | Var | BinOp | Unary | Compare | BoolOp | IfExp | Call


@dataclass(frozen=True)
class ParsedExpression:
    """A validated expression: its tree over ``variables`` (``Var.index`` indexes them) and
    which variables it uses."""

    text: str
    variables: tuple[str, ...]
    params: Mapping[str, float] = field(default_factory=dict)
    used: frozenset[str] = frozenset()
    root: Node = Const(0.0)


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Mod: "%"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
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


def parse_expression(
    text: str, variables: Sequence[str], params: Mapping[str, float] | None = None
) -> ParsedExpression:
    """Parse and validate ``text`` over ``variables`` with named constants ``params``.

    Raises :class:`ExpressionError` (naming the token and its column) for anything outside the
    language described in the module docstring.
    """
    params = dict(params or {})
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, got {type(text).__name__} {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    if not text.strip():
        raise ExpressionError("expression is empty")
    _check_characters(text)
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    _check_parentheses(flat)
    # '^' means power in maths texts; Python would read it as xor with the wrong precedence.
    source, columns = _caret_to_pow(flat)
    lead = len(source) - len(source.lstrip())
    source, columns = source[lead:], columns[lead:]
    tree = _ast(text, flat, source, columns)
    walker = _Walker(flat, source, columns, tuple(variables), params)
    walker.check_depth(tree.body)
    root = walker.node(tree.body)
    return ParsedExpression(text, tuple(variables), params, frozenset(walker.used), root)


def _ast(text: str, flat: str, source: str, columns: list[int]) -> ast.Expression:
    try:
        with warnings.catch_warnings():  # e.g. "invalid hexadecimal literal" for 0x1for: not a second line
            warnings.simplefilter("ignore")
            return ast.parse(source, mode="eval")
    except SyntaxError as exc:
        col = columns[min(max((exc.offset or 1) - 1, 0), len(columns) - 1)] + 1
        raise ExpressionError(
            f"invalid syntax in expression {_short(text)} at column {col}: {exc.msg}", text=flat, column=col
        ) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression is nested too deeply; at most {MAX_DEPTH} levels are allowed") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python accepts
        raise ExpressionError(f"invalid expression {_short(text)}: {exc}") from None


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
        hint = (
            f"; write {_MATH_SIGNS[ch]!r}"
            if ch in _MATH_SIGNS
            else f" (Python would silently read it as {looks!r})"
            if looks != ch and looks.isascii() and looks.isprintable()
            else ""
        )
        raise ExpressionError(
            f"character U+{ord(ch):04X} ({name}) at column {i + 1} is not allowed: expressions are ASCII text{hint}",
            column=i + 1,
        )


def _check_parentheses(text: str) -> None:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression is nested too deeply at column {i + 1}; at most {MAX_DEPTH} levels are allowed",
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


class _Walker:
    """Turns a whitelisted AST into the tree, raising on the first node outside the language
    (in the order the tree is walked: that is the error the user sees)."""

    def __init__(
        self, text: str, source: str, columns: list[int], variables: tuple[str, ...], params: dict[str, float]
    ) -> None:
        self.text = text
        self.source = source
        self.columns = columns
        self.variables = variables
        self.params = params
        self.used: set[str] = set()

    def fail(self, node: ast.AST, what: str) -> ExpressionError:
        col = self.columns[min(getattr(node, "col_offset", 0), len(self.columns) - 1)] + 1
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

    def node(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(node, f"operator {type(node.op).__name__} is not allowed:")
            return BinOp(op, self.node(node.left), self.node(node.right))
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BoolOp):
            return BoolOp("and" if isinstance(node.op, ast.And) else "or", tuple(self.node(v) for v in node.values))
        if isinstance(node, ast.IfExp):
            return IfExp(self.node(node.test), self.node(node.body), self.node(node.orelse))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):  # point at the '.name', the offending token
            col = self.columns[min(node.value.end_col_offset or 0, len(self.columns) - 1)] + 1
            raise ExpressionError(
                f"attribute access is not allowed: '.{node.attr}' at column {col}", text=self.text, column=col
            )
        what = _FORBIDDEN.get(type(node), f"'{type(node).__name__}' syntax")
        raise self.fail(node, f"{what} is not allowed:")

    def _constant(self, node: ast.Constant) -> Const:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(node, f"only numbers are allowed as literals, got {type(v).__name__}")
        try:
            return Const(float(v))
        except OverflowError:
            raise self.fail(node, "number is too large:") from None

    def _name(self, node: ast.Name) -> Node:
        name = node.id
        if name in self.variables:
            self.used.add(name)
            return Var(self.variables.index(name), name)
        if name in self.params:
            return Const(float(self.params[name]))
        if name in CONSTANTS:
            return Const(CONSTANTS[name])
        if name in ARITY:
            raise self.fail(node, f"'{name}' is a function; call it with arguments, e.g. {name}(x):")
        allowed = ", ".join([*self.variables, *sorted(self.params), *CONSTANTS])
        raise self.fail(node, f"unknown name '{name}' (allowed names: {allowed}):")

    def _unary(self, node: ast.UnaryOp) -> Node:
        operand = self.node(node.operand)
        if isinstance(node.op, ast.USub):
            return Unary("-", operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return Unary("not", operand)
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed:")

    def _compare(self, node: ast.Compare) -> Compare:
        ops = []
        for op in node.ops:
            sign = _CMPOPS.get(type(op))
            if sign is None:
                raise self.fail(node, f"comparison {type(op).__name__} is not allowed:")
            ops.append(sign)
        return Compare(tuple(ops), (self.node(node.left), *(self.node(n) for n in node.comparators)))

    def _call(self, node: ast.Call) -> Call:
        if isinstance(node.func, ast.Attribute):
            self.node(node.func)  # raises: attribute access is named as the offence
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, "only calls of named functions are allowed, not")
        name = node.func.id
        spec = ARITY.get(name)
        if spec is None:
            raise self.fail(node.func, f"unknown function '{name}' (allowed functions: {', '.join(sorted(ARITY))}):")
        if node.keywords:
            raise self.fail(node.keywords[0], f"{name}() takes no keyword arguments:")
        lo, hi = spec
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise self.fail(node, f"{name}() takes {want} argument(s), got {n}:")
        return Call(name, tuple(self.node(a) for a in node.args))
