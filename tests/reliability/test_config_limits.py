"""What can only fail later is refused when the job file is read: names that would collide in the
HDF5 file, bounds the job's dtype cannot hold, render settings, and sizes far beyond any sensible
job (each message says the allowed range). Before, these parsed fine and failed mid-run, after the
``.partial`` file existed (a clashing axis name: h5py's "name already exists" traceback)."""

from __future__ import annotations

import importlib.util

import pytest

from gradbatch.config import VISPY_COLORMAPS, parse_config
from gradbatch.errors import ConfigError

X = "grid: {x: [0, 1, 4]}\n"
XY = "grid: {x: [0, 1, 4], y: [0, 1, 4]}\n"
XYZ = "grid: {x: [0, 1, 4], y: [0, 1, 4], z: [0, 1, 4]}\n"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "\n" not in str(info.value)
    return str(info.value)


# -- names that clash with what the file holds ------------------------------------------------


@pytest.mark.parametrize(
    "axis",
    ["value", "magnitude", "divergence", "curl", "paths", "basins", "streamlines", "landscape", "levels", "_tiles"],
)
def test_axis_names_that_are_field_or_group_names(axis: str) -> None:
    message = _error(f"function: '{axis} + y'\ngrid: {{{axis}: [0, 1, 4], y: [0, 1, 4]}}\n")
    assert message.startswith(
        f"grid.{axis}: axis name {axis!r} clashes with a field or group the output "
        "file holds; choose another (taken: value,"
    )


@pytest.mark.parametrize(
    "grid, axis",
    [
        ("{x: [0, 1, 4], grad_x: [0, 1, 4]}", "grad_x"),
        ("{v_y: [0, 1, 4], y: [0, 1, 4]}", "v_y"),
        ("{x: [0, 1, 4], curl_x: [0, 1, 4]}", "curl_x"),
    ],
)
def test_axis_names_that_are_another_axis_s_field(grid: str, axis: str) -> None:
    assert _error(f"function: '1'\ngrid: {grid}\n").startswith(f"grid.{axis}: axis name {axis!r} clashes")


def test_names_like_fields_of_axes_that_do_not_exist_are_fine() -> None:
    job = parse_config("function: 'grad_q * label'\ngrid: {grad_q: [0, 1, 4], label: [0, 1, 4]}\n").jobs[0]
    assert job.grid.names == ("grad_q", "label")


def test_basins_names_clash_only_with_basins() -> None:
    text = "function: 'steps^2 + y^2'\ngrid: {steps: [-1, 1, 4], y: [-1, 1, 4]}\n"
    assert parse_config(text).jobs[0].grid.names == ("steps", "y")
    assert "grid.steps: axis name 'steps' clashes" in _error(text + "basins: {resolution: 4}\n")


@pytest.mark.parametrize(
    "text, message",
    [
        ('name: "a\\n"\nfunction: x\n' + X, "name: expected a job name of letters, digits"),
        ("name: a/b\nfunction: x\n" + X, "name: expected a job name"),
        ("name: ''\nfunction: x\n" + X, "name: expected a job name"),
        ('function: x\ngrid: {"x\\n": [0, 1, 4]}\n', "key 'x\\n' has character U+000A (LINE FEED) in it"),
        ("function: x\ngrid: {x/y: [0, 1, 4]}\n", "grid: axis names must be identifiers, got 'x/y'"),
        ("function: x\n" + X + 'output: "out\\n.h5"\n', "output: the path 'out\\n.h5' has character U+000A"),
        ("function: x\n" + X + 'output: "a\\0b.h5"\n', "output: the path 'a\\x00b.h5' has character U+0000 (NUL)"),
        ("function: x\n" + X + "output: '  '\n", "output: expected a file path, got '  '"),
        (
            "function: x\n" + XY.replace("x: [0, 1, 4]", "x: [0, 1, 4]") + 'render: {output: "a\\tb.png"}\n',
            "render.output: the path 'a\\tb.png' has character U+0009 (TAB)",
        ),
        (
            "function: x\n" + X + "paths: {starts: [[0]], optimizer: {name: sgd, label: 'a b'}}\n",
            "paths.optimizers[0].label: expected a name of letters",
        ),
        (
            "function: x\n" + X + "paths: {starts: [[0]], optimizer: {name: sgd, label: '\u00e9'}}\n",
            "paths.optimizers[0].label: expected a name of letters",
        ),
    ],
)
def test_names_with_control_characters_slashes_or_nothing(text: str, message: str) -> None:
    assert message in _error(text)


