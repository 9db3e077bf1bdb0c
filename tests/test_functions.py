"""Gradients through the whole engine against hand-derived float64 references.

Each reference below is derived by hand, written in numpy and independent of torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.engine import value_and_jacobian
from gradbatch.errors import ConfigError, FunctionError
from gradbatch.functions import BUILTINS, from_builtin

from .conftest import compute_fields, job_from

PI = np.pi
Grad = Callable[..., tuple[np.ndarray, ...]]


def _gp(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = x + y + 1
    p = 19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2
    a = 1 + s**2 * p
    d = 2 * x - 3 * y
    q = 18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2
    b = 30 + d**2 * q
    dp = -14 + 6 * x + 6 * y  # dp/dx == dp/dy
    da = 2 * s * p + s**2 * dp
    dbx = 4 * d * q + d**2 * (-32 + 24 * x - 36 * y)
    dby = -6 * d * q + d**2 * (48 - 36 * x + 54 * y)
    return da * b + a * dbx, da * b + a * dby


def _beale(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    return (2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1), 2 * a * x + 4 * b * x * y + 6 * c * x * y**2)


def _easom(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.exp(-((x - PI) ** 2 + (y - PI) ** 2))
    return (
        e * np.cos(y) * (np.sin(x) + 2 * (x - PI) * np.cos(x)),
        e * np.cos(x) * (np.sin(y) + 2 * (y - PI) * np.cos(y)),
    )


def _ripple(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.sqrt((0.75 * x) ** 2 + y**2 + 0.01)
    return np.cos(r) * 0.5625 * x / r, np.cos(r) * y / r


# name -> (value, gradient) references in float64
REFERENCES: dict[str, tuple[Callable[..., np.ndarray], Grad]] = {
    "rosenbrock": (
        lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        lambda x, y: (-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)),
    ),
    "himmelblau": (
        lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        lambda x, y: (4 * x * (x**2 + y - 11) + 2 * (x + y**2 - 7), 2 * (x**2 + y - 11) + 4 * y * (x + y**2 - 7)),
    ),
    "beale": (lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2, _beale),
    "booth": (
        lambda x, y: (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
        lambda x, y: (2 * (x + 2 * y - 7) + 4 * (2 * x + y - 5), 4 * (x + 2 * y - 7) + 2 * (2 * x + y - 5)),
    ),
    "matyas": (
        lambda x, y: 0.26 * (x**2 + y**2) - 0.48 * x * y,
        lambda x, y: (0.52 * x - 0.48 * y, 0.52 * y - 0.48 * x),
    ),
    "goldstein_price": (
        lambda x, y: (
            (1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2))
            * (30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2))
        ),
        _gp,
    ),
    "easom": (lambda x, y: -np.cos(x) * np.cos(y) * np.exp(-((x - PI) ** 2 + (y - PI) ** 2)), _easom),
    "mccormick": (
        lambda x, y: np.sin(x + y) + (x - y) ** 2 - 1.5 * x + 2.5 * y + 1,
        lambda x, y: (np.cos(x + y) + 2 * (x - y) - 1.5, np.cos(x + y) - 2 * (x - y) + 2.5),
    ),
    "ripple": (lambda x, y: np.sin(np.sqrt((0.75 * x) ** 2 + y**2 + 0.01)), _ripple),
    "sin_xy": (lambda x, y: np.sin(x * y), lambda x, y: (y * np.cos(x * y), x * np.cos(x * y))),
    "saddle": (lambda x, y: x * y, lambda x, y: (y, x)),
    "cubic": (lambda x: x**3 + 2 * x**2 - x, lambda x: (3 * x**2 + 4 * x - 1,)),
    "xyz": (
        lambda x, y, z: x**2 + y**2 + np.exp(z) + x * y * z,
        lambda x, y, z: (2 * x + y * z, 2 * y + x * z, np.exp(z) + x * y),
    ),
    "sphere": (lambda *v: sum(c**2 for c in v), lambda *v: tuple(2 * c for c in v)),
    "rastrigin": (
        lambda *v: 10 * len(v) + sum(c**2 - 10 * np.cos(2 * PI * c) for c in v),
        lambda *v: tuple(2 * c + 20 * PI * np.sin(2 * PI * c) for c in v),
    ),
}


def _cases() -> list[tuple[str, int]]:
    out = []
    for name, b in BUILTINS.items():
        for n in b.dims:
            out.append((name, n))
    return out


def test_every_builtin_has_a_reference() -> None:
    assert set(REFERENCES) == set(BUILTINS)


def _grid_yaml(name: str, n: int, points: int, dtype: str = "float64") -> str:
    b = BUILTINS[name]
    _, names = b.template(n)
    axes = ", ".join(f"{v}: [{lo}, {hi}, {points}]" for v, (lo, hi) in zip(names, b.domain(n)))
    return f"function: {{builtin: {name}}}\ngrid: {{{axes}}}\ndtype: {dtype}\noutputs: [value, gradient]\ntile: 16\n"


def _mesh(name: str, n: int, points: int) -> list[np.ndarray]:
    """Coordinates in array order (axes reversed): what value[j, i] is evaluated at."""
    b = BUILTINS[name]
    axes = [np.linspace(lo, hi, points) for lo, hi in b.domain(n)]
    mesh = np.meshgrid(*axes, indexing="ij")  # mesh[k][i, j, ...] = axis k at (i, j, ...)
    return [m.transpose() for m in mesh]  # to array order (..., y, x)


@pytest.mark.parametrize("name, n", _cases())
def test_builtin_gradients_match_hand_derivations(name: str, n: int) -> None:
    points = {1: 101, 2: 37, 3: 13}[n]  # 37 and 13: not multiples of the 16-point tile
    fields = compute_fields(_grid_yaml(name, n, points))
    coords = _mesh(name, n, points)
    value, grad = REFERENCES[name]
    np.testing.assert_allclose(fields["value"], value(*coords), rtol=1e-12, atol=1e-12)
    _, names = BUILTINS[name].template(n)
    for axis, g in zip(names, grad(*coords)):
        scale = max(1.0, np.abs(g).max())
        np.testing.assert_allclose(
            fields[f"grad_{axis}"], g, rtol=1e-11, atol=1e-12 * scale, err_msg=f"{name} grad_{axis}"
        )


@pytest.mark.parametrize("name", ["himmelblau", "ripple", "goldstein_price", "rastrigin"])
def test_float32_gradients_are_close_to_float64(name: str) -> None:
    f32 = compute_fields(_grid_yaml(name, 2, 64, "float32"))
    coords = _mesh(name, 2, 64)
    coords32 = [c.astype(np.float32).astype(np.float64) for c in coords]  # the points float32 saw
    for axis, g in zip(("x", "y"), REFERENCES[name][1](*coords32)):
        scale = np.abs(g).max()
        np.testing.assert_allclose(f32[f"grad_{axis}"], g, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("name", [n for n, b in BUILTINS.items() if b.minima(2 if 2 in b.dims else b.dims[0])])
def test_known_minima_have_zero_gradient_and_their_value(name: str) -> None:
    b = BUILTINS[name]
    n = 2 if 2 in b.dims else b.dims[0]
    ff = from_builtin(name, n, {})
    minima = b.minima(n)
    coords = tuple(torch.tensor([m.point[k] for m in minima], dtype=torch.float64) for k in range(n))
    values, jac = value_and_jacobian(ff, coords)
    for i, m in enumerate(minima):
        assert values[0][i].item() == pytest.approx(m.value, abs=1e-9)
        for g in jac[0]:
            assert abs(g[i].item()) < 1e-6, (name, m.point, [float(t[i]) for t in jac[0]])


def test_function_of_three_variables_and_the_seed_expression() -> None:
    fields = compute_fields(
        "function: 'x**2 + y**2 + exp(z) + x*y*z'\n"
        "grid: {x: [-1, 1, 9], y: [-2, 2, 7], z: [0, 1, 5]}\ndtype: float64\n"
        "outputs: [value, gradient, magnitude]\n"
    )
    z, y, x = np.meshgrid(np.linspace(0, 1, 5), np.linspace(-2, 2, 7), np.linspace(-1, 1, 9), indexing="ij")
    assert fields["value"].shape == (5, 7, 9)  # (z, y, x)
    gx, gy, gz = 2 * x + y * z, 2 * y + x * z, np.exp(z) + x * y
    np.testing.assert_allclose(fields["grad_x"], gx)
    np.testing.assert_allclose(fields["grad_y"], gy)
    np.testing.assert_allclose(fields["grad_z"], gz)
    np.testing.assert_allclose(fields["magnitude"], np.sqrt(gx**2 + gy**2 + gz**2))


def test_orientation_value_j_i_is_f_of_x_i_y_j() -> None:
    """Seed 003's transpose bug cannot happen: arrays are (y, x) and say so."""
    fields = compute_fields(
        "function: 'x + 10*y'\ngrid: {x: [0, 3, 4], y: [0, 1, 2]}\ndtype: float64\noutputs: [value, gradient]\n"
    )
    np.testing.assert_array_equal(fields["value"], [[0, 1, 2, 3], [10, 11, 12, 13]])
    np.testing.assert_array_equal(fields["grad_x"], np.ones((2, 4)))
    np.testing.assert_array_equal(fields["grad_y"], np.full((2, 4), 10.0))


