"""The config layer imports no torch (nor h5py or numpy): validating a job file, in a notebook or
by ``gradbatch run``, is quick and loads no GPU libraries."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradbatch.config import (
    Choice,
    DType,
    Layer,
    NetworkSource,
    Optimizer,
    Scale,
    StreamField,
    parse_config,
    parse_expression,
)
from gradbatch.config.axes import spacing
from gradbatch.errors import ConfigError, ExpressionError
from gradbatch.expr import parse

EVERY_SECTION = """\
jobs:
  - name: expr
    function: 'sin(x) * y**2 + k'
    params: {k: 1.5}
    grid: {x: [-2, 2, 33], y: [-2, 2, 33]}
    paths: {starts: {random: 4}, optimizers: [adam, {name: sgd, lr: 0.01}]}
    basins: {resolution: 8, optimizer: {name: momentum, lr: 0.01}}
    streamlines: {seeds: {grid: 3}, method: rk45}
    render: {layers: [image, paths], scale: symmetric}
  - name: vec
    function: ['-y', 'x']
    grid: {x: [-1, 1, 9], y: [-1, 1, 9]}
    streamlines: {seeds: [[0.5, 0]]}
  - name: rosen
    function: {builtin: rosenbrock}
  - name: user
    function: {callable: 'mymod:f'}
    grid: {x: [-1, 1, 9]}
  - name: data
    function: {landscape: {model: logistic, loss: cross_entropy}}
    grid: {a: [-3, 3, 9], b: [-3, 3, 9]}
  - name: net
    function: {network: {model: {builtin: mlp, steps: 20, record_every: 10}, directions: pca}}
    grid: {a: [-1, 1, 9], b: [-1, 1, 9]}
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_load_config_imports_no_torch_h5py_or_numpy(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(EVERY_SECTION)
    proc = _python(
        "import json, sys, gradbatch\n"
        "jf = gradbatch.load_config('all.yaml')\n"
        "gradbatch.parse_config(open('all.yaml').read())\n"
        "print(json.dumps([len(jf.jobs), sorted(m for m in sys.modules\n"
        "                  if m.split('.')[0] in ('torch', 'h5py', 'numpy', 'vispy'))]))\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    count, heavy = json.loads(proc.stdout)
    assert count == 6
    assert heavy == []


def test_a_bad_job_file_is_refused_without_importing_torch(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("function: 'x**2 + q'\ngrid: {x: [-1, 1, 5]}\n")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gradbatch", "run", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert lines == ["ExpressionError: bad.yaml: function: unknown name 'q' (allowed names: x, pi, e): 'q' at column 8"]
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "gradbatch.config" in imported  # the hook saw the imports
    assert not {m for m in imported if m.split(".")[0] in ("torch", "h5py")}


def test_the_importtime_check_would_see_torch(tmp_path: Path) -> None:
    """The check above can fail: a good job file imports torch (to run it)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gradbatch.expr"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "torch" in imported


# -- choices are enums that read as their text ----------------------------------------------------


def test_choices_are_enums_that_print_and_compare_as_their_text() -> None:
    job = parse_config(EVERY_SECTION).jobs[0]
    assert job.paths is not None and job.streamlines is not None and job.render is not None
    opt = job.paths.optimizers[0]
    assert opt.name is Optimizer.ADAM and opt.name == "adam"
    assert f"{opt.name}" == str(opt.name) == "adam" and f"{opt.name:>6}" == "  adam"
    assert json.dumps({"o": opt.name}) == '{"o": "adam"}'
    assert job.dtype is DType.FLOAT32 and f"({job.dtype})" == "(float32)"
    assert job.streamlines.field is StreamField.DESCENT
    assert job.render.layers == (Layer.IMAGE, Layer.PATHS) and job.render.scale is Scale.SYMMETRIC
    assert np.dtype(job.dtype) == np.float32
    assert all(issubclass(c, Choice) and issubclass(c, str) for c in (Optimizer, DType, Layer, Scale))
    # a config's repr is stored (the network landscape's model attribute): as with plain strings
    net = parse_config(EVERY_SECTION).jobs[5].function
    assert isinstance(net, NetworkSource)
    assert repr(net.model).startswith("MLPConfig(dataset='moons', ") and repr(Optimizer.SGD) == "'sgd'"


# -- unknown keys: a hint for a likely typo ----------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "function: x\ngrid: {x: [0, 1, 4]}\noutput_: a.h5\n",
            "output_: unknown setting; allowed: basins, compile, compression, description, device, dtype, "
            "function, grid, "
            "name, output, outputs, params, paths, pyramid, render, streamlines, threads, tile; did you mean 'output'?",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\nspeed: fast\n",
            "speed: unknown setting; allowed: basins, compile, compression, description, device, dtype, "
            "function, grid, "
            "name, output, outputs, params, paths, pyramid, render, streamlines, threads, tile",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4]}\npaths: {starts: [[0]], step: 10}\n",
            "paths.step: unknown setting; allowed: ascent, optimizer, optimizers, starts, steps, tol; "
            "did you mean 'steps'?",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}\nrender: {colourmap: hot}\n",
            "render.colourmap: unknown setting; allowed: aspect, clim, colorbar, colormap, contours, descent, dpi, "
            "field, layers, legend, output, robust, scale, size, surface, theme, title; did you mean 'colormap'?",
        ),
        (
            "function: {landscape: {modle: linear}}\ngrid: {a: [0, 1, 4], b: [0, 1, 4]}\n",
            "function.landscape.modle: unknown setting; allowed: chunk, data, loss, model; did you mean 'model'?",
        ),
    ],
)
def test_unknown_keys_name_the_closest_setting(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert str(info.value) == message


# -- expressions: parsed without torch, compiled by expr ----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x**2 + y",
        "sin(x) if x > 0 else -y",
        "min(x, y, 1) + where(x < y, x, y)",
        "not (x > 0 and y < 1) or x == y",
        "+x - -y",
        "2^3^x",
        "clip(x, -k, k)",
    ],
)
def test_the_tree_is_what_expr_computes(text: str) -> None:
    import torch

    parsed = parse_expression(text, ["x", "y"], {"k": 0.5})
    expr = parse(text, ["x", "y"], {"k": 0.5})
    assert (parsed.text, parsed.variables, parsed.used) == (expr.text, expr.variables, expr.used)
    x, y = torch.linspace(-2, 2, 7, dtype=torch.float64), torch.linspace(1, -1, 7, dtype=torch.float64)
    assert expr(x, y).shape == (7,)


@pytest.mark.parametrize(
    "text",
    [
        "x.real",
        "y",
        "sin(x, x)",
        "x[0]",
        "lambda: 1",
        "f(x)",
        "'a'",
        "sin",
        "x @ x",
        "(" * 120 + "x" + ")" * 120,
        "ｘ",
        "x +",
        "~x",
        "x is x",
        "sin(x=1)",
    ],
)
def test_torch_free_parser_and_expr_raise_the_same_message(text: str) -> None:
    with pytest.raises(ExpressionError) as a:
        parse_expression(text, ["x"])
    with pytest.raises(ExpressionError) as b:
        parse(text, ["x"])
    assert str(a.value) == str(b.value)


# -- numpy's float spacing, without numpy ----------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spacing_matches_numpy(dtype: str) -> None:
    rng = np.random.default_rng(0)
    largest = float(np.finfo(dtype).max)
    values = [
        0.0,
        1e-45,
        1e-40,
        1.1754943508222875e-38,
        5e-324,
        1.0,
        2.0,
        0.1,
        1e30,
        largest,
        float(np.nextafter(np.dtype(dtype).type(largest), 0)),
    ]
    values += list(10.0 ** rng.uniform(-45, 38, 2000)) + list(rng.uniform(0, 10, 200))
    for v in values:
        with np.errstate(all="ignore"):
            want = float(np.spacing(np.dtype(dtype).type(v)))
        assert spacing(v, dtype) == want or (math.isinf(want) and math.isinf(spacing(v, dtype))), v
