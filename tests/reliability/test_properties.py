"""Property-based tests (hypothesis): whatever text a user gives, the expression language and the
job-file validator either accept it or raise a GradbatchError; never another exception, never a
hang (each example has a deadline), and nothing is written."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gradbatch.config import load_config, parse_config
from gradbatch.errors import ExpressionError, GradbatchError
from gradbatch.expr import parse

# 200 fixed examples per property keep CI fast and repeatable; GRADBATCH_HYPOTHESIS_EXAMPLES=5000 searches
# deeper, with fresh random examples each run.
_DEEP = int(os.environ.get("GRADBATCH_HYPOTHESIS_EXAMPLES", "0"))
PROFILE = settings(
    max_examples=_DEEP or 200,
    deadline=2000,
    derandomize=not _DEEP,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- expressions --------------------------------------------------------------------------------

TOKENS = [
    "x",
    "y",
    "z",
    "k",
    "pi",
    "e",
    "sin",
    "cos",
    "exp",
    "log",
    "sqrt",
    "min",
    "max",
    "where",
    "clip",
    "atan2",
    "pow",
    "foo",
    "lambda",
    "__import__",
    "os",
    "True",
    "None",
    "if",
    "else",
    "and",
    "or",
    "not",
    "for",
    "in",
    "0",
    "1",
    "2.5",
    "1e3",
    "1e400",
    "9" * 50,
    "0x1f",
    "1j",
    "1_000",
    ".5",
    "+",
    "-",
    "*",
    "/",
    "**",
    "^",
    "%",
    "//",
    "@",
    "<",
    "<=",
    "==",
    "!=",
    ">",
    ">=",
    "<<",
    "~",
    "&",
    "|",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    ";",
    "=",
    ":=",
    "'",
    '"',
    "`",
    "#",
    "\\",
    "$",
    "?",
    "!",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\uff58",
    "\U0001d465",
    "\u2212",
    "\u00b2",
    "\u0301",
    "\u200b",
    "\u202e",
    "\x00",
    "\x0c",
    "\ufeff",
    "\U0001f600",
    "\u03b1",
    "\u00e9",
    "\ud800",
]
EXPRESSIONS = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    st.text(max_size=60),
    st.tuples(st.sampled_from(["(", "-", "sin(", "x+", "not "]), st.integers(1, 3000)).map(
        lambda t: t[0] * t[1] + "x" + (")" * t[1] if t[0].endswith("(") else "")
    ),
    st.integers(9_000, 12_000).map(lambda n: ("x+" * n)[:n]),
)


@PROFILE
@given(EXPRESSIONS)
@example("1E100")  # a float32 job: torch.full refused the constant ("cannot be converted ... without overflow")
@example("where(x > 0, -1e300, x)")
@example("0x1for y")  # Python's parser warned "invalid hexadecimal literal": a second line on stderr
def test_any_expression_text_parses_and_runs_or_is_an_expression_error(text: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            expr = parse(text, ["x", "y", "z"], {"k": 2.0})
        except ExpressionError as exc:
            expr = None
            assert str(exc)
    assert not caught, f"a warning is printed, a second line: {caught[0].message}"
    if expr is None:
        return
    coords = [torch.linspace(-1.0, 1.0, 5) for _ in range(3)]
    try:
        out = expr(*coords)
    except GradbatchError:
        return
    assert isinstance(out, torch.Tensor) and out.shape == (5,)


# -- job files ----------------------------------------------------------------------------------

KEYS = [
    "name",
    "output",
    "function",
    "params",
    "grid",
    "device",
    "dtype",
    "outputs",
    "tile",
    "compile",
    "compression",
    "pyramid",
    "threads",
    "description",
    "paths",
    "basins",
    "streamlines",
    "render",
    "jobs",
    "x",
    "y",
    "k",
    "<<",
    "starts",
    "optimizer",
    "steps",
    "seeds",
    "builtin",
    "landscape",
    "network",
]
# Places in a job where a value means something: a random value there reaches a validator.
TARGETS = [
    ["params", "k"],
    ["grid", "x"],
    ["grid", "z"],
    ["grid", "value"],
    ["tile"],
    ["threads"],
    ["output"],
    ["name"],
    ["outputs"],
    ["dtype"],
    ["paths", "starts"],
    ["paths", "starts", "random"],
    ["paths", "starts", "grid"],
    ["paths", "steps"],
    ["paths", "optimizer"],
    ["paths", "optimizer", "lr"],
    ["paths", "optimizer", "betas"],
    ["paths", "optimizers"],
    ["basins", "resolution"],
    ["basins", "optimizer", "name"],
    ["basins", "merge_tol"],
    ["streamlines", "seeds"],
    ["streamlines", "seeds", "even"],
    ["streamlines", "max_steps"],
    ["streamlines", "field"],
    ["render", "colormap"],
    ["render", "size"],
    ["render", "layers"],
    ["render", "field"],
    ["render", "contours"],
    ["render", "output"],
    ["function", "builtin"],
    ["function", "callable"],
    ["function", "expression"],
    ["function", "landscape", "data", "synthetic", "n"],
    ["function", "landscape", "data", "synthetic", "x"],
    ["function", "landscape", "data", "file"],
    ["function", "landscape", "chunk"],
    ["function", "network", "model", "hidden"],
    ["function", "network", "checkpoints"],
    ["function", "network", "seed"],
    ["jobs"],
]
NUMBERS = st.one_of(
    st.integers(-3, 10),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1 << 26, 1 << 27, 2**64, 1e39]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.sampled_from(
        [
            "x",
            "x*y",
            "value",
            "float64",
            "adam",
            "mlp",
            "viridis",
            "out.h5",
            "a.png",
            "a\nb",
            "",
            "1e3",
            "\uff58",
            "rosenbrock",
            "m:f",
            "checkpoints",
            "even",
        ]
    ),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(NUMBERS, min_size=1, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=10,
)
BASE = {"function": "x*y", "grid": {"x": [-1, 1, 8], "y": [-1, 1, 8]}}


def _set_path(doc: dict, path: list[str], value: object) -> dict:
    """``doc`` with ``value`` put at ``path`` (missing mappings created, lists or scalars replaced)."""
    out = dict(doc)
    node = out
    for key in path[:-1]:
        child = node.get(key)
        node[key] = dict(child) if isinstance(child, dict) else {}
        node = node[key]
    node[path[-1]] = value
    return out


def _expect_config_or_gradbatch_error(text: str) -> None:
    try:
        jf = parse_config(text, output="never_written.h5")
    except GradbatchError as exc:
        assert str(exc).strip()
        return
    assert jf.jobs


@PROFILE
@given(st.one_of(st.sampled_from(TARGETS), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)), VALUES)
def test_a_valid_job_with_one_random_setting_loads_or_is_a_gradbatch_error(path: list[str], value: object) -> None:
    try:
        text = yaml.safe_dump(_set_path(BASE, path, value), allow_unicode=True)
    except yaml.YAMLError:
        return
    _expect_config_or_gradbatch_error(text)


@settings(PROFILE, max_examples=_DEEP or 100)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_random_documents_load_or_are_a_gradbatch_error(doc: dict) -> None:
    _expect_config_or_gradbatch_error(yaml.safe_dump(doc, allow_unicode=True))


YAMLISH = st.lists(
    st.sampled_from(
        [
            "function: ",
            "grid: ",
            "x: ",
            "jobs:\n",
            "- ",
            "  ",
            "\n",
            "[",
            "]",
            "{",
            "}",
            ", ",
            ": ",
            "&a ",
            "*a",
            "*b",
            "&b ",
            "<<: ",
            "!!str ",
            "!!binary ",
            "!!set ",
            "!!python/object:os.system ",
            "? ",
            "|\n",
            ">\n",
            "'",
            '"',
            "#",
            "---\n",
            "...\n",
            "%YAML 1.1\n",
            "x*y",
            "[-1, 1, 8]",
            "1e3",
            ".nan",
            "-.inf",
            "yes",
            "~",
            "0x1F",
            "2001-13-45",
            "9" * 5000,
            "\t",
            "\x00",
            "\x85",
            "\ufeff",
            "\uff58",
            "\\",
            "\\x",
            "%",
            "@",
            "`",
        ]
    ),
    max_size=40,
).map("".join)


@PROFILE
@given(YAMLISH)
def test_yaml_ish_text_loads_or_is_a_gradbatch_error(text: str) -> None:
    _expect_config_or_gradbatch_error(text)


@settings(PROFILE, max_examples=_DEEP or 50)
@given(st.binary(max_size=300))
def test_any_bytes_as_a_job_file_load_or_are_a_gradbatch_error(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "random.yaml"
    p.write_bytes(data)
    try:
        load_config(p, output=tmp_path / "never_written.h5")
    except GradbatchError:
        pass
    assert sorted(f.name for f in tmp_path.iterdir()) == ["random.yaml"]