def test_vector_field_2d_divergence_and_curl() -> None:
    fields = compute_fields(
        "function: ['x*y**2', 'sin(x) + y**3']\ngrid: {x: [-1, 1, 11], y: [-2, 2, 9]}\n"
        "dtype: float64\noutputs: [components, divergence, curl, magnitude]\n"
    )
    y, x = np.meshgrid(np.linspace(-2, 2, 9), np.linspace(-1, 1, 11), indexing="ij")
    np.testing.assert_allclose(fields["v_x"], x * y**2)
    np.testing.assert_allclose(fields["v_y"], np.sin(x) + y**3)
    np.testing.assert_allclose(fields["divergence"], y**2 + 3 * y**2)
    np.testing.assert_allclose(fields["curl"], np.cos(x) - 2 * x * y)  # dv_y/dx - dv_x/dy
    np.testing.assert_allclose(fields["magnitude"], np.hypot(x * y**2, np.sin(x) + y**3))


def test_vector_field_3d_curl() -> None:
    fields = compute_fields(
        "function: ['y*z', 'x**2', 'x*y*z']\n"
        "grid: {x: [-1, 1, 5], y: [-1, 1, 4], z: [0, 2, 3]}\ndtype: float64\n"
        "outputs: [divergence, curl]\n"
    )
    z, y, x = np.meshgrid(np.linspace(0, 2, 3), np.linspace(-1, 1, 4), np.linspace(-1, 1, 5), indexing="ij")
    np.testing.assert_allclose(fields["divergence"], x * y)  # 0 + 0 + xy
    np.testing.assert_allclose(fields["curl_x"], x * z)  # d(xyz)/dy - d(x^2)/dz
    np.testing.assert_allclose(fields["curl_y"], y - y * z)  # d(yz)/dz - d(xyz)/dx
    np.testing.assert_allclose(fields["curl_z"], 2 * x - z)  # d(x^2)/dx - d(yz)/dy


