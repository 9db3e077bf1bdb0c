"""Descent paths, basins and streamlines: against torch.optim, scipy and the known minima."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.config import Starts, parse_basins, parse_config, parse_optimizer, parse_streamlines
from gradbatch.errors import ConfigError
from gradbatch.functions import BUILTINS, from_builtin, from_expression, from_vector
from gradbatch.store import partial_path
from gradbatch.trajectories.basins import classify, compute_basins
from gradbatch.trajectories.paths import REASONS, descend, start_points
from gradbatch.trajectories.streamlines import STOPS, compute_streamlines

HIMMELBLAU = from_builtin("himmelblau", 2, {})
BOX = ((-6.0, 6.0), (-6.0, 6.0))
F64 = torch.float64
CPU = torch.device("cpu")


def himmelblau_t(p: torch.Tensor) -> torch.Tensor:
    return (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2


OPTIMIZERS = [
    {"name": "sgd", "lr": 1e-3},
    {"name": "momentum", "lr": 1e-3, "momentum": 0.8},
    {"name": "nesterov", "lr": 1e-3},
    {"name": "adam", "lr": 1e-2, "betas": [0.8, 0.99]},
    {"name": "adamw", "lr": 1e-2, "weight_decay": 0.05},
    {"name": "rmsprop", "lr": 1e-3, "alpha": 0.9},
    {"name": "adagrad", "lr": 0.1},
]


@pytest.mark.parametrize("spec", OPTIMIZERS, ids=lambda s: s["name"])
def test_paths_equal_a_plain_torch_optim_loop_step_for_step(spec: dict) -> None:
    opt = parse_optimizer(spec, "o")
    starts = torch.tensor([[-4.0, 0.0], [1.0, 1.0], [0.5, -3.0]], dtype=F64)
    d = descend(HIMMELBLAU, starts, opt, 60, 0.0, BOX)
    for i, start in enumerate(starts):
        x = start.clone().requires_grad_(True)
        o = getattr(torch.optim, opt.torch_class)([x], **opt.torch_kwargs)
        for s in range(61):
            np.testing.assert_allclose(
                d.positions[i, s],
                x.detach().numpy(),
                rtol=1e-12,
                atol=1e-12,
                err_msg=f"{spec['name']} path {i} step {s}",
            )
            o.zero_grad()
            himmelblau_t(x).backward()
            o.step()


def test_a_path_alone_equals_the_same_path_in_a_batch() -> None:
    opt = parse_optimizer({"name": "adam", "lr": 0.02}, "o")
    batch = start_points(Starts(random=500, seed=3), BOX, F64, CPU)
    together = descend(HIMMELBLAU, batch, opt, 200, 1e-8, BOX)
    for i in (0, 123, 499):
        alone = descend(HIMMELBLAU, batch[i : i + 1], opt, 200, 1e-8, BOX)
        np.testing.assert_array_equal(alone.positions[0], together.positions[i])
        assert alone.stop_step[0] == together.stop_step[i]


def test_seed_004_adam_from_minus_4_0_ends_at_a_known_minimum() -> None:
    opt = parse_optimizer({"name": "adam", "lr": 1e-3}, "o")
    d = descend(HIMMELBLAU, torch.tensor([[-4.0, 0.0]]), opt, 20000, 1e-4, BOX)
    assert REASONS[d.reason[0]] == "converged"
    known = np.array([m.point for m in BUILTINS["himmelblau"].minima(2)])
    assert np.linalg.norm(known - d.final[0], axis=1).min() < 1e-3
    assert d.final_value[0] < 1e-6


def test_stop_rules_and_ascent() -> None:
    bowl = from_expression("x**2 + y**2", ("x", "y"), {})
    box = ((-1.0, 1.0), (-1.0, 1.0))
    starts = torch.tensor([[0.5, 0.5], [0.99, 0.0]], dtype=F64)
    down = descend(bowl, starts, parse_optimizer({"name": "sgd", "lr": 0.25}, "o"), 50, 1e-6, box)
    assert [REASONS[r] for r in down.reason] == ["converged", "converged"]
    up = descend(bowl, starts, parse_optimizer({"name": "sgd", "lr": 0.25}, "o"), 50, 1e-6, box, ascent=True)
    assert [REASONS[r] for r in up.reason] == ["left_domain", "left_domain"]
    assert np.isnan(up.positions[0, up.stop_step[0] + 1 :]).all()
    slow = descend(bowl, starts, parse_optimizer({"name": "sgd", "lr": 1e-4}, "o"), 10, 1e-6, box)
    assert [REASONS[r] for r in slow.reason] == ["max_steps", "max_steps"] and (slow.stop_step == 10).all()
    blowup = from_expression("log(x)", ("x", "y"), {})
    bad = descend(blowup, torch.tensor([[-0.5, 0.0]], dtype=F64), parse_optimizer("sgd", "o"), 5, 0.0, box)
    assert REASONS[bad.reason[0]] == "diverged" and bad.stop_step[0] == 0


def test_start_points_grid_and_random() -> None:
    grid = start_points(Starts(grid=(3, 2)), ((0.0, 2.0), (10.0, 11.0)), F64, CPU).numpy()
    np.testing.assert_array_equal(grid, [[0, 10], [1, 10], [2, 10], [0, 11], [1, 11], [2, 11]])
    a = start_points(Starts(random=50, seed=7), BOX, F64, CPU)
    b = start_points(Starts(random=50, seed=7), BOX, F64, CPU)
    assert torch.equal(a, b) and (a.abs() <= 6).all()


def test_basins_of_himmelblau_four_basins_each_its_own_minimum() -> None:
    cfg = parse_basins({"resolution": 64, "steps": 400, "optimizer": {"name": "adam", "lr": 0.05}}, "b", 2)
    known = BUILTINS["himmelblau"].minima(2)
    r = compute_basins(HIMMELBLAU, cfg, ((-5.0, 5.0), (-5.0, 5.0)), known, torch.float32, CPU)
    assert len(r.points) == 4 and all(p.kind == "minimum" for p in r.points)
    assert all(c > 500 for c in r.counts) and sum(r.counts) == (r.label >= 0).sum()
    xs, ys = r.axes
    for i, m in enumerate(known):  # the start next to each minimum is in that minimum's basin
        ix, iy = np.abs(xs - m.point[0]).argmin(), np.abs(ys - m.point[1]).argmin()
        assert r.label[iy, ix] == i, (m.point, r.label[iy, ix])


def test_basins_without_known_minima_merge_end_points() -> None:
    cfg = parse_basins(
        {"resolution": 48, "steps": 3000, "tol": 1e-4, "optimizer": {"name": "adam", "lr": 0.05}}, "b", 2
    )
    r = compute_basins(HIMMELBLAU, cfg, ((-5.0, 5.0), (-5.0, 5.0)), [], F64, CPU)
    found = sorted(tuple(np.round(p.point, 2)) for p in r.points)
    expected = sorted(tuple(np.round(m.point, 2)) for m in BUILTINS["himmelblau"].minima(2))
    assert found == expected and all(p.kind == "minimum" and not p.known for p in r.points)


@pytest.mark.parametrize(
    "text, point, kind",
    [
        ("x**2 + y**2", (0.0, 0.0), "minimum"),
        ("-(x**2) - 3*y**2", (0.0, 0.0), "maximum"),
        ("x*y", (0.0, 0.0), "saddle"),
        ("x**4 + y**2", (0.0, 0.0), "degenerate"),
    ],
)
def test_critical_points_are_classified_by_hessian_eigenvalues(text: str, point: tuple, kind: str) -> None:
    assert classify(from_expression(text, ("x", "y"), {}), point)[0] == kind


def _arc_length_reference(fn, x0: np.ndarray, length: float) -> np.ndarray:  # noqa: ANN001
    from scipy.integrate import solve_ivp

    def rhs(_s: float, x: np.ndarray) -> np.ndarray:
        f = fn(x)
        return f / np.linalg.norm(f)

    sol = solve_ivp(rhs, (0.0, length), x0, method="DOP853", rtol=1e-11, atol=1e-12)
    return sol.y[:, -1]


@pytest.mark.parametrize("method", ["rk4", "rk45"])
def test_streamlines_agree_with_scipy_solve_ivp(method: str) -> None:
    ff = from_expression("sin(x) + 0.5*y", ("x", "y"), {})  # gradient (cos x, 0.5): never zero
    box = ((-20.0, 20.0), (-20.0, 20.0))
    seeds = [[0.3, -2.0], [-1.0, 1.0], [2.0, 0.5]]
    cfg = parse_streamlines(
        {
            "seeds": seeds,
            "field": "ascent",
            "method": method,
            "direction": "forward",
            "step": 0.01,
            "max_length": 3.0,
            "max_steps": 5000,
            "tol": 1e-9,
        },
        "s",
        box,
        False,
    )
    lines = compute_streamlines(ff, cfg, box, F64, CPU)
    assert [STOPS[s] for s in lines.stop_forward] == ["max_length"] * 3
    for i, seed in enumerate(seeds):
        end = lines.points[lines.offsets[i + 1] - 1]
        ref = _arc_length_reference(lambda p: np.array([np.cos(p[0]), 0.5]), np.array(seed), 3.0)
        np.testing.assert_allclose(end, ref, atol=1e-6)


def test_vector_field_streamlines_both_directions_and_reasons() -> None:
    ff = from_vector(["-y", "x"], ("x", "y"), {})  # circles round the origin
    box = ((-2.0, 2.0), (-2.0, 2.0))
    cfg = parse_streamlines({"seeds": [[1.0, 0.0]], "step": 0.01, "max_length": 3.0}, "s", box, True)
    lines = compute_streamlines(ff, cfg, box, F64, CPU)
    pts = lines.points[lines.offsets[0] : lines.offsets[1]]
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1]), 1.0, atol=1e-8)  # stays on the circle
    assert lines.length[0] == pytest.approx(6.0)
    mid = np.argmin(np.linalg.norm(pts - [1.0, 0.0], axis=1))
    assert 0 < mid < len(pts) - 1  # the seed sits inside the line: backward half, then forward
    assert pts[mid + 1][1] > 0  # forward goes anticlockwise, with the field


def test_descent_streamlines_stop_at_the_minimum() -> None:
    ff = from_expression("x**2 + 2*y**2", ("x", "y"), {})
    box = ((-1.0, 1.0), (-1.0, 1.0))
    cfg = parse_streamlines({"seeds": [[0.8, 0.6]], "direction": "forward", "step": 0.01}, "s", box, False)
    lines = compute_streamlines(ff, cfg, box, F64, CPU)
    assert STOPS[lines.stop_forward[0]] == "stagnation"
    assert np.linalg.norm(lines.points[lines.offsets[1] - 1]) < 0.02


def test_evenly_spaced_lines_never_share_a_cell() -> None:
    ff = from_builtin("ripple", 2, {})
    box = ((-5.0, 5.0), (-5.0, 5.0))
    cfg = parse_streamlines({"seeds": {"even": 1}}, "s", box, False)
    lines = compute_streamlines(ff, cfg, box, torch.float32, CPU)
    n = 30
    owners: dict[int, int] = {}
    assert len(lines.seeds) > 20
    for i in range(len(lines.seeds)):
        pts = lines.points[lines.offsets[i] : lines.offsets[i + 1]]
        assert lines.length[i] >= 1.0 - 1e-6  # a tenth of the domain: shorter lines are dropped
        cells = set(((np.clip(((pts - (-5.0)) / (10.0 / n)).astype(int), 0, n - 1)) @ [1, n]).tolist())
        for c in cells:
            assert owners.setdefault(c, i) == i, f"cell {c} holds lines {owners[c]} and {i}"
    assert "occupied" in {STOPS[s] for s in np.concatenate([lines.stop_forward, lines.stop_backward])}


# -- jobs and files ----------------------------------------------------------------------

JOB = """
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 128], y: [-5, 5, 128]}
paths:
  starts: [[-4, 0], [0, 0], [1, 1]]
  steps: 300
  optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.002, label: plain}]