# -- numbers the job's dtype cannot hold -----------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "function: x\ngrid: {x: [0, 1.0e+39, 4]}\n",
            "grid.x: bounds 0 .. 1e+39 overflow float32 (largest 3.403e+38, or use dtype: float64)",
        ),
        (
            "function: x\ndtype: float64\ngrid: {x: [-1.0e+308, 1.0e+308, 4]}\n",
            "grid.x: bounds -1e+308 .. 1e+308 overflow float64",
        ),
        ("function: x\ngrid: {x: [1, 1.00000001, 4]}\n", "closer than float32 can tell apart there"),
        ("function: x\ngrid: {x: [0, 1.0e-44, 100]}\n", "closer than float32 can tell apart there"),
        ("function: x\ngrid: {x: [1, 1, 4]}\n", "grid.x: expected min < max"),
        ("function: x\ngrid: {x: [0, .inf, 4]}\n", "grid.x[1]: expected a finite number, got inf"),
        ("function: x\ngrid: {x: [.nan, 1, 4]}\n", "grid.x[0]: expected a finite number, got nan"),
        (
            "function: x\ngrid: {x: [0, " + "9" * 400 + ", 4]}\n",
            "grid.x[1]: expected a finite number, got <an integer of about 400 digits>",
        ),
        ("function: k*x\nparams: {k: .nan}\n" + X, "params.k: expected a finite number, got nan"),
        ("function: k*x\nparams: {k: -.inf}\n" + X, "params.k: expected a finite number, got -inf"),
        ("function: k*x\nparams: {k: " + "9" * 400 + "}\n" + X, "params.k: expected a finite number"),
        ("function: x\n" + X + "paths: {starts: [[.nan]]}\n", "paths.starts[0]: expected a point of 1 finite numbers"),
        ("function: x\n" + X + "paths: {starts: [[0]], tol: .nan}\n", "paths.tol: expected a number >= 0, got nan"),
        (
            "function: x\n" + X + "paths: {starts: [[0]], optimizer: {name: adam, betas: [.nan, 0.9]}}\n",
            "betas: expected two numbers in [0, 1)",
        ),
        (
            "function: {landscape: {data: {synthetic: {slope: " + "9" * 400 + "}}}}\n" + XY,
            "function.landscape.data.synthetic.slope: expected a finite number",
        ),
    ],
)
def test_non_finite_and_overflowing_numbers(text: str, message: str) -> None:
    assert message in _error(text)


def test_bounds_a_float64_job_can_hold() -> None:
    job = parse_config("function: x\ndtype: float64\ngrid: {x: [0, 1.0e+39, 4]}\n").jobs[0]
    assert job.grid.axes[0].stop == 1e39
    assert parse_config("function: x\ndtype: float64\ngrid: {x: [1, 1.00000001, 4]}\n").jobs


# -- streamlines ------------------------------------------------------------------------------


def test_even_seeding_is_refused_on_a_3d_grid() -> None:
    assert _error("function: x*y*z\n" + XYZ + "streamlines: {seeds: {even: 1}}\n") == (
        "streamlines.seeds.even: evenly spaced seeding is for 2D grids, this one has 3 axes; use grid: or random:"
    )


@pytest.mark.parametrize("grid", [X, XYZ])
def test_the_default_even_seeding_needs_seeds_off_2d(grid: str) -> None:
    assert _error("function: '1'\n" + grid + "streamlines: {}\n").startswith(
        "streamlines.seeds: missing; evenly spaced seeding (the default) is for 2D grids"
    )