def test_seed_001_vector_field_default_outputs() -> None:
    fields = compute_fields("function: ['x', 'sin(y)']\ngrid: {x: [-5, 5, 21], y: [-5, 5, 21]}\ndtype: float64\n")
    assert set(fields) == {"v_x", "v_y", "divergence", "curl"}
    y = np.linspace(-5, 5, 21)[:, None]
    np.testing.assert_allclose(fields["divergence"], np.broadcast_to(1 + np.cos(y), (21, 21)))
    np.testing.assert_allclose(fields["curl"], 0.0)


def test_function_independent_of_an_axis_has_zero_gradient_there() -> None:
    fields = compute_fields("function: 'x**2'\ngrid: {x: [-1, 1, 5], y: [0, 1, 3]}\noutputs: [value, gradient]\n")
    np.testing.assert_array_equal(fields["grad_y"], 0.0)
    constant = compute_fields("function: '2.5'\ngrid: {x: [-1, 1, 5]}\n")
    np.testing.assert_array_equal(constant["value"], 2.5)
    np.testing.assert_array_equal(constant["grad_x"], 0.0)


# -- user callables ----------------------------------------------------------------------

USER_MODULE = """
import torch

def bowl(x, y):
    return x**2 + 3*torch.sin(y)

def swirl(x, y):
    return (-y, x)

def wrong_shape(x, y):
    return x.sum()

def explodes(x, y):
    raise ValueError("bad input")

not_a_function = 3
"""