basins: {resolution: 32, steps: 300, optimizer: {name: adam, lr: 0.05}}
streamlines: {seeds: {grid: 4}, step: 0.05}
"""


def test_job_stores_paths_basins_and_streamlines(in_tmp: Path) -> None:
    gradbatch.run_jobs(parse_config(JOB, output=in_tmp / "hb.h5"))
    with h5py.File(in_tmp / "hb.h5", "r") as f:
        g = f["hb"]
        assert list(g["paths"]) == ["adam", "plain"]
        p = g["paths/adam"]
        assert p["positions"].shape == (3, 301, 2) and p["stop_reason"].shape == (3,)
        assert p.attrs["optimizer"] == "adam" and list(p.attrs["reasons"]) == list(REASONS)
        np.testing.assert_allclose(p["positions"][0, 0], [-4, 0])
        b = g["basins"]
        assert b["label"].shape == (32, 32) and b["label"].dims[1].label == "x"
        assert b["minima/point"].shape == (4, 2) and list(b["minima/kind"].asstr()[...]) == ["minimum"] * 4
        s = g["streamlines"]
        assert s["offsets"].shape == (17,) and s["offsets"][-1] == s["points"].shape[0]
        assert g.attrs["complete"]


def test_interrupted_during_paths_resumes_to_the_same_file(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradbatch.trajectories.flows as flows

    real = flows.compute_basins

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(flows, "compute_basins", boom)
    with pytest.raises(KeyboardInterrupt):
        gradbatch.run_jobs(parse_config(JOB, output=in_tmp / "hb.h5"))
    assert partial_path(in_tmp / "hb.h5").exists() and not (in_tmp / "hb.h5").exists()
    monkeypatch.setattr(flows, "compute_basins", real)
    gradbatch.run_jobs(parse_config(JOB, output=in_tmp / "hb.h5"), resume=True)
    gradbatch.run_jobs(parse_config(JOB, output=in_tmp / "straight.h5"))
    with h5py.File(in_tmp / "hb.h5", "r") as a, h5py.File(in_tmp / "straight.h5", "r") as b:
        for name in ("paths/adam/positions", "paths/plain/stop_step", "basins/label", "streamlines/points"):
            np.testing.assert_array_equal(a["hb"][name][...], b["hb"][name][...], err_msg=name)


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        (
            "paths: {starts: [[0, 0]], optimizers: [{name: lbfgs}]}",
            "paths.optimizers[0].name: unknown optimiser 'lbfgs'; allowed: sgd",
        ),
        (
            "paths: {starts: [[0, 0]], optimizers: [{name: adam, lr: -1}]}",
            "paths.optimizers[0].lr: expected a positive number, got -1",
        ),
        ("paths: {starts: [[0, 9]]}", "paths.starts[0]: start [0, 9] is outside the grid (axis 1: -5 .. 5)"),
        ("paths: {starts: [[0, 0]], steps: 0}", "paths.steps: expected an integer of at least 1, got 0"),
        ("paths: {starts: [[0, 0]], optimizers: [adam, adam]}", "paths.optimizers[1].label: 'adam' is used twice"),
        (
            "paths: {starts: [[0, 0]], optimizers: [{name: sgd, betas: [0.9, 0.9]}]}",
            "paths.optimizers[0].betas: unknown setting",
        ),
        ("paths: {starts: {grid: 0}}", "paths.starts.grid: expected an integer of at least 1, got 0"),
        ("paths: {optimizers: [adam]}", "paths.starts: missing"),
        ("basins: {resolution: 1}", "basins.resolution: expected an integer of at least 2, got 1"),
        ("streamlines: {method: euler}", "streamlines.method: expected one of rk4, rk45, got 'euler'"),
        ("streamlines: {field: vector}", "streamlines.field: 'vector' needs a vector-field function"),
        ("streamlines: {direction: sideways}", "streamlines.direction: expected one of forward, backward, both"),
    ],
)
def test_bad_trajectory_settings_get_clear_errors(yaml_text: str, message: str) -> None:
    base = "function: {builtin: himmelblau}\ngrid: {x: [-5, 5, 16], y: [-5, 5, 16]}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(base + yaml_text)
    assert message in str(info.value)


def test_descent_on_a_vector_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="descent needs a scalar function"):
        parse_config("function: [x, y]\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}\npaths: {starts: [[0.5, 0.5]]}")


@pytest.mark.parametrize("spec", OPTIMIZERS, ids=lambda s: s["name"])
def test_fused_is_asked_only_where_the_device_has_the_kernel(spec: dict) -> None:
    """torch makes ``fused=True`` optimisers for any device and fails at the first step where
    it has no kernel (Adagrad on CUDA): a device with none (meta here) gets the default one."""
    from gradbatch.trajectories.paths import _optimizer, has_fused_kernel

    opt = parse_optimizer(spec, "o")
    meta = [torch.zeros(4, device="meta", requires_grad=True)]
    meta[0].grad = torch.ones(4, device="meta")
    o = _optimizer(opt, meta, ascent=False, fused=True)
    assert not o.defaults.get("fused")
    o.step()  # would raise "fused=True requires ... supported devices" had fused been asked
    cpu = [torch.zeros(4, requires_grad=True)]
    assert bool(_optimizer(opt, cpu, ascent=False, fused=True).defaults.get("fused")) == has_fused_kernel(
        opt.torch_class, CPU
    )
    assert has_fused_kernel("Adam", CPU) and not has_fused_kernel("RMSprop", CPU)


def test_asking_the_device_every_32_steps_gives_the_same_paths() -> None:
    """On a GPU the loop asks whether any path still runs every SYNC_EVERY steps, not every
    step: rows that stopped in between are held where they stopped, so nothing changes."""
    opt = parse_optimizer({"name": "adam", "lr": 0.05}, "o")
    starts = torch.tensor([[-4.0, 0.0], [1.0, 1.0], [0.5, -3.0], [5.9, 5.9], [3.0, 2.0]], dtype=F64)
    every_step = descend(HIMMELBLAU, starts, opt, 500, 1e-6, BOX)
    every_32 = descend(HIMMELBLAU, starts, opt, 500, 1e-6, BOX, sync_every=32)
    assert len(set(every_step.stop_step.tolist())) > 2  # paths stopped at different steps
    for name in ("final", "final_value", "stop_step", "reason", "positions", "values", "grad_norms"):
        np.testing.assert_array_equal(getattr(every_32, name), getattr(every_step, name), err_msg=name)


@pytest.mark.parametrize(
    ("spec", "every"),
    [
        ({"seeds": {"grid": 5}, "method": "rk4", "step": 0.05, "max_steps": 300}, 7),
        ({"seeds": {"grid": 5}, "method": "rk45", "step": 0.05, "tol": 1e-6, "max_steps": 300}, 32),
        ({"seeds": {"even": 1}, "max_steps": 400}, 13),
        ({"seeds": {"grid": 3}, "method": "rk4", "step": 0.05, "max_steps": 200, "max_length": 2.0}, 500),
    ],
    ids=["rk4", "rk45", "even", "longer-than-the-run"],
)
def test_streamlines_compacted_every_k_steps_are_the_same_lines(spec: dict, every: int) -> None:
    """On a GPU the working set of lines is compacted every SYNC_EVERY steps, not as each line
    stops: lines that stopped in between are carried along masked, they record their point,
    stop and length once, and they claim no cell. Every line comes out the same, bit for bit."""
    ff = from_builtin("ripple", 2, {})
    box = ((-5.0, 5.0), (-5.0, 5.0))
    cfg = parse_streamlines(spec, "s", box, False)
    each = compute_streamlines(ff, cfg, box, torch.float32, CPU)
    masked = compute_streamlines(ff, cfg, box, torch.float32, CPU, sync_every=every)
    stops = {STOPS[s] for s in np.concatenate([each.stop_forward, each.stop_backward])}
    assert len(stops) >= 2, stops  # lines ended at different steps, for different reasons
    for name in ("offsets", "points", "seeds", "stop_forward", "stop_backward", "length"):
        np.testing.assert_array_equal(getattr(masked, name), getattr(each, name), err_msg=name)
