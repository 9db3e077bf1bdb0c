"""Loss landscapes, batched against the one-point-at-a-time loops people use today.

Network: the built-in MLP 2-64-64-2 trained on 2,000 two-moons points, a filter-normalised plane
of 101 x 101 points. gradbatch evaluates value and gradient (vmap over functional_call, chunks of
points); the baselines evaluate the value only, one point at a time, on the same model, data and
plane, as two well-known tools do:

- "Li et al.": the loop of "Visualizing the Loss Landscape of Neural Nets" (set_weights, then
  eval_loss over a DataLoader in batches of 128, loss.item() per batch);
- "loss-landscapes": the loop of the loss-landscapes package (parameters moved in place, one
  full-batch forward, loss.item());
- "autograd loop": one point at a time, value and gradient (what gradbatch computes).

Loops run on ``--sample`` random points of the plane (their values are checked against
gradbatch's) and are extrapolated to the whole plane. Data: seed 002's per-point numpy loop over
its 80 x 160 grid against the same landscape from gradbatch.

    python benchmarks/bench_landscape.py [--side 101] [--sample 500] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import gradbatch
from gradbatch.config import MLPConfig, NetworkSource, parse_config
from gradbatch.functions.models import build_network
from gradbatch.functions.network import build_plane

MLP = "{builtin: mlp, dataset: moons, samples: 2000, hidden: [64, 64], steps: 300, lr: 0.01, seed: 0}"


def _gradbatch(folder: Path, side: int, threads: int, outputs: str) -> tuple[float, np.ndarray]:
    out = folder / f"nn-{outputs}.h5"
    text = (
        f"name: nn\nfunction: {{network: {{model: {MLP}, directions: filter, seed: 0}}}}\n"
        f"grid: {{alpha: [-1, 1, {side}], beta: [-1, 1, {side}]}}\nthreads: {threads}\noutputs: [{outputs}]\n"
    )
    reports = gradbatch.run_jobs(parse_config(text, output=out), overwrite=True)
    return reports[0].compute_s, gradbatch.read_field(out, "nn", "value")


def _points(side: int, sample: int, seed: int = 0) -> list[tuple[int, int, float, float]]:
    g = np.linspace(-1, 1, side)
    rs = np.random.RandomState(seed)
    idx = rs.choice(side * side, size=min(sample, side * side), replace=False)
    return [(int(k // side), int(k % side), float(g[k % side]), float(g[k // side])) for k in idx]


def _li_et_al(net, plane, pts) -> tuple[float, list[float]]:  # noqa: ANN001
    model = copy.deepcopy(net.model)
    weights = [p.data.clone() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    dx = [plane.directions[0][n] for n in names]
    dy = [plane.directions[1][n] for n in names]
    loader = DataLoader(TensorDataset(net.inputs, net.targets), batch_size=128, shuffle=False)
    out = []
    t0 = time.perf_counter()
    for _, _, a, b in pts:
        changes = [d0 * a + d1 * b for d0, d1 in zip(dx, dy)]  # net_plotter.set_weights
        for p, w, d in zip(model.parameters(), weights, changes):
            p.data = w + torch.Tensor(d).type(type(w))
        total, n = 0.0, 0  # evaluation.eval_loss
        model.eval()
        with torch.no_grad():
            for inputs, targets in loader:
                loss = net.loss(model(inputs), targets)
                total += loss.item() * inputs.size(0)
                n += inputs.size(0)
        out.append(total / n)
    return time.perf_counter() - t0, out


def _loss_landscapes(net, plane, pts) -> tuple[float, list[float]]:  # noqa: ANN001
    model = copy.deepcopy(net.model)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    start = [p.detach().clone() for p in params]
    dx = [plane.directions[0][n] for n in names]
    dy = [plane.directions[1][n] for n in names]
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for _, _, a, b in pts:
            for p, s, d0, d1 in zip(params, start, dx, dy):  # ModelParameters moved in place
                p.copy_(s).add_(d0, alpha=a).add_(d1, alpha=b)
            out.append(net.loss(model(net.inputs), net.targets).item())  # metrics.Loss
    return time.perf_counter() - t0, out


def _autograd_loop(net, plane, pts) -> tuple[float, list[float]]:  # noqa: ANN001
    names = list(plane.theta)
    out = []
    t0 = time.perf_counter()
    for _, _, a, b in pts:
        ab = torch.tensor([a, b], requires_grad=True)
        p = {n: plane.theta[n] + ab[0] * plane.directions[0][n] + ab[1] * plane.directions[1][n] for n in names}
        loss = net.loss(torch.func.functional_call(net.model, p, (net.inputs,)), net.targets)
        torch.autograd.grad(loss, ab)
        out.append(float(loss.detach()))
    return time.perf_counter() - t0, out


def _seed002(folder: Path) -> dict[str, float]:
    """Seed 002's compute_loss_landscape loop (numpy, one point at a time) on its own grid."""
    np.random.seed(42)
    x = np.arange(-5, 5, 0.25)
    y_true = x * 2 - 3 + np.random.normal(size=x.shape)
    m_range, b_range = np.arange(-20, 20, 0.5), np.arange(-40, 40, 0.5)

    def loss(m: float, b: float) -> float:
        return float(np.sum((y_true - (m * x + b)) ** 2))

    t0 = time.perf_counter()
    grid = np.zeros((len(b_range), len(m_range)))
    for i, b in enumerate(b_range):
        for j, m in enumerate(m_range):
            grid[i, j] = loss(m, b)
    t_loop = time.perf_counter() - t0
    out = folder / "s2.h5"
    text = (
        "name: s2\nfunction: {landscape: {model: linear}}\ndtype: float64\n"
        f"grid: {{m: [-20, 19.5, {len(m_range)}], b: [-40, 39.5, {len(b_range)}]}}\n"
    )
    r = gradbatch.run_jobs(parse_config(text, output=out), overwrite=True)[0]
    np.testing.assert_allclose(gradbatch.read_field(out, "s2", "value"), grid, rtol=1e-10)
    return {"seed002_loop_s": t_loop, "seed002_gradbatch_s": r.compute_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=101)
    ap.add_argument("--sample", type=int, default=500, help="points each loop is timed on")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for every method")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.side * args.side
    res: dict[str, float] = {"points": n, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        src = NetworkSource(MLPConfig(), directions="filter", seed=0)
        net = build_network(src)
        plane = build_plane(net, src, 2)
        print(f"trained the MLP in {time.perf_counter() - t0:.1f} s", flush=True)
        t_vg, values = _gradbatch(folder, args.side, args.threads, "value, gradient")
        t_v, values_only = _gradbatch(folder, args.side, args.threads, "value")
        torch.set_num_threads(args.threads)  # jobs restore the caller's setting; make sure
        print(
            f"gradbatch, {args.side}x{args.side} plane: value + gradient {t_vg:.2f} s "
            f"({t_vg / n * 1e3:.2f} ms/point), value only {t_v:.2f} s ({t_v / n * 1e3:.2f} ms/point)",
            flush=True,
        )
        res.update(gradbatch_value_grad_s=t_vg, gradbatch_value_s=t_v)
        pts = _points(args.side, args.sample)
        want = np.array([values[j, i] for j, i, _, _ in pts])
        for name, fn, grad in (
            ("Li et al. loop", _li_et_al, False),
            ("loss-landscapes loop", _loss_landscapes, False),
            ("autograd loop", _autograd_loop, True),
        ):
            t, got = fn(net, plane, pts)
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)  # the same landscape
            whole = t / len(pts) * n
            ours = t_vg if grad else t_v
            print(
                f"{name:<22} {t / len(pts) * 1e3:6.2f} ms/point -> {whole:7.1f} s for the plane "
                f"({'value + gradient' if grad else 'value'}); gradbatch {whole / ours:.1f}x faster "
                f"(against its {'value + gradient' if grad else 'value-only'} run)",
                flush=True,
            )
            key = name.split()[0].lower().replace(".", "").replace("-", "_")
            res[f"{key}_s"] = whole
            res[f"{key}_speedup"] = whole / ours
            res[f"{key}_speedup_vs_value_grad"] = whole / t_vg
        s2 = _seed002(folder)
        print(
            f"seed 002's per-point numpy loop, 80x160: {s2['seed002_loop_s']:.3f} s; gradbatch value + gradient "
            f"{s2['seed002_gradbatch_s']:.3f} s ({s2['seed002_loop_s'] / s2['seed002_gradbatch_s']:.1f}x)",
            flush=True,
        )
        res.update(s2)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
