"""Convergence is reported honestly: a path stuck at its dtype's noise floor is `stalled` (and
stops), a slow path still making progress is not, a reachable tol is `converged`."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.config import parse_config, parse_optimizer
from gradbatch.functions import BUILTINS, from_builtin, from_expression
from gradbatch.summary import describe
from gradbatch.trajectories.paths import REASONS, STALL_WINDOW, descend

HIMMELBLAU = from_builtin("himmelblau", 2, {})
BOX = ((-6.0, 6.0), (-6.0, 6.0))
MINIMA = np.array([m.point for m in BUILTINS["himmelblau"].minima(2)])
STARTS = [[-4.0, 0.0], [0.5, -3.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "lr": 1e-3},  # freezes: lr * |grad| falls below half an ulp at |grad| ~ 1e-4
        {"name": "momentum", "lr": 1e-3},
        {"name": "adam", "lr": 0.05},  # jitters at the floor
    ],
    ids=lambda o: o["name"],
)
def test_float32_descent_below_its_noise_floor_stalls_early(optimizer: dict) -> None:
    """float32 gradients at Himmelblau's minima settle near 3e-5: tol 1e-12 is out of reach, so
    the runs must end stalled (or, by luck, converged), not max_steps after 20,000 steps."""
    d = descend(HIMMELBLAU, torch.tensor(STARTS), parse_optimizer(optimizer, "o"), 20_000, 1e-12, BOX)
    reasons = [REASONS[r] for r in d.reason]
    assert set(reasons) <= {"stalled", "converged"} and "stalled" in reasons, reasons
    assert (d.stop_step <= 2_000).all(), d.stop_step
    assert np.linalg.norm(MINIMA[None] - d.final[:, None], axis=2).min(1).max() < 1e-4
    assert np.isnan(d.positions[:, d.stop_step.max() + 1 :]).all()  # nothing recorded after the stop


def test_ascent_stalls_too() -> None:
    ff = from_expression("-((x**2 + y - 11)**2 + (x + y**2 - 7)**2)", ("x", "y"), {})
    d = descend(
        ff, torch.tensor(STARTS), parse_optimizer({"name": "sgd", "lr": 1e-3}, "o"), 20_000, 1e-12, BOX, ascent=True
    )
    assert [REASONS[r] for r in d.reason] == ["stalled"] * 3 and (d.stop_step <= 2_000).all()


def test_a_slow_path_down_rosenbrocks_valley_is_not_cut_short() -> None:
    """Near the end of the valley, float32 SGD's gradient is within a few times its noise floor
    and never halves in a stall window, yet the value keeps falling: not stalled."""
    ff = from_builtin("rosenbrock", 2, {})
    start = torch.tensor([[0.9994096, 0.99881727]])  # where SGD from (-1.5, 2) is after 17,000 steps
    d = descend(
        ff, start, parse_optimizer({"name": "sgd", "lr": 1e-3}, "o"), 2_000, 1e-12, BUILTINS["rosenbrock"].domain(2)
    )
    assert REASONS[d.reason[0]] == "max_steps"
    g = d.grad_norms[0]
    assert (g[STALL_WINDOW:] > 0.5 * g[:-STALL_WINDOW]).all()  # a 'no halving' rule alone would stop it
    assert d.values[0, -1] < 0.5 * d.values[0, 0]  # but it is still making progress


def test_a_long_descent_through_the_valley_is_not_stalled() -> None:
    ff = from_builtin("rosenbrock", 2, {})
    d = descend(
        ff,
        torch.tensor([[-1.5, 2.0], [0.0, 0.0]]),
        parse_optimizer({"name": "sgd", "lr": 1e-3}, "o"),
        3_000,
        1e-12,
        BUILTINS["rosenbrock"].domain(2),
        record=False,
    )
    assert [REASONS[r] for r in d.reason] == ["max_steps", "max_steps"]


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "sgd", "lr": 1e-3}, {"name": "momentum", "lr": 1e-3}, {"name": "adam", "lr": 0.05}],
    ids=lambda o: o["name"],
)
def test_float64_with_a_reachable_tol_converges(optimizer: dict) -> None:
    d = descend(
        HIMMELBLAU, torch.tensor(STARTS, dtype=torch.float64), parse_optimizer(optimizer, "o"), 20_000, 1e-10, BOX
    )
    assert [REASONS[r] for r in d.reason] == ["converged"] * 3
    assert np.linalg.norm(MINIMA[None] - d.final[:, None], axis=2).min(1).max() < 1e-10


JOB = """
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 16], y: [-5, 5, 16]}
paths:
  starts: [[-4, 0], [1, 1]]
  steps: 20000
  tol: 1.0e-12
  optimizers: [{name: sgd, lr: 0.001}]
basins: {resolution: 8, steps: 2000, tol: 1.0e-12, optimizer: {name: sgd, lr: 0.001}}
"""


def test_the_file_and_info_name_the_stalled_reason(in_tmp: Path) -> None:
    gradbatch.run_jobs(parse_config(JOB, output=in_tmp / "hb.h5"))
    with h5py.File(in_tmp / "hb.h5", "r") as f:
        p = f["hb/paths/sgd"]
        reasons = list(p.attrs["reasons"])
        assert "stalled" in reasons and reasons[:4] == ["converged", "left_domain", "diverged", "max_steps"]
        assert [reasons[c] for c in p["stop_reason"][...]] == ["stalled", "stalled"]
        assert (p["stop_step"][...] < 2_000).all()
        b = f["hb/basins"]
        assert "stalled" in list(b.attrs["reasons"])
        assert (b["label"][...] >= 0).all()
    text = describe(in_tmp / "hb.h5")
    assert "stalled 2" in text
