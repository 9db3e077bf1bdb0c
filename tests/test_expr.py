"""The expression language: what it computes, and everything it must refuse."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from gradbatch.errors import ExpressionError
from gradbatch.expr import FUNCTIONS, MAX_DEPTH, parse

X = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
Y = torch.linspace(0.1, 0.8, 7, dtype=torch.float64)
x, y = X.numpy(), Y.numpy()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x + y*2 - 1/y", x + y * 2 - 1 / y),
        ("x**3 + 2*x**2 - x", x**3 + 2 * x**2 - x),
        ("x^3 + 2*x^2 - x", x**3 + 2 * x**2 - x),  # ^ is power, with power's precedence
        ("2^3^2", np.full(7, 2.0**9)),  # right-associative, as in maths
        ("-x^2", -(x**2)),
        ("x % 0.5", np.mod(x, 0.5)),
        ("sin(sqrt((0.75*x)**2 + y**2 + 0.01))", np.sin(np.sqrt((0.75 * x) ** 2 + y**2 + 0.01))),
        ("exp(x) + log(y) + log2(y) + log10(y)", np.exp(x) + np.log(y) + np.log2(y) + np.log10(y)),
        ("asin(x) + acos(x) + atan(x) + atan2(y, x)", np.arcsin(x) + np.arccos(x) + np.arctan(x) + np.arctan2(y, x)),
        (
            "sinh(x) + cosh(x) + tanh(x) + asinh(x) + atanh(x)",
            np.sinh(x) + np.cosh(x) + np.tanh(x) + np.arcsinh(x) + np.arctanh(x),
        ),
        ("abs(x) + min(x, y) + max(x, y, 0.5)", np.abs(x) + np.minimum(x, y) + np.maximum(np.maximum(x, y), 0.5)),
        ("where(x > 0, x, -2*x)", np.where(x > 0, x, -2 * x)),
        ("(x < 0) + (y >= 0.5)", (x < 0).astype(float) + (y >= 0.5)),
        ("0 < x < 0.5", ((0 < x) & (x < 0.5)).astype(float)),
        ("x if x > y else y", np.where(x > y, x, y)),
        ("x > 0 and y < 0.5", ((x > 0) & (y < 0.5)).astype(float)),
        ("not (x > 0)", (~(x > 0)).astype(float)),
        ("pi * e + x", math.pi * math.e + x),
        ("3", np.full(7, 3.0)),
    ],
)
def test_values_match_numpy(text: str, expected: np.ndarray) -> None:
    out = parse(text, ("x", "y"))(X, Y)
    assert out.shape == X.shape and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_params_and_axis_names() -> None:
    e = parse("a*x0 + b*x1^2", ("x0", "x1"), {"a": 2.0, "b": -1.0})
    np.testing.assert_allclose(e(X, Y).numpy(), 2 * x - y**2)
    assert e.used == {"x0", "x1"}


def test_every_listed_function_is_callable() -> None:
    for name, (lo, _hi, _fn) in FUNCTIONS.items():
        args = ", ".join(["y"] * lo)
        out = parse(f"{name}({args})", ("x", "y"))(X, Y)
        assert out.shape == X.shape, name


def test_constant_overflow_is_inf_on_the_device_not_a_hang() -> None:
    out = parse("9**9**9 + x", ("x",))(X)
    assert torch.isinf(out).all()


def test_gradient_flows_through_expressions() -> None:
    xs = X.clone().requires_grad_(True)
    parse("x**2 + 3*x", ("x",))(xs).sum().backward()
    np.testing.assert_allclose(xs.grad.numpy(), 2 * x + 3)


HOSTILE = [
    ("x.__class__", "attribute access", 2),
    ("().__class__.__bases__[0].__subclasses__()", "attribute access is not allowed: '.__subclasses__'", 26),
    ("__import__('os').system('touch PWNED')", "attribute access is not allowed: '.system'", 17),
    ("__import__('os')", "unknown function '__import__'", 1),
    ("open('PWNED', 'w')", "unknown function 'open'", 1),
    ("eval('1')", "unknown function 'eval'", 1),
    ("lambda: 1", "lambda", 1),
    ("(lambda: 0)()", "only calls of named functions", 2),
    ("[a for a in x]", "comprehension", 1),
    ("{a: 1 for a in y}", "comprehension", 1),
    ("(a for a in x)", "generator", 1),
    ("x[0]", "indexing", 1),
    ("(y := 2)", "assignment", 2),
    ("'text'", "only numbers", 1),
    ("f'{x}'", "string", 1),
    ("foo(x)", "unknown function 'foo'", 1),
    ("q + 1", "unknown name 'q'", 1),
    ("x + __builtins__", "unknown name '__builtins__'", 5),
    ("sin", "is a function", 1),
    ("sin(x, y)", "takes 1 argument", 1),
    ("sin(x=1)", "keyword", 5),
    ("x @ y", "MatMult", 1),
    ("x << 2", "LShift", 1),
    ("x is y", "comparison Is", 1),
    ("True + x", "only numbers", 1),
    ("1j * x", "only numbers", 1),
    ("x +", "invalid syntax", None),
    ("", "empty", None),
    ("import os", "invalid syntax", None),
    ("x; y", "invalid syntax", None),
]


@pytest.mark.parametrize("text, message, column", HOSTILE)
def test_hostile_expressions_are_rejected(text: str, message: str, column: int | None, in_tmp: Path) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text, ("x", "y"))
    assert message in str(info.value)
    if column is not None:
        assert info.value.column == column
        assert f"column {column}" in str(info.value)
    assert not (in_tmp / "PWNED").exists()


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + "x" + ")" * 10_000,  # 10,000-deep parentheses (also over the length limit)
        "(" * 4_000 + "x" + ")" * 4_000,
        "-" * 9_999 + "x",  # 10,000-deep unary minus, no parentheses
        "+".join(["x"] * 5_000),  # a long flat chain is deep too (left-nested BinOps)
        "sin(" * 3_000 + "x" + ")" * 3_000,
        "1" + "0" * 5_000,  # an integer literal too long to convert
        "x" * (10_001),
    ],
)
def test_blow_ups_are_rejected_without_hanging(text: str) -> None:
    """Each is refused with an ExpressionError; the thread guard only catches a hang."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            parse(text, ("x",))
            outcome.append(None)
        except BaseException as exc:  # recorded and asserted below
            outcome.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "parse() hung"
    assert isinstance(outcome[0], ExpressionError), outcome[0]


def test_depth_limit_is_generous_for_real_expressions() -> None:
    text = "(" * (MAX_DEPTH // 2 - 2) + "x" + ")" * (MAX_DEPTH // 2 - 2)
    assert parse(text, ("x",))(X).shape == X.shape


def test_caret_column_maps_back_to_the_original_text() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("x^2 + y^2 + foo(x)", ("x", "y"))
    assert info.value.column == 13
