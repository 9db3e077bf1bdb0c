"""Job files: defaults, multi-job files, and errors that name the YAML path, value and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradbatch.config import CompileMode, Compression, Output, load_config, parse_config
from gradbatch.errors import ConfigError, ExpressionError

BASE = "function: 'x*y'\ngrid: {x: [-1, 1, 8], y: [-1, 1, 8]}\n"


def test_defaults() -> None:
    job = parse_config(BASE, name="mine").jobs[0]
    assert job.name == "mine" and job.output == Path("mine.h5")
    assert job.grid.names == ("x", "y") and job.grid.size == 64
    assert (job.device, job.dtype, job.compile, job.compression) == (
        "auto",
        "float32",
        CompileMode.AUTO,
        Compression.LZ4,
    )
    assert job.outputs is None and job.pyramid and job.threads is None


def test_all_settings() -> None:
    job = parse_config(
        BASE + "name: a\noutput: out/a.h5\ndevice: cuda:1\ndtype: float64\n"
        "outputs: [value, magnitude, check]\ntile: [64, 32]\ncompile: on\n"
        "compression: zstd\npyramid: false\nthreads: 2\nparams: {k: 2}\n"
    ).jobs[0]
    assert job.output == Path("out/a.h5") and job.device == "cuda:1" and job.dtype == "float64"
    assert job.outputs == (Output.VALUE, Output.MAGNITUDE, Output.CHECK)
    assert job.tile == (64, 32) and job.compile is CompileMode.ON
    assert job.compression is Compression.ZSTD and not job.pyramid and job.threads == 2
    assert job.params == {"k": 2.0}


def test_builtin_without_grid_uses_its_domain() -> None:
    job = parse_config("function: {builtin: rosenbrock}\n").jobs[0]
    assert [(a.name, a.start, a.stop) for a in job.grid.axes] == [("x", -2.0, 2.0), ("y", -1.0, 3.0)]


def test_several_jobs_share_top_level_settings() -> None:
    jf = parse_config(
        "output: all.h5\ngrid: {x: [0, 1, 4]}\njobs:\n"
        "  - {name: a, function: x}\n  - {name: b, function: 'x^2', dtype: float64}\n",
        name="f",
    )
    assert [j.name for j in jf.jobs] == ["a", "b"]
    assert all(j.output == Path("all.h5") for j in jf.jobs)
    assert [j.dtype for j in jf.jobs] == ["float32", "float64"]
    assert [j.where for j in jf.jobs] == ["jobs[0]", "jobs[1]"]


def test_output_override() -> None:
    jf = parse_config(BASE, output="x/y.h5")
    assert jf.jobs[0].output == Path("x/y.h5")


@pytest.mark.parametrize(
    "text, message",
    [
        ("function: x\ngrid: {x: [0, 1, -4]}", "grid.x[2]: expected a positive integer of at least 2, got -4"),
        ("function: x\ngrid: {x: [0, 1, 2.5]}", "grid.x[2]: expected a positive integer of at least 2, got 2.5"),
        ("function: x\ngrid: {x: [1, 0, 4]}", "grid.x: expected min < max, got min 1 and max 0"),
        ("function: x\ngrid: {x: [0, one, 4]}", "grid.x[1]: expected a finite number, got 'one'"),
        ("function: x\ngrid: {x: [0, 1]}", "grid.x: expected [min, max, points], got [0, 1]"),
        (
            "function: x\ngrid: {a: [0,1,2], b: [0,1,2], c: [0,1,2], d: [0,1,2]}",
            "grid: expected a mapping of 1 to 3 axes",
        ),
        ("function: x\n", "grid: missing"),
        ("grid: {x: [0, 1, 4]}", "function: missing"),
        ("function: x\ngrid: {x: [0, 1, 4]}\ndevice: gpu", "device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("function: x\ngrid: {x: [0, 1, 4]}\ndtype: float16", "dtype: expected float32 or float64, got 'float16'"),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\ntile: 100",
            "tile: expected a power of two (1, 2, 4, ... 512 ...) up to 67,108,864 (2^26), got 100",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\ncompression: lzma",
            "compression: expected one of lz4, zstd, gzip, none, got 'lzma'",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\ncompile: sometimes",
            "compile: expected one of auto, on, off, got 'sometimes'",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\noutputs: [value, hessian]",
            "outputs[1]: unknown output 'hessian'; allowed: value, gradient",
        ),
        ("function: x\ngrid: {x: [0, 1, 4]}\noutputs: [curl]", "outputs: 'curl' is not an output of a scalar function"),
        ("function: [x]\ngrid: {x: [0, 1, 4]}\noutputs: [curl]", "outputs: curl needs a 2D or 3D grid"),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\nthreads: 0",
            "threads: expected auto or a positive integer (1 to 1024), got 0",
        ),  # noqa: E501
        ("function: x\ngrid: {x: [0, 1, 4]}\nspeed: fast", "speed: unknown setting; allowed:"),
        ("function: x\ngrid: {x: [0, 1, 4]}\noutput: result.txt", "output: expected a path ending in .h5"),
        ("function: x\ngrid: {x: [0, 1, 4]}\nname: 'a/b'", "name: expected a job name"),
        ("function: x\ngrid: {x: [0, 1, 4]}\nparams: {k: big}", "params.k: expected a finite number, got 'big'"),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\nparams: {sin: 1}",
            "params.sin: 'sin' is a built-in function or constant name",
        ),
        ("function: x\ngrid: {sin: [0, 1, 4]}", "grid.sin: axis name 'sin' clashes"),
        ("function: {builtin: banana}\n", "function.builtin: unknown built-in 'banana'; allowed: beale"),
        (
            "function: {builtin: himmelblau}\ngrid: {x: [0, 1, 4]}",
            "function.builtin: himmelblau takes 2 axes, the grid has 1 (x)",
        ),
        (
            "function: {callable: 'nocolon'}\ngrid: {x: [0, 1, 4]}",
            "function.callable: expected 'package.module:function'",
        ),
        (
            "function: [x, y]\ngrid: {x: [0, 1, 4]}",
            "function: a vector field needs one expression per axis (1: x), got 2",
        ),
        ("function: 42\ngrid: {x: [0, 1, 4]}", "function: expected an expression string"),
        ("jobs: []", "jobs: expected a non-empty list of jobs"),
        (
            "jobs: [{function: x, grid: {x: [0, 1, 4]}}, {function: x, grid: {x: [0, 1, 0]}}]",
            "jobs[1].grid.x[2]: expected a positive integer",
        ),
        (
            "jobs: [{name: a, function: x, grid: {x: [0,1,4]}}, {name: a, function: x, grid: {x: [0,1,4]}}]",
            "jobs[1].name: job name 'a' is used twice",
        ),
        ("- just\n- a list", "expected a mapping of job settings"),
        ("function: [unclosed", "not valid YAML"),
    ],
)
def test_errors_name_the_path_the_value_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_expression_errors_carry_the_yaml_path_and_column() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_config("function: 'x + y.real'\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}")
    assert str(info.value).startswith("function: attribute access is not allowed: '.real' at column 6")
    with pytest.raises(ExpressionError, match=r"jobs\[0\]\.function: \[1\]: unknown name 'q'"):
        parse_config("jobs: [{function: [x, q], grid: {x: [0, 1, 4], y: [0, 1, 4]}}]")


def test_load_config_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("function: x\ngrid: {x: [0, 1, -4]}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: grid\.x\[2\]"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such job file"):
        load_config(tmp_path / "missing.yaml")


def test_embedded_default_config() -> None:
    jf = load_config(None)
    assert jf.jobs[0].name == "ripple" and jf.jobs[0].output == Path("ripple.h5")
