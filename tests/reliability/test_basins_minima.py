"""Basins find every minimum, even with settings that keep the optimiser from converging.

Each case descends with deliberately bad settings (a learning rate that oscillates, a float32
tol below the float32 noise floor, too few steps for Rosenbrock's valley) and without telling
``compute_basins`` the known minima, so the minima must be found: every known one to 1e-4, and
every start labelled unless its run was lost (left the domain, diverged).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradbatch.config import parse_basins
from gradbatch.functions import BUILTINS, from_builtin, from_expression
from gradbatch.trajectories.basins import compute_basins, derivatives, polish
from gradbatch.trajectories.paths import REASONS

CPU = torch.device("cpu")
LOST = [REASONS.index("left_domain"), REASONS.index("diverged")]


def _basins(ff, box, settings: dict, dtype: torch.dtype, known=()):  # noqa: ANN001, ANN202
    cfg = parse_basins(settings, "basins", len(box))
    return compute_basins(ff, cfg, box, list(known), dtype, CPU)


def _assert_found(result, minima: np.ndarray, atol: float = 1e-4) -> None:  # noqa: ANN001
    found = np.array([p.point for p in result.points if p.kind == "minimum"])
    assert len(found), "no minimum found"
    for m in minima:
        dist = np.linalg.norm(found - m, axis=1)
        assert dist.min() < atol, f"minimum {m} not found; nearest {found[dist.argmin()]}"


def _assert_every_start_labelled(result) -> None:  # noqa: ANN001
    unlabelled = result.label < 0
    lost = np.isin(result.reason, LOST)
    assert not (unlabelled & ~lost).any(), (
        f"{int((unlabelled & ~lost).sum())} starts unlabelled whose runs were not lost; reasons "
        f"{sorted({REASONS[r] for r in result.reason[unlabelled & ~lost]})}"
    )
    assert sum(result.counts) == int((result.label >= 0).sum())


HIMMELBLAU_MINIMA = np.array([m.point for m in BUILTINS["himmelblau"].minima(2)])


@pytest.mark.parametrize(
    "settings, dtype",
    [
        # Adam with lr 0.5 hops round each minimum at the learning rate's scale: runs end max_steps
        ({"resolution": 20, "steps": 200, "optimizer": {"name": "adam", "lr": 0.5}}, torch.float32),
        # float32 gradients settle near 3e-5: tol 1e-12 is never reached
        ({"resolution": 20, "steps": 200, "tol": 1e-12, "optimizer": {"name": "adam", "lr": 0.05}}, torch.float32),
        # plain SGD near its stability limit (the curvature at the minima reaches ~95)
        ({"resolution": 20, "steps": 200, "tol": 1e-12, "optimizer": {"name": "sgd", "lr": 0.012}}, torch.float64),
    ],
    ids=["adam-lr0.5", "float32-tol1e-12", "sgd-near-2/L"],
)
def test_himmelblau_all_four_minima_found_with_bad_settings(settings: dict, dtype: torch.dtype) -> None:
    ff = from_builtin("himmelblau", 2, {})
    r = _basins(ff, ((-5.0, 5.0), (-5.0, 5.0)), settings, dtype)
    _assert_found(r, HIMMELBLAU_MINIMA)
    _assert_every_start_labelled(r)
    assert sum(p.kind == "minimum" for p in r.points) == 4
    assert all(c > 40 for p, c in zip(r.points, r.counts) if p.kind == "minimum")


def test_known_minima_come_first_and_their_basins_are_labelled() -> None:
    ff = from_builtin("himmelblau", 2, {})
    known = BUILTINS["himmelblau"].minima(2)
    r = _basins(
        ff,
        ((-5.0, 5.0), (-5.0, 5.0)),
        {"resolution": 20, "steps": 200, "optimizer": {"name": "adam", "lr": 0.5}},
        torch.float32,
        known,
    )
    assert [p.point for p in r.points[:4]] == [m.point for m in known] and all(p.known for p in r.points[:4])
    assert all(not p.known for p in r.points[4:])
    _assert_every_start_labelled(r)
    assert all(c > 40 for c in r.counts[:4])


@pytest.mark.parametrize(
    "optimizer", [{"name": "sgd", "lr": 1e-3}, {"name": "adam", "lr": 0.05}], ids=lambda o: o["name"]
)
def test_rosenbrock_runs_still_in_the_valley_are_finished(optimizer: dict) -> None:
    """300 steps leave most runs crawling down the banana valley, far from (1, 1)."""
    ff = from_builtin("rosenbrock", 2, {})
    r = _basins(
        ff,
        BUILTINS["rosenbrock"].domain(2),
        {"resolution": 24, "steps": 300, "tol": 1e-12, "optimizer": optimizer},
        torch.float32,
    )
    assert (r.reason == REASONS.index("max_steps")).mean() > 0.5  # the bad settings really are bad
    _assert_found(r, np.array([[1.0, 1.0]]), atol=1e-6)
    _assert_every_start_labelled(r)
    assert [p.kind for p in r.points] == ["minimum"]


def test_a_bowl_with_sgd_at_the_edge_of_stability() -> None:
    """f = (x - 0.3)^2 + 4 (y + 0.2)^2 has L = 8: SGD with lr 0.249 (2/L = 0.25) flips y's sign
    every step and shrinks it by only 0.8% a step, so no run converges in 200 steps. (The box is
    centred on the minimum, so a flipped run stays inside.)"""
    ff = from_expression("(x - 0.3)**2 + 4*(y + 0.2)**2", ("x", "y"), {})
    r = _basins(
        ff,
        ((-1.7, 2.3), (-2.2, 1.8)),
        {"resolution": 16, "steps": 200, "optimizer": {"name": "sgd", "lr": 0.249}},
        torch.float64,
    )
    assert (r.reason == REASONS.index("max_steps")).all()
    assert len(r.points) == 1 and r.points[0].kind == "minimum"
    np.testing.assert_allclose(r.points[0].point, [0.3, -0.2], atol=1e-10)
    assert (r.label == 0).all()


def _rastrigin_1d_minima(lo: float, hi: float) -> np.ndarray:
    """Local minima of x^2 - 10 cos(2 pi x) in [lo, hi], by Newton on its derivative in numpy."""
    xs = np.arange(np.ceil(lo), np.floor(hi) + 1.0)  # one near each integer
    for _ in range(50):
        d1 = 2 * xs + 20 * np.pi * np.sin(2 * np.pi * xs)
        d2 = 2 + 40 * np.pi**2 * np.cos(2 * np.pi * xs)
        xs = xs - d1 / d2
    return xs


def test_rastrigin_every_local_minimum_beside_the_known_global_one() -> None:
    """The built-in knows only the global minimum; the 24 local ones round it have basins too."""
    ff = from_builtin("rastrigin", 2, {})
    known = BUILTINS["rastrigin"].minima(2)
    box = ((-2.5, 2.5), (-2.5, 2.5))
    r = _basins(
        ff, box, {"resolution": 40, "steps": 300, "optimizer": {"name": "adam", "lr": 0.02}}, torch.float32, known
    )
    m1 = _rastrigin_1d_minima(-2.5, 2.5)
    expected = np.array([(a, b) for a in m1 for b in m1])
    _assert_found(r, expected, atol=1e-8)
    assert sum(p.kind == "minimum" for p in r.points) == 25
    assert r.points[0].known and r.points[0].point == (0.0, 0.0) and r.counts[0] > 0
    _assert_every_start_labelled(r)


def test_a_run_that_ends_on_a_saddle_keeps_its_saddle() -> None:
    """(x^2 - 1)^2 + y^2: minima at (+-1, 0), a saddle at the origin. Starts on x = 0 descend to
    the saddle and stay there; polishing must not push them into a minimum. (The grid holds x = 0
    exactly, so their runs never leave it.)"""
    ff = from_expression("(x**2 - 1)**2 + y**2", ("x", "y"), {})
    r = _basins(
        ff,
        ((-2.5, 2.5), (-2.5, 2.5)),
        {"resolution": 21, "steps": 2000, "tol": 1e-9, "optimizer": {"name": "sgd", "lr": 0.02}},
        torch.float64,
    )
    kinds = {p.kind: p for p in r.points}
    assert sorted(kinds) == ["minimum", "saddle"] and sum(p.kind == "minimum" for p in r.points) == 2
    saddle = r.points.index(kinds["saddle"])
    np.testing.assert_allclose(r.points[saddle].point, [0.0, 0.0], atol=1e-12)
    xs = r.axes[0]
    on_axis = xs == 0.0
    assert (r.label[:, on_axis] == saddle).all() and (r.label[:, ~on_axis] != saddle).all()
    _assert_every_start_labelled(r)


def test_polish_downhill_reaches_the_minimum_plain_newton_the_nearest_stationary_point() -> None:
    ff = from_expression("(x**2 - 1)**2 + y**2", ("x", "y"), {})
    x0 = torch.tensor([[0.2, 0.3], [0.2, 0.3]], dtype=torch.float64)
    span = torch.tensor([4.0, 4.0], dtype=torch.float64)
    x, ok = polish(ff, x0, torch.tensor([True, False]), span, 0.05)
    assert ok.all()
    np.testing.assert_allclose(x[0].numpy(), [1.0, 0.0], atol=1e-12)  # downhill: a minimum
    np.testing.assert_allclose(x[1].numpy(), [0.0, 0.0], atol=1e-12)  # Newton: the saddle nearby


def test_every_critical_point_in_the_table_is_real() -> None:
    """Easom is almost flat far from its needle at (pi, pi): many runs 'converge' on the plain.
    What the table lists there must be real stationary points (the plain has a lattice of them,
    of curvature ~1e-11), never a place where a run merely slowed down."""
    ff = from_builtin("easom", 2, {})
    r = _basins(
        ff,
        BUILTINS["easom"].domain(2),
        {"resolution": 16, "steps": 200, "tol": 1e-6, "optimizer": {"name": "adam", "lr": 0.05}},
        torch.float64,
    )
    _assert_found(r, np.array([[np.pi, np.pi]]), atol=1e-10)
    points = torch.tensor([p.point for p in r.points], dtype=torch.float64)
    _, g, _ = derivatives(ff, points, hessian=False)
    assert (g.norm(dim=1) < 1e-12).all(), g
    assert (
        r.counts[
            [p.point for p in r.points].index(
                min((p.point for p in r.points), key=lambda q: np.hypot(q[0] - np.pi, q[1] - np.pi))
            )
        ]
        > 10
    )