@pytest.fixture
def user_module(tmp_path: Path) -> Path:
    (tmp_path / "userfuncs.py").write_text(USER_MODULE)
    return tmp_path


def _callable_job(folder: Path, ref: str, extra: str = "") -> gradbatch.JobConfig:
    return job_from(
        f"function: {{callable: '{ref}'}}\ngrid: {{x: [-1, 1, 6], y: [0, 2, 5]}}\ndtype: float64\n{extra}",
        source=folder / "job.yaml",
    )


def test_callable_scalar_from_the_job_files_folder(user_module: Path) -> None:
    plan = gradbatch.plan_job(_callable_job(user_module, "userfuncs:bowl"))
    fields = gradbatch.compute(plan)
    y, x = np.meshgrid(np.linspace(0, 2, 5), np.linspace(-1, 1, 6), indexing="ij")
    np.testing.assert_allclose(fields["grad_x"], 2 * x)
    np.testing.assert_allclose(fields["grad_y"], 3 * np.cos(y))


def test_callable_vector_field_is_detected(user_module: Path) -> None:
    plan = gradbatch.plan_job(_callable_job(user_module, "userfuncs:swirl"))
    assert plan.function.kind == "vector"
    fields = gradbatch.compute(plan)
    np.testing.assert_allclose(fields["divergence"], 0.0)
    np.testing.assert_allclose(fields["curl"], 2.0)


