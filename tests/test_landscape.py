"""Loss landscapes: of data (checked against numpy's least squares and hand-derived gradients,
seed 002's) and of networks (plane, directions, gradients, trajectory, errors)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ConfigError, FunctionError

SEED002 = (
    "name: lin\nfunction: {landscape: {model: linear}}\ngrid: {m: [-20, 20, 81], b: [-40, 40, 161]}\ndtype: float64\n"
)


def _run(tmp: Path, text: str, name: str = "j.h5") -> h5py.File:
    out = tmp / name
    gradbatch.run_jobs(parse_config(text, output=out, source=tmp / "job.yaml"), overwrite=True)
    return h5py.File(out, "r")


def _seed002_data() -> tuple[np.ndarray, np.ndarray]:
    """Seed 002 exactly: np.random.seed(42), x = arange(-5, 5, 0.25), y = 2x - 3 + N(0, 1)."""
    rs = np.random.RandomState(42)
    x = np.arange(-5, 5, 0.25)
    return x, x * 2 - 3 + rs.normal(size=x.shape)


def test_seed002_landscape_minimum_is_numpys_least_squares(tmp_path: Path) -> None:
    x, y = _seed002_data()
    (m_ls, b_ls), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
    with _run(
        tmp_path, SEED002 + "paths: {starts: [[-15, -30]], steps: 3000, optimizers: [{name: sgd, lr: 0.001}]}\n"
    ) as f:
        g = f["lin"]
        np.testing.assert_allclose(g["landscape/x"][...], x)
        np.testing.assert_allclose(g["landscape/y"][...], y)
        np.testing.assert_allclose(g["landscape"].attrs["lstsq"], [m_ls, b_ls], rtol=1e-12)
        v = g["value"][...]
        j, i = np.unravel_index(np.argmin(v), v.shape)
        m, b = g["m"][...], g["b"][...]
        assert abs(m[i] - m_ls) <= 0.5 / 2 + 1e-9 and abs(b[j] - b_ls) <= 0.5 / 2 + 1e-9  # the nearest grid point
        # values and gradients are seed 002's SSE and its hand-derived partial derivatives
        for jj, ii in [(0, 0), (37, 60), (160, 80), (j, i)]:
            r = y - (m[ii] * x + b[jj])
            assert v[jj, ii] == pytest.approx((r**2).sum(), rel=1e-12)
            assert g["grad_m"][jj, ii] == pytest.approx(-2 * (x * r).sum(), rel=1e-9, abs=1e-9)
            assert g["grad_b"][jj, ii] == pytest.approx(-2 * r.sum(), rel=1e-9, abs=1e-9)
        # gradient descent from seed 002's start (-15, -30) ends at the least-squares fit
        end = g["paths/sgd/positions"][0][np.isfinite(g["paths/sgd/positions"][0]).all(1)][-1]
        np.testing.assert_allclose(end, [m_ls, b_ls], atol=1e-3)


def test_logistic_cross_entropy_and_its_gradient(tmp_path: Path) -> None:
    text = (
        "name: log\nfunction: {landscape: {model: logistic, data: {synthetic: {slope: 1.5, bias: 0.5, n: 200,"
        " x: [-4, 4], seed: 3}}}}\ngrid: {w: [-3, 5, 17], c: [-2, 3, 11]}\ndtype: float64\n"
    )
    with _run(tmp_path, text) as f:
        g = f["log"]
        x, y = g["landscape/x"][...], g["landscape/y"][...]
        assert set(np.unique(y)) == {0.0, 1.0}
        w, c = g["w"][...], g["c"][...]
        for jj, ii in [(0, 0), (5, 9), (10, 16)]:
            z = w[ii] * x + c[jj]
            p = 1 / (1 + np.exp(-z))
            assert g["value"][jj, ii] == pytest.approx(np.mean(np.logaddexp(0, z) - y * z), rel=1e-8)
            assert g["grad_w"][jj, ii] == pytest.approx(np.mean((p - y) * x), rel=1e-8, abs=1e-12)
            assert g["grad_c"][jj, ii] == pytest.approx(np.mean(p - y), rel=1e-8, abs=1e-12)


def test_data_from_csv_and_npz_files(tmp_path: Path) -> None:
    x = np.linspace(0, 1, 30)
    y = 3 * x + 1
    (tmp_path / "d.csv").write_text("time,obs\n" + "\n".join(f"{a},{b}" for a, b in zip(x, y)))
    np.savez(tmp_path / "d.npz", time=x, obs=y)
    for name in ("d.csv", "d.npz"):
        text = (
            f"name: f\nfunction: {{landscape: {{data: {{file: {name}, x: time, y: obs}}, loss: mse}}}}\n"
            "grid: {m: [0, 6, 61], b: [-1, 3, 41]}\ndtype: float64\n"
        )
        with _run(tmp_path, text, name + ".h5") as f:
            v = f["f/value"][...]
            j, i = np.unravel_index(np.argmin(v), v.shape)
            assert (f["f/m"][i], f["f/b"][j]) == pytest.approx((3.0, 1.0))
            assert v[j, i] == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize(
    "function, message",
    [
        ("{landscape: {model: ridge}}", "function.landscape.model: expected one of linear, logistic"),
        ("{landscape: {model: linear, loss: cross_entropy}}", "function.landscape.loss: expected one of sse, mse"),
        ("{landscape: {data: {file: nope.csv}}}", "nope.csv does not exist"),
        ("{landscape: {data: {file: d.csv, x: t}}}", "has no column 't'; columns: x, y"),
        ("{landscape: {model: logistic, data: {file: d.csv}}}", "labels 0 or 1 in 'y'; found 2"),
        ("{landscape: {data: {synthetic: {n: 1}}}}", "synthetic.n: expected an integer of at least 2"),
        ("{network: {directions: sideways}}", "function.network.directions: expected one of random, filter"),
        ("{network: {model: {builtin: mlp, hidden: [0]}}}", "model.hidden: expected a list of layer widths"),
        ("{network: {model: {callable: 'nomodule_here:f'}}}", "cannot import module 'nomodule_here'"),
        ("{network: {directions: checkpoints, checkpoints: [0, 10]}}", "a 2-axis grid is the plane through 3"),
    ],
)
def test_landscape_setting_errors(tmp_path: Path, function: str, message: str) -> None:
    (tmp_path / "d.csv").write_text("x,y\n0,1\n1,2\n2,3\n")
    with pytest.raises((ConfigError, FunctionError), match=message.replace("(", r"\(").replace("[", r"\[")):
        gradbatch.run_jobs(
            parse_config(
                f"name: e\nfunction: {function}\ngrid: {{a: [-1, 1, 5], b: [-1, 1, 5]}}\n",
                output=tmp_path / "e.h5",
                source=tmp_path / "job.yaml",
            )
        )
    assert not (tmp_path / "e.h5").exists()
    with pytest.raises(ConfigError, match="needs 2 axes, it has 3"):
        parse_config("function: {landscape: {}}\ngrid: {a: [0, 1, 3], b: [0, 1, 3], c: [0, 1, 3]}\n")


MLP = "{builtin: mlp, hidden: [8], samples: 200, steps: 60, record_every: 5, seed: 1}"


def _net(tmp: Path, extra: str, grid: str = "{alpha: [-1, 1, 5], beta: [-1, 1, 5]}", name: str = "n.h5") -> h5py.File:
    return _run(tmp, f"name: n\nfunction: {{network: {{model: {MLP}{extra}}}}}\ngrid: {grid}\ndtype: float64\n", name)


def _problem() -> tuple[object, object]:
    from gradbatch.config import MLPConfig, NetworkSource
    from gradbatch.functions.models import build_network

    src = NetworkSource(MLPConfig(hidden=(8,), samples=200, steps=60, record_every=5, seed=1))
    return src, build_network(src)


def _loss_at(net, theta: dict, dirs: list, coef: tuple[float, ...]) -> float:  # noqa: ANN001
    p = {k: theta[k].double() + sum(c * d[k].double() for c, d in zip(coef, dirs)) for k in theta}
    model = __import__("copy").deepcopy(net.model).double()
    with torch.no_grad():
        return float(net.loss(torch.func.functional_call(model, p, (net.inputs.double(),)), net.targets))


def test_network_plane_value_at_the_origin_and_gradient_by_finite_differences(tmp_path: Path) -> None:
    """A smooth (tanh) model from a factory, so central differences are a fair reference (a ReLU
    network's loss has a kink for every sample and unit: differences straddle them)."""
    from gradbatch.config import NetworkSource
    from gradbatch.functions.models import build_network
    from gradbatch.functions.network import build_plane

    (tmp_path / "models.py").write_text(textwrap.dedent(FACTORY))
    with _run(
        tmp_path,
        "name: n\nfunction: {network: {model: {callable: 'models:good'}, directions: filter, "
        "seed: 4}}\ngrid: {alpha: [-1, 1, 5], beta: [-1, 1, 5]}\ndtype: float64\n",
    ) as f:
        g = f["n"]
        lm = g["landscape"]
        assert g["value"][2, 2] == pytest.approx(lm.attrs["loss_at_theta"], rel=1e-6)  # alpha = beta = 0
        src = NetworkSource("models:good", tmp_path.resolve(), directions="filter", seed=4)
        net = build_network(src)
        plane = build_plane(net, src, 2)
        for n, v in zip(lm.attrs["parameters"], _split(lm)):
            np.testing.assert_allclose(v, plane.theta[n].numpy(), rtol=1e-6)
        dirs = plane.directions
        for jj, ii in [(1, 3), (4, 0), (2, 2)]:
            a, b = float(g["alpha"][ii]), float(g["beta"][jj])
            assert g["value"][jj, ii] == pytest.approx(_loss_at(net, plane.theta, dirs, (a, b)), rel=1e-6)
            h = 1e-5
            fd_a = (_loss_at(net, plane.theta, dirs, (a + h, b)) - _loss_at(net, plane.theta, dirs, (a - h, b))) / (
                2 * h
            )
            fd_b = (_loss_at(net, plane.theta, dirs, (a, b + h)) - _loss_at(net, plane.theta, dirs, (a, b - h))) / (
                2 * h
            )
            assert g["grad_alpha"][jj, ii] == pytest.approx(fd_a, rel=1e-6, abs=1e-8)
            assert g["grad_beta"][jj, ii] == pytest.approx(fd_b, rel=1e-6, abs=1e-8)


def test_mlp_plane_value_at_the_origin_is_the_trained_loss(tmp_path: Path) -> None:
    src, net = _problem()
    with _net(tmp_path, ", directions: random") as f:
        at = _loss_at(net, {k: v.detach() for k, v in net.model.named_parameters()}, [], ())
        assert f["n/value"][2, 2] == pytest.approx(at, rel=1e-6)
        assert f["n/landscape"].attrs["loss_at_theta"] == pytest.approx(at, rel=1e-6)


def _split(lm: h5py.Group) -> list[np.ndarray]:
    """θ* from the store, cut back into the model's parameters."""
    import json

    flat, out, i = lm["theta"][...], [], 0
    for shape in json.loads(lm.attrs["shapes"]):
        n = int(np.prod(shape))
        out.append(flat[i : i + n].reshape(shape))
        i += n
    return out


def test_filter_normalised_directions_have_the_weights_filter_norms() -> None:
    from gradbatch.functions.network import filter_normalize

    gen = torch.Generator().manual_seed(0)
    theta = {"w": torch.randn(5, 3, 2, generator=gen), "b": torch.randn(5, generator=gen)}
    d = {k: torch.randn(v.shape, generator=gen) for k, v in theta.items()}
    out = filter_normalize(d, theta)
    torch.testing.assert_close(out["w"].reshape(5, -1).norm(dim=1), theta["w"].reshape(5, -1).norm(dim=1))
    assert torch.equal(out["b"], torch.zeros(5))  # biases left out
    # each filter keeps its direction
    cos = torch.nn.functional.cosine_similarity(out["w"].reshape(5, -1), d["w"].reshape(5, -1), dim=1)
    torch.testing.assert_close(cos, torch.ones(5))
    out = filter_normalize(d, theta, include_1d=True)
    assert float(out["b"].norm()) == pytest.approx(float(theta["b"].norm()))


def test_pca_plane_holds_the_training_trajectory(tmp_path: Path) -> None:
    with _net(tmp_path, ", directions: pca", "{alpha: [-20, 5, 11], beta: [-5, 5, 9]}") as f:
        g = f["n"]
        var = g["landscape"].attrs["explained_variance"]
        assert len(var) == 2 and 0 < var[1] <= var[0] and var.sum() <= 1 + 1e-9
        tr = g["paths/training"]
        pos = tr["positions"][0]
        assert pos.shape == (13, 2)  # steps 0, 5, ..., 60
        np.testing.assert_allclose(pos[-1], 0.0, atol=1e-4)  # θ* is the trajectory's end
        assert tr["values"][0, -1] == pytest.approx(g["landscape"].attrs["loss_at_theta"], rel=1e-5)
        assert tr["values"][0, 0] > tr["values"][0, -1]  # training lowered the loss
        assert list(tr.attrs["recorded_steps"]) == list(range(0, 61, 5))
    from gradbatch.store import inspect

    assert "training" in str(inspect(tmp_path / "n.h5").jobs[0].trajectories)


def test_plane_through_three_checkpoints(tmp_path: Path) -> None:
    src, net = _problem()
    with _net(
        tmp_path, ", directions: checkpoints, checkpoints: [0, 30, 60]", "{alpha: [0, 1, 3], beta: [0, 1, 3]}"
    ) as f:
        v = f["n/value"][...]
        losses = {s: _loss_at(net, net.trajectory[net.steps.index(s)], [], ()) for s in (0, 30, 60)}
        assert v[0, 0] == pytest.approx(losses[0], rel=1e-5)
        assert v[0, 2] == pytest.approx(losses[30], rel=1e-5)  # alpha = 1: the second checkpoint
        assert v[2, 0] == pytest.approx(losses[60], rel=1e-5)  # beta = 1: the third


def test_a_line_through_two_checkpoint_files(tmp_path: Path) -> None:
    src, net = _problem()
    torch.save(net.trajectory[0], tmp_path / "a.pt")
    torch.save(net.trajectory[-1], tmp_path / "b.pt")
    with _net(tmp_path, ", directions: checkpoints, checkpoints: [a.pt, b.pt]", "{t: [0, 1, 5]}") as f:
        v = f["n/value"][...]
        assert v[0] == pytest.approx(_loss_at(net, net.trajectory[0], [], ()), rel=1e-5)
        assert v[-1] == pytest.approx(_loss_at(net, net.trajectory[-1], [], ()), rel=1e-5)


FACTORY = """
import torch
from torch import nn

def good():
    torch.manual_seed(0)
    x = torch.randn(50, 3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    return model, nn.MSELoss(), (x, x.sum(1, keepdim=True))

def wrong_inputs():
    model = nn.Linear(3, 1)
    return model, nn.MSELoss(), (torch.randn(10, 5), torch.randn(10, 1))

def not_a_model():
    return "model", nn.MSELoss(), (torch.randn(10, 3), torch.randn(10, 1))

def unreduced():
    return nn.Linear(3, 1), nn.MSELoss(reduction="none"), (torch.randn(10, 3), torch.randn(10, 1))

def on_cuda():
    torch.manual_seed(0)
    x = torch.randn(50, 3, device="cuda")
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).cuda()
    trajectory = []
    for k in range(4):
        trajectory.append({n: p.detach() + 0.1 * k * torch.randn_like(p) for n, p in model.named_parameters()})
    return {"model": model, "loss": nn.MSELoss(), "inputs": x, "targets": x.sum(1, keepdim=True),
            "trajectory": trajectory}
"""


@pytest.mark.parametrize(
    "ref, message",
    [
        ("wrong_inputs", r"loss\(model\(inputs\), targets\) failed with inputs of shape \(10, 5\)"),
        ("not_a_model", "returned a str as the model; expected a torch.nn.Module"),
        ("unreduced", r"the loss must be one number \(a reduced loss\); got \(10, 1\)"),
    ],
)
def test_model_factory_errors(tmp_path: Path, ref: str, message: str) -> None:
    (tmp_path / "models.py").write_text(textwrap.dedent(FACTORY))
    with pytest.raises(FunctionError, match=message):
        _run(
            tmp_path,
            f"name: n\nfunction: {{network: {{model: {{callable: 'models:{ref}'}}}}}}\n"
            "grid: {a: [-1, 1, 3], b: [-1, 1, 3]}\n",
        )


def test_a_users_model_factory_runs_with_random_directions(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(textwrap.dedent(FACTORY))
    with _run(
        tmp_path,
        "name: n\nfunction: {network: {model: {callable: 'models:good'}, directions: random}}\n"
        "grid: {a: [-1, 1, 5], b: [-1, 1, 5]}\n",
    ) as f:
        assert np.isfinite(f["n/value"][...]).all() and f["n/value"][2, 2] == pytest.approx(
            f["n/landscape"].attrs["loss_at_theta"], rel=1e-5
        )
        assert "paths" not in f["n"]  # no trajectory given: none stored


@pytest.mark.gpu
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_factory_that_builds_on_cuda_runs_on_either_device(tmp_path: Path, device: str) -> None:
    """A model trained on the GPU and returned there (with its data and trajectory) is held on
    the CPU: the landscape, its makings and the projected training path all come out."""
    (tmp_path / "models.py").write_text(textwrap.dedent(FACTORY))
    with _run(
        tmp_path,
        "name: n\nfunction: {network: {model: {callable: 'models:on_cuda'}, directions: pca}}\n"
        f"grid: {{a: [-1, 1, 5], b: [-1, 1, 5]}}\ndevice: {device}\n",
    ) as f:
        assert np.isfinite(f["n/value"][...]).all()
        assert np.isfinite(f["n/landscape/theta"][...]).all()


def test_basins_on_a_data_landscape_find_the_fit_as_a_minimum(tmp_path: Path) -> None:
    """A landscape has first derivatives only through its chunks: the Hessian that classifies
    the point found comes from differences of the autograd gradient."""
    x, y = _seed002_data()
    (m_ls, b_ls), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
    with _run(tmp_path, SEED002 + "basins: {resolution: 4, steps: 3000, optimizer: {name: sgd, lr: 0.001}}\n") as f:
        t = f["lin/basins/minima"]
        np.testing.assert_allclose(t["point"][...], [[m_ls, b_ls]], rtol=1e-9)
        assert t["kind"].asstr()[0] == "minimum" and (t["eigenvalues"][0] > 0).all()
        np.testing.assert_allclose(
            sorted(t["eigenvalues"][0]),  # the SSE's Hessian: 2 [[sum x^2, sum x], [sum x, n]]
            np.linalg.eigvalsh(2 * np.array([[x @ x, x.sum()], [x.sum(), len(x)]])),
            rtol=1e-5,
        )


def test_a_landscape_is_built_once_and_its_makings_come_from_the_plan(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """No landscape is rebuilt after the tiles (and no process-wide cache stands in for that):
    the data are read and the network trained once per job, for the tiles and the file alike."""
    from gradbatch.functions import landscape, models, network

    calls = {"data": 0, "net": 0}
    load, build = landscape.load_data, models.build_network

    def counting_load(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["data"] += 1
        return load(*a, **k)

    def counting_build(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["net"] += 1
        return build(*a, **k)

    monkeypatch.setattr(landscape, "load_data", counting_load)
    monkeypatch.setattr(network, "build_network", counting_build)
    with _run(
        tmp_path,
        "name: d\nfunction: {landscape: {data: {synthetic: {n: 20}}}}\n"
        "grid: {m: [-1, 1, 5], b: [-1, 1, 5]}\npaths: {starts: [[0, 0]], steps: 3}\n",
    ) as f:
        assert f["d/landscape/x"].shape == (20,)
    assert calls["data"] == 1
    with _net(tmp_path, ", directions: pca", name="p.h5") as f:
        assert "training" in f["n/paths"] and "theta" in f["n/landscape"]
    assert calls["net"] == 1
    assert not hasattr(models.build_network, "cache_info")


def test_the_faster_way_to_evaluate_a_batch_is_chosen_per_device_and_dtype() -> None:
    """A network's batch is evaluated by vmap or by a loop, whichever the first chunk finds
    faster (timed after a warm-up), then that one for every chunk; values and gradients are
    the chosen way's."""
    import time as _time

    from gradbatch.functions.chunked import Fastest, chunked_field

    calls: list[str] = []

    def quick(*c: torch.Tensor) -> torch.Tensor:
        calls.append("quick")
        return c[0] ** 2 + 3 * c[1]

    def slow(*c: torch.Tensor) -> torch.Tensor:
        calls.append("slow")
        _time.sleep(0.02)
        return c[0] ** 2 + 3 * c[1]

    ways = Fastest(slow=slow, quick=quick)
    f = chunked_field(ways, 8)
    x = torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(5, 8)
    y = torch.linspace(0, 2, 40, dtype=torch.float64).reshape(5, 8)
    xs, ys = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    v = f(xs, ys)
    gx, gy = torch.autograd.grad(v.sum(), (xs, ys))
    torch.testing.assert_close(v.detach(), x**2 + 3 * y)
    torch.testing.assert_close(gx, 2 * x)
    torch.testing.assert_close(gy, torch.full_like(y, 3.0))
    (key,) = ways.chosen
    assert key == (torch.device("cpu"), torch.float64, True) and ways.chosen[key][0] == "quick"
    assert calls.count("slow") == 2  # the warm-up and the timed chunk, never again
    f(x.float(), y.float())  # another dtype, no gradient: chosen again for that
    assert len(ways.chosen) == 2


def test_both_ways_of_a_network_batch_agree_and_leave_the_users_model_alone() -> None:
    """The loop moves a private copy's parameters in place for the value alone (no
    functional_call, as loss-landscapes does) and uses functional_call when a gradient is
    wanted; vmap always does. Values and gradients agree; the user's model is not touched."""
    from gradbatch.functions.network import _network_loss, build_plane

    src, net = _problem()
    before = {k: v.detach().clone() for k, v in net.model.state_dict().items()}
    plane = build_plane(net, src, 2)
    ways = _network_loss(net, plane).ways
    c = [torch.linspace(-1, 1, 6, dtype=torch.float64), torch.linspace(0.5, -0.5, 6, dtype=torch.float64)]
    with torch.no_grad():
        value_loop, value_vmap = ways["loop"](*c), ways["vmap"](*c)
    theta = {k: v for k, v in plane.theta.items()}
    expected = [_loss_at(net, theta, plane.directions, (float(a), float(b))) for a, b in zip(*c)]
    torch.testing.assert_close(value_loop, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(value_vmap, value_loop, rtol=1e-12, atol=1e-12)
    grads = []
    for way in ("loop", "vmap"):
        cs = [t.clone().requires_grad_(True) for t in c]
        v = ways[way](*cs)
        grads.append(torch.autograd.grad(v.sum(), cs))
        torch.testing.assert_close(v.detach(), value_loop, rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for k, v in net.model.state_dict().items():
        assert torch.equal(v, before[k]), k
