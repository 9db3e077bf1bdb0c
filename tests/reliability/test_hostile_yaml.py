"""Hostile and mistaken job files: each ends in one ConfigError line, quickly, before any output
exists. The CLI tests run ``gradbatch run`` in a subprocess (with a timeout: an alias bomb used
to take 47 s and 3.3 GB) and check stderr, the exit code and the output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradbatch.config import MAX_FILE_BYTES, load_config, parse_config, show
from gradbatch.errors import ConfigError, ExpressionError
from gradbatch.expr import parse

GOOD = "function: x\ngrid: {x: [0, 1, 4]}\n"


def alias_bomb(levels: int = 9) -> str:
    """A 'billion laughs' job file: level k is nine aliases of level k-1 (9^9 strings), given as
    the function so that the error message would print it."""
    items = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]" for k in range(1, levels)]
    return (
        "description:\n" + "".join(f"  - {i}\n" for i in items) + f"function: *a{levels - 1}\ngrid: {{x: [0, 1, 4]}}\n"
    )


HOSTILE = {
    "alias_bomb": alias_bomb(),
    "deep_lists": GOOD + "description: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "deep_mappings": GOOD + "description: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n",
    "duplicate_key": "function: x\ngrid: {x: [0, 1, 4]}\nfunction: x**2\n",
    "fullwidth_x": "function: '\uff58**2'\ngrid: {x: [0, 1, 4]}\n",
    "clashing_axis": "function: value\ngrid: {value: [0, 1, 4]}\n",
}


def _parse_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return str(info.value)


# -- the loader ------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [7, 9, 30])
def test_an_alias_bomb_is_refused_without_expanding_it(levels: int) -> None:
    message = _parse_error(alias_bomb(levels))
    assert "aliases (*name) repeat more than 100,000 values" in message and len(message) < 200


def test_aliases_the_project_uses_still_load() -> None:
    jf = parse_config(
        "base: &g {x: [0, 1, 4]}\njobs:\n  - {name: a, function: x, grid: *g}\n"
        "  - {name: b, function: 'x^2', grid: *g}\n".replace("base:", "description:")
    )
    assert [j.grid.names for j in jf.jobs] == [("x",), ("x",)]


def test_a_recursive_alias_is_refused() -> None:
    assert "refers to a value that contains it" in _parse_error(GOOD + "description: &a [1, *a]\n")


def test_aliases_cannot_nest_past_the_depth_limit() -> None:
    chain = "".join(f"  - &a{k} [*a{k - 1}]\n" for k in range(1, 80))
    message = _parse_error(GOOD + "description:\n  - &a0 [1]\n" + chain)
    assert "nest this value more than 50 levels deep" in message


@pytest.mark.parametrize("key", ["deep_lists", "deep_mappings"])
def test_deep_nesting_is_one_config_error_not_a_recursion_error(key: str) -> None:
    message = _parse_error(HOSTILE[key])
    assert "line 3" in message and "nested more than 50 levels deep" in message and "\n" not in message


def test_a_duplicate_key_names_the_key_and_both_lines() -> None:
    message = _parse_error(HOSTILE["duplicate_key"])
    assert message == (
        "line 3: key 'function' appears twice in one mapping (first at line 1); YAML would silently keep only the last"
    )


def test_a_duplicate_axis_is_a_duplicate_key() -> None:
    assert "key 'x' appears twice" in _parse_error("function: x\ngrid: {x: [0, 1, 4], x: [0, 2, 4]}\n")


def test_merge_keys_may_be_overridden() -> None:
    job = parse_config(
        "description: &d {function: x, dtype: float64}\n<<: *d\ndtype: float32\ngrid: {x: [0, 1, 4]}\n"
    ).jobs[0]
    assert job.dtype == "float32"


@pytest.mark.parametrize(
    "text, message",
    [
        ("yes: 1\n" + GOOD, "line 1: mapping keys must be text, got True (quote it"),
        ("1: 1\n" + GOOD, "line 1: mapping keys must be text, got 1"),
        ("? [a]\n: 1\n" + GOOD, "line 1: mapping keys must be text, got a list"),
        ('"a\\nb": 1\n' + GOOD, "line 1: key 'a\\nb' has character U+000A (LINE FEED) in it"),
        ('"": 1\n' + GOOD, "line 1: key '' is empty"),
        ("a" * 101 + ": 1\n" + GOOD, "characters long; at most 100 are allowed"),
    ],
)
def test_keys_are_short_printable_text(text: str, message: str) -> None:
    assert message in _parse_error(text)


def test_yaml_errors_are_one_line_with_the_line_number() -> None:
    message = _parse_error(GOOD + "grid: [unclosed\n")
    assert message.startswith("not valid YAML: line 4, column 1: expected ',' or ']'") and "\n" not in message


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 2001-13-45\n", "cannot read '2001-13-45': month must be in 1..12"),
        ("a: " + "1" * 5000 + "\n", "Exceeds the limit (4300 digits) for integer string conversion"),
        ("a: \x01\n", "character #x0001 at offset 3 is not allowed in YAML"),
        ("a: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
    ],
)
def test_values_python_cannot_make_are_config_errors(text: str, message: str) -> None:
    got = _parse_error(text)
    assert got.startswith("not valid YAML: ") and message in got and "\n" not in got


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_says_so(text: str) -> None:
    assert _parse_error(text).startswith("the job file is empty")


@pytest.mark.parametrize("text, shown", [("- a\n- b\n", "['a', 'b']"), ("x**2\n", "'x**2'"), ("42\n", "42")])
def test_a_top_level_list_or_scalar_is_refused(text: str, shown: str) -> None:
    assert _parse_error(text) == f"expected a mapping of job settings (function:, grid:, ...), got {shown}"


def test_1e3_is_a_number_as_in_yaml_1_2() -> None:
    job = parse_config(
        "function: x\ngrid: {x: [-1e3, 1.5E+3, 11]}\nparams: {k: 2e-3}\n"
        "paths: {starts: [[0, 0]], optimizer: {name: sgd, lr: 1e-2}}\n".replace("[[0, 0]]", "[[0]]")
    ).jobs[0]
    assert (job.grid.axes[0].start, job.grid.axes[0].stop) == (-1000.0, 1500.0)
    assert job.params == {"k": 0.002}
    assert job.paths is not None and job.paths.optimizers[0].lr == 0.01


# -- files ----------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_text(GOOD + "description: '" + "a" * MAX_FILE_BYTES + "'\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: job file is larger than 1,048,576 bytes \(1 MiB\)"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"job file is 1,048,6\d\d bytes; at most 1,048,576"):
        parse_config(p.read_text())


def test_an_endless_file_is_read_only_up_to_the_limit() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ConfigError, match="larger than 1,048,576 bytes"):
        load_config("/dev/zero")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"function: x\n\x00\x01\x02binary", "a binary file (it holds NUL bytes at offset 12), not a YAML job file"),
        (b"function: '\xff'\n", "not UTF-8 text (byte 0xff at offset 11); save the job file as UTF-8"),
        (b"\xff\xfef\x00u\x00", "a binary file (it holds NUL bytes at offset 3), not a YAML job file"),  # UTF-16
    ],
)
def test_binary_and_non_utf8_files(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value) == f"{p}: {message}"


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_config(p).jobs[0].grid.names == ("x",)


def test_a_directory_is_not_a_job_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read job file"):
        load_config(tmp_path)


# -- messages never print a huge value -------------------------------------------------------


def test_show_is_bounded_and_does_not_walk_what_it_does_not_print() -> None:
    shared: list = ["lol"] * 9
    for _ in range(30):  # 9^30 strings if expanded
        shared = [shared] * 9
    s = show(shared)
    assert len(s) <= 60 and s.startswith("[[[[")
    assert show("x" * 10_000) == repr("x" * 56)[:57] + "..."
    assert show(10**5000).startswith("<an integer of about 5,000 digits")
    assert show(None) == "nothing" and show({"a": [1, 2]}) == "{'a': [1, 2]}"


def test_a_long_value_is_shortened_in_the_message() -> None:
    message = _parse_error("function: x\ngrid: {x: [0, 1, '" + "9" * 100_000 + "']}\n")
    assert len(message) < 150


# -- expressions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scalar, message",
    [
        (
            "'\uff58**2'",
            "character U+FF58 (FULLWIDTH LATIN SMALL LETTER X) at column 1 is not allowed: "
            "expressions are ASCII text (Python would silently read it as 'x')",
        ),
        ("'\U0001d465 + 1'", "character U+1D465 (MATHEMATICAL ITALIC SMALL X) at column 1 is not allowed"),
        (
            "'x \u2212 1'",
            "character U+2212 (MINUS SIGN) at column 3 is not allowed: expressions are ASCII text; write '-'",
        ),
        ("'x\u00b2'", "character U+00B2 (SUPERSCRIPT TWO) at column 2 is not allowed"),
        ('"x +\\f1"', "character U+000C (a control character) at column 4 is not allowed"),
    ],
)
def test_look_alike_characters_are_refused_not_normalised(scalar: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_config(f"function: {scalar}\ngrid: {{x: [0, 1, 4]}}\n")
    assert str(info.value).startswith(f"function: {message}")
    assert "\n" not in str(info.value)


def test_the_expression_error_carries_the_column() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("x + \uff59", ["x", "y"])
    assert info.value.column == 5


# -- the CLI: one line, exit 2, nothing written ----------------------------------------------

CLI_CASES = ("alias_bomb", "deep_lists", "duplicate_key", "fullwidth_x", "clashing_axis")

# Runs `gradbatch run -q hostile.yaml` through the CLI's main() in each folder given, in one process
# (a process pays seconds for importing torch); prints exit code and stderr per folder as JSON.
_DRIVER = """
import contextlib, io, json, os, sys
from gradbatch.cli import main
out = {}
for folder in sys.argv[1:]:
    os.chdir(folder)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "-q", "hostile.yaml"])
    out[folder] = [code, err.getvalue()]