def test_seeds_given_on_a_3d_grid_are_fine() -> None:
    job = parse_config("function: x*y*z\n" + XYZ + "streamlines: {seeds: {random: 10}}\n").jobs[0]
    assert job.streamlines is not None and job.streamlines.seeds.random == 10


# -- render settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "render, message",
    [
        ("{colormap: jet2}", "render.colormap: unknown colormap 'jet2'; allowed: GrBu, GrBu_d"),
        ("{colormap: [viridis]}", "render.colormap: unknown colormap ['viridis']"),
        ("{contours: 0}", "render.contours: expected a number of contour lines from 1 to 1000, got 0"),
        ("{contours: 100000}", "render.contours: expected a number of contour lines from 1 to 1000, got 100000"),
        ("{layers: [image, heat]}", "render.layers: expected a list of image, contours"),
        ("{scale: cubic}", "render.scale: expected auto, linear, symmetric or log, got 'cubic'"),
        ("{field: {a: 1}}", "render.field: expected a field name"),
        ("{size: [100000, 10]}", "render.size: expected [width, height] in pixels (16 to 16384)"),
    ],
)
def test_render_settings(render: str, message: str) -> None:
    assert message in _error("function: x*y\n" + XY + f"render: {render}\n")


def test_render_settings_that_work() -> None:
    r = (
        parse_config("function: x*y\n" + XY + "render: {colormap: hot, contours: 20, layers: [image, contours]}\n")
        .jobs[0]
        .render
    )
    assert r is not None and (r.colormap, r.contours, r.layers) == ("hot", 20, ("image", "contours"))


@pytest.mark.skipif(importlib.util.find_spec("vispy") is None, reason="needs vispy")
def test_the_colormap_list_is_vispy_s() -> None:
    from vispy.color import get_colormaps

    assert set(VISPY_COLORMAPS) == set(get_colormaps())