@pytest.mark.parametrize(
    "ref, error, message",
    [
        ("userfuncs:wrong_shape", FunctionError, "shaped like its inputs"),
        ("userfuncs:explodes", FunctionError, "ValueError: bad input"),
        ("userfuncs:not_a_function", ConfigError, "is a int, not a function"),
        ("userfuncs:missing", ConfigError, "has no attribute 'missing'"),
        ("no_such_module_xyz:f", ConfigError, "cannot import module 'no_such_module_xyz'"),
    ],
)
def test_bad_callables_get_clear_errors(user_module: Path, ref: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        gradbatch.plan_job(_callable_job(user_module, ref))


def test_callable_outputs_are_checked_after_probing(user_module: Path) -> None:
    with pytest.raises(ConfigError, match="'value' is not an output of a vector function"):
        gradbatch.plan_job(_callable_job(user_module, "userfuncs:swirl", "outputs: [value]\n"))


# -- devices -----------------------------------------------------------------------------


def test_cpu_and_device_agree(device: str) -> None:
    text = _grid_yaml("ripple", 2, 70, "float32")
    ref = compute_fields(text, "cpu")
    other = compute_fields(text, device)
    for k in ref:
        torch.testing.assert_close(torch.from_numpy(other[k]), torch.from_numpy(ref[k]), rtol=1e-5, atol=1e-5)


def test_out_of_memory_splits_the_tile_and_gives_the_same_result() -> None:
    """A kernel that runs out of memory above 64 rows: the tile is split until it fits."""
    from gradbatch.engine.coords import tile_axes
    from gradbatch.engine.kernel import Kernel
    from gradbatch.engine.runner import EvalStats, _compute

    plan = gradbatch.plan_job(
        job_from("function: 'x*y'\ngrid: {x: [0, 1, 256], y: [0, 1, 256]}\ntile: 256\ndtype: float64\n"), "cpu"
    )
    real = gradbatch.engine.build_kernel(plan.function, ("x", "y"), plan.outputs, plan.job.compile, 1)
    calls: list[int] = []

    def picky(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(axes1d[-1].shape[0])
        if axes1d[-1].shape[0] > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real.fn(*axes1d)

    axes = tile_axes([torch.as_tensor(a) for a in plan.axes], plan.layout, next(iter(plan.layout)))
    stats = EvalStats()
    out = _compute(Kernel(picky, picky, False), axes, stats)
    assert stats.splits == 4 and calls == [256, 128, 64, 64, 64, 64]
    expected = real(axes)
    for k in expected:
        torch.testing.assert_close(out[k], expected[k])


def test_a_split_compiled_kernel_runs_its_slabs_eagerly() -> None:
    """A compiled kernel is specialised to the tile's shape: slabs of a split tile go to the
    eager kernel, not to a recompile per slab shape."""
    from gradbatch.engine.coords import tile_axes
    from gradbatch.engine.kernel import Kernel
    from gradbatch.engine.runner import EvalStats, _compute

    plan = gradbatch.plan_job(job_from("function: 'x*y'\ngrid: {x: [0, 1, 128], y: [0, 1, 128]}\ntile: 128\n"), "cpu")
    real = gradbatch.engine.build_kernel(plan.function, ("x", "y"), plan.outputs, plan.job.compile, 1)
    compiled_shapes: list[int] = []
    eager_shapes: list[int] = []

    def compiled(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        compiled_shapes.append(axes1d[-1].shape[0])
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    def eager(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        eager_shapes.append(axes1d[-1].shape[0])
        return real.fn(*axes1d)

    axes = tile_axes([torch.as_tensor(a) for a in plan.axes], plan.layout, next(iter(plan.layout)))
    out = _compute(Kernel(compiled, eager, True), axes, EvalStats())
    assert compiled_shapes == [128] and eager_shapes == [64, 64]
    torch.testing.assert_close(out["value"], real(axes)["value"])


def test_warm_up_does_not_call_out_of_memory_a_compile_failure(recwarn: pytest.WarningsRecorder) -> None:
    from gradbatch.config import CompileMode
    from gradbatch.engine.kernel import Kernel, warm_up

    def too_big(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    k = Kernel(too_big, too_big, True)
    for mode in (CompileMode.AUTO, CompileMode.ON):
        assert warm_up(k, (torch.zeros(4),), mode) is k  # still compiled: the caller splits the tile
    assert not [w for w in recwarn if "torch.compile failed" in str(w.message)]


def test_out_of_memory_outside_the_kernel_is_one_line_and_no_file(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The device running out of memory in the float64 gradient check (or the pyramid) is not
    the kernel's to split: one EngineError naming the tile, and no complete-looking file."""
    from gradbatch.engine import runner
    from gradbatch.errors import EngineError

    def oom(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(runner, "finite_difference_check", oom)
    out = tmp_path / "j.h5"
    cfg = gradbatch.parse_config(
        "name: j\nfunction: 'x*y'\ngrid: {x: [0, 1, 64], y: [0, 1, 64]}\ntile: 32\noutputs: [value, gradient, check]\n",
        output=out,
    )
    with pytest.raises(EngineError, match=r"out of memory on tile \(0, 0\).*leave out check") as info:
        gradbatch.run_jobs(cfg)
    assert "\n" not in str(info.value)
    assert not out.exists()


# -- the registry of function sources and the autograd helper ----------------------------------


def test_every_function_source_type_has_a_builder() -> None:
    import typing

    from gradbatch.config import FunctionSource
    from gradbatch.functions.registry import BUILDERS, SourceBuilder, builder_for

    types = typing.get_args(FunctionSource)
    assert set(types) == set(BUILDERS)
    for t in types:
        module, _, name = BUILDERS[t].partition(":")
        cls = getattr(__import__(f"gradbatch.functions.{module}", fromlist=[name]), name)
        assert issubclass(cls, SourceBuilder) and cls.build is not SourceBuilder.build
    with pytest.raises(TypeError, match="unknown function source"):
        builder_for(object())


def test_the_engine_imports_no_function_source() -> None:
    """The engine resolves sources through the registry: planning an expression job loads the
    expression source only, never the landscapes, networks or user code."""
    import subprocess
    import sys

    code = (
        "import sys, gradbatch.engine as e\nfrom gradbatch.config import parse_config\n"
        "e.plan_job(parse_config('function: x*y\\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}').jobs[0], 'cpu')\n"
        "print(' '.join(m for m in sys.modules if m.startswith('gradbatch.functions.')))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        ).stdout.split()
    )
    assert "gradbatch.functions.expression" in loaded
    assert not loaded & {
        f"gradbatch.functions.{m}" for m in ("landscape", "network", "models", "chunked", "callable", "builtin")
    }


def test_derivatives_helper_value_gradient_and_hessian() -> None:
    """f = x^2 y + sin(y): grad (2xy, x^2 + cos y), Hessian [[2y, 2x], [2x, -sin y]], by hand."""
    from gradbatch.derivatives import value_and_grad, value_grad_hessian

    x = np.array([0.3, -1.2, 2.0])
    y = np.array([0.7, 0.1, -0.4])
    pts = torch.tensor(np.stack([x, y], 1))
    f, g, h = value_grad_hessian(lambda a, b: a * a * b + torch.sin(b), pts)
    assert h is not None
    np.testing.assert_allclose(f.numpy(), x**2 * y + np.sin(y), rtol=1e-14)
    np.testing.assert_allclose(g.numpy(), np.stack([2 * x * y, x**2 + np.cos(y)], 1), rtol=1e-14)
    want = np.stack([np.stack([2 * y, 2 * x], 1), np.stack([2 * x, -np.sin(y)], 1)], 1)
    np.testing.assert_allclose(h.numpy(), want, rtol=1e-13)
    v, grads = value_and_grad(lambda a, b: 3 * a, [pts[:, 0], pts[:, 1]])
    assert grads[1] is None and torch.equal(grads[0], torch.full((3,), 3.0, dtype=torch.float64))
    _, none = value_and_grad(lambda a, b: torch.zeros_like(a), [pts[:, 0], pts[:, 1]])
    assert none == [None, None]


def test_derivatives_helper_hessian_by_differences_where_autograd_has_first_derivatives_only() -> None:
    from gradbatch.derivatives import value_grad_hessian

    class Cube(torch.autograd.Function):  # x^3 with a backward that is not differentiable again
        @staticmethod
        def forward(ctx, a):  # noqa: ANN001, ANN205
            ctx.save_for_backward(a)
            return a**3

        @staticmethod
        def backward(ctx, grad):  # noqa: ANN001, ANN205
            (a,) = ctx.saved_tensors
            return grad * 3 * a.detach() ** 2

    pts = torch.tensor([[0.5, 2.0], [-1.5, 1.0]], dtype=torch.float64)
    _, g, h = value_grad_hessian(lambda a, b: Cube.apply(a) + 2 * Cube.apply(b), pts)
    assert h is not None
    a, b = pts[:, 0].numpy(), pts[:, 1].numpy()
    np.testing.assert_allclose(g.numpy(), np.stack([3 * a**2, 6 * b**2], 1), rtol=1e-14)
    want = np.stack([np.stack([6 * a, 0 * a], 1), np.stack([0 * a, 12 * b], 1)], 1)
    np.testing.assert_allclose(h.numpy(), want, rtol=1e-6, atol=1e-8)