print(json.dumps(out))
"""


def _check_cli_result(name: str, folder: Path, code: int, stderr: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, f"{name}: exit {code}, stderr:\n{stderr[-2000:]}"
    prefix = "ExpressionError: " if name == "fullwidth_x" else "ConfigError: "  # ExpressionError < ConfigError
    assert lines[0].startswith(prefix + "hostile.yaml: "), f"{name}: {lines[0]}"
    assert sorted(p.name for p in folder.iterdir()) == ["hostile.yaml"], name


def _folders(tmp_path: Path, names: tuple[str, ...]) -> dict[str, Path]:
    folders = {}
    for name in names:
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "hostile.yaml").write_text(HOSTILE[name], encoding="utf-8")
    return folders


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_the_cli_on_hostile_files(tmp_path: Path) -> None:
    folders = _folders(tmp_path, CLI_CASES)
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, *map(str, folders.values())],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    for name, folder in folders.items():
        _check_cli_result(name, folder, *results[str(folder)])


def test_gradbatch_run_on_an_alias_bomb_in_its_own_process(tmp_path: Path) -> None:
    folder = _folders(tmp_path, ("alias_bomb",))["alias_bomb"]
    proc = subprocess.run(
        [sys.executable, "-m", "gradbatch", "run", "-q", "hostile.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    _check_cli_result("alias_bomb", folder, proc.returncode, proc.stderr)