# -- resources: absurd sizes, with the allowed range ----------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "function: x\n" + X + "tile: 134217728\n",
            "tile: expected a power of two (1, 2, 4, ... 512 ...) up to 67,108,864 (2^26), got 134217728",
        ),
        (
            "function: x*y\ngrid: {x: [0, 1, 20000], y: [0, 1, 20000]}\ntile: [16384, 8192]\n",
            "tile: tiles of 16384 x 8192 are 134,217,728 points; at most 67,108,864 (2^26) are allowed",
        ),
        ("function: x\n" + X + "threads: 0\n", "threads: expected auto or a positive integer (1 to 1024), got 0"),
        (
            "function: x\n" + X + "threads: 100000\n",
            "threads: expected auto or a positive integer (1 to 1024), got 100000",
        ),
        (
            "function: x\ngrid: {x: [0, 1, 8589934592]}\n",
            "grid.x[2]: 8,589,934,592 points on one axis; at most 4,294,967,296 (2^32)",
        ),
        (
            "function: x\ndtype: float64\ngrid: {x: [0, 1.0e+9, 16777216], y: [0, 1.0e+9, 16777216], z: [0, "
            "1.0e+9, 16777216]}\n",
            "grid: 4.72e+21 points in all; at most 281,474,976,710,656 (2^48) are allowed",
        ),
        (
            "function: x*y\n" + XY + "basins: {resolution: [8192, 4096]}\n",
            "basins.resolution: 8192 x 4096 = 3.36e+07 start points; at most 16,777,216 (2^24) are allowed",
        ),
        (
            "function: x*y\n" + XY + "basins: {steps: 100000000}\n",
            "basins.steps: expected an integer of at most 10,000,000, got 100000000",
        ),
        ("function: x*y\n" + XY + "basins: {batch: 1000000000}\n", "basins.batch: expected an integer of at most"),
        (
            "function: x\n" + X + "paths: {starts: {random: 100000000}}\n",
            "paths.starts.random: expected an integer of at most 16,777,216",
        ),
        (
            "function: x\n" + X + "paths: {starts: {random: 1000}, steps: 1000000}\n",
            "paths: 1,000 starts x 1 optimiser(s) x 1,000,001 positions = 1e+09 path points to store; at most "
            "134,217,728 (2^27)",
        ),
        (
            "function: x\n" + X + "paths: {starts: {random: 2, seed: 4294967296}}\n",
            "paths.starts.seed: expected a seed below 2^32",
        ),
        (
            "function: x*y\n" + XY + "streamlines: {seeds: {random: 2000000}}\n",
            "streamlines.seeds: 2,000,000 seeds x 2,001 points per line; at most 1,048,576 (2^20) seeds",
        ),
        ("function: x*y\n" + XY + "streamlines: {seeds: {grid: 1000}}\n", "streamlines.seeds: 1,000,000 seeds x 2,001"),
        (
            "function: x*y\n" + XY + "streamlines: {seeds: {even: 1000}}\n",
            "streamlines.seeds.even: expected a density up to 100 (3000 x 3000 cells), got 1000.0",
        ),
        (
            "function: x*y\n" + XY + "streamlines: {max_steps: 1000000000}\n",
            "streamlines.max_steps: expected an integer of at most 10,000,000",
        ),
        (
            "function: {landscape: {data: {synthetic: {n: 100000000}}}}\n" + XY,
            "function.landscape.data.synthetic.n: expected an integer of at most 16,777,216",
        ),
        (
            "function: {landscape: {data: {synthetic: {n: 1000000}}}}\ngrid: {w: [0, 1, 4096], b: [0, 1, 4096]}\n",
            "function.landscape: 16,777,216 grid points x 1,000,000 data rows = 1.68e+13 loss terms; at most 1.1e+12",
        ),
        (
            "function: {landscape: {chunk: 1000000000}}\n" + XY,
            "function.landscape.chunk: expected an integer of at most",
        ),
        (
            "function: {landscape: {data: {synthetic: {seed: 4294967296}}}}\n" + XY,
            "synthetic.seed: expected an integer of at most 4,294,967,295",
        ),
        (
            "function: {network: {}}\ngrid: {a: [0, 1, 8192], b: [0, 1, 4096]}\n",
            "function.network: 33,554,432 grid points, each a loss over the whole dataset; at most 16,777,216 (2^24)",
        ),
        (
            "function: {network: {model: {builtin: mlp, hidden: [100000]}}}\n" + XY,
            "function.network.model.hidden: expected a list of layer widths, e.g. [64, 64] (1 to 16 layers of "
            "1 to 4096)",
        ),
        (
            "function: {network: {model: {builtin: mlp, hidden: [" + ", ".join(["8"] * 17) + "]}}}\n" + XY,
            "function.network.model.hidden: expected a list of layer widths",
        ),
        (
            "function: {network: {model: {builtin: mlp, samples: 100000000}}}\n" + XY,
            "function.network.model.samples: expected an integer of at most 1,048,576",
        ),
        (
            "function: {network: {model: {builtin: mlp, steps: 100000000}}}\n" + XY,
            "function.network.model.steps: expected an integer of at most 1,000,000",
        ),
        (
            "function: {network: {directions: checkpoints, checkpoints: [0, 15, 300]}}\ngrid: {a: [0, 1, 4], "
            "b: [0, 1, 4]}\n",
            "function.network.checkpoints[1]: no weights are recorded at training step 15; the built-in MLP records "
            "every 10 steps from 0 to 300 and step 300",
        ),
    ],
)
def test_absurd_sizes_are_refused_with_the_allowed_range(text: str, message: str) -> None:
    assert message in _error(text)


def test_a_large_tile_on_a_small_grid_is_fine() -> None:
    # a tile side never exceeds the next power of two above its axis, so this is 4 x 4 points
    assert parse_config("function: x*y\n" + XY + "tile: [67108864, 67108864]\n").jobs[0].tile == (1 << 26, 1 << 26)


def test_recorded_checkpoint_steps_are_fine() -> None:
    job = parse_config(
        "function: {network: {directions: checkpoints, checkpoints: [0, 150, 300]}}\n"
        "grid: {a: [0, 1, 4], b: [0, 1, 4]}\n"
    ).jobs[0]
    assert job.function.checkpoints == (0, 150, 300)  # type: ignore[union-attr]
