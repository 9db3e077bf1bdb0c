"""Loss landscapes as field functions: of data (two-parameter regression) and of neural networks.

Both become a :class:`FieldFunction` of the grid coordinates, so everything downstream (tiles,
gradients, pyramid, paths, basins, streamlines, the viewer) works on them unchanged:

- **data**: the loss of ``y = m·x + b`` (linear) or ``sigmoid(m·x + b)`` (logistic) over a
  dataset, the grid's axes being (m, b). A batch of grid points is evaluated against every data
  row at once, as a ``[points, rows]`` array.
- **network**: a model's loss at ``θ* + α·d₁ + β·d₂``. A batch of (α, β) points becomes a batch
  of parameter sets evaluated together with ``torch.func.vmap`` over ``functional_call``.

Either way points are evaluated in chunks by :class:`_PerPointLoss`: each chunk's value and its
gradient in the grid's coordinates (autograd through the model, i.e. the parameter gradient
projected on d₁, d₂) are computed at once and only the per-point gradients are kept, so memory is
bounded by one chunk whatever the tile size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import DataLandscapeSource, FileData, MLPConfig, NetworkSource, SyntheticData
from .errors import ConfigError, FunctionError
from .functions import FieldFunction, import_callable
from .records import Minimum

__all__ = ["load_data", "data_landscape", "network_landscape", "Network", "Plane", "build_network",
           "build_plane", "project", "make_dataset", "lstsq_minimum", "filter_normalize"]

BatchLoss = Callable[..., torch.Tensor]  # coordinate tensors [B] -> loss [B]


# -- chunked evaluation ------------------------------------------------------------------------
class _PerPointLoss(torch.autograd.Function):
    """Values of ``batch_loss`` at P points, evaluated ``chunk`` points at a time, each distinct
    point once (a tile's padding repeats its last row and column: not worth a network's time).

    When a gradient is wanted, each chunk's gradient in the coordinates is computed right away
    and kept (P numbers per axis), and the chunk's graph is freed: backward only scales them.
    """

    @staticmethod
    def forward(ctx: Any, batch_loss: BatchLoss, chunk: int, *coords: torch.Tensor) -> torch.Tensor:
        need = any(ctx.needs_input_grad[2:])
        points = torch.stack([c.detach() for c in coords], 1)
        inverse = _distinct(coords)
        n = int(inverse.max()) + 1 if inverse.numel() else 0
        rep = torch.empty(n, dtype=torch.long, device=points.device)
        rep.scatter_(0, inverse, torch.arange(inverse.numel(), device=points.device))  # one of each
        uniq = points[rep]
        values = torch.empty(n, dtype=points.dtype, device=points.device)
        grads = torch.empty_like(uniq) if need else None
        for s in range(0, n, chunk):
            part = list(uniq[s:s + chunk].unbind(1))
            if need:
                with torch.enable_grad():
                    part = [p.clone().requires_grad_() for p in part]
                    v = batch_loss(*part)
                    gs = torch.autograd.grad(v.sum(), part)
                assert grads is not None
                grads[s:s + chunk] = torch.stack(gs, 1)
            else:
                v = batch_loss(*part)
            values[s:s + chunk] = v.detach()
        ctx.save_for_backward(grads[inverse] if grads is not None else None)
        return values[inverse]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        (grads,) = ctx.saved_tensors
        return (None, None, *(grad_out * g for g in grads.unbind(1)))


def _distinct(coords: Sequence[torch.Tensor]) -> torch.Tensor:
    """For each point, the index of its distinct point: one 1D ``unique`` per axis and one over
    the combined keys (a row-wise ``unique(dim=0)`` is 50x slower)."""
    key = torch.zeros(coords[0].shape, dtype=torch.long, device=coords[0].device)
    for c in coords:
        values, inv = torch.unique(c.detach(), return_inverse=True)
        key = key * len(values) + inv
    return torch.unique(key, return_inverse=True)[1]


def _field(batch_loss: BatchLoss, chunk: int) -> Callable[..., torch.Tensor]:
    """An elementwise field function from a batched loss: flatten, evaluate in chunks, reshape."""

    def fn(*coords: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(*(c.shape for c in coords))
        flat = [c.expand(shape).reshape(-1) for c in coords]
        return _PerPointLoss.apply(batch_loss, chunk, *flat).reshape(shape)

    return fn


class _PerDevice:
    """Host tensors copied once to each (device, dtype) a function is called with."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.host = tensors
        self.cache: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    def on(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self.cache:
            self.cache[key] = {k: (v.to(like.device, like.dtype) if v.is_floating_point() else v.to(like.device))
                               for k, v in self.host.items()}
        return self.cache[key]


# -- data landscapes ---------------------------------------------------------------------------
def load_data(src: DataLandscapeSource, where: str = "function.landscape.data") -> tuple[np.ndarray, np.ndarray]:
    """The dataset's x and y (float64). Synthetic data uses numpy's ``RandomState(seed)``."""
    d = src.data
    if isinstance(d, SyntheticData):
        x = np.linspace(d.x_range[0], d.x_range[1], d.n)
        rs = np.random.RandomState(d.seed)
        z = d.slope * x + d.bias
        if src.model == "linear":
            y = z + d.noise * rs.normal(size=d.n)
        else:
            y = (rs.uniform(size=d.n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
        return x, y
    assert isinstance(d, FileData)
    cols = _read_columns(d, where)
    x, y = cols[d.x], cols[d.y]
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"{where}: columns {d.x!r} and {d.y!r} of {d.path} must be 1D and equally long; "
                          f"got shapes {x.shape} and {y.shape}")
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError(f"{where}: {d.path} needs at least 2 rows of finite numbers in {d.x!r} and {d.y!r}")
    if src.model == "logistic" and not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][0]
        raise ConfigError(f"{where}.y: logistic regression needs labels 0 or 1 in {d.y!r}; found {bad:g}")
    return x, y


def _read_columns(d: FileData, where: str) -> dict[str, np.ndarray]:
    if not d.path.exists():
        raise ConfigError(f"{where}.file: {d.path} does not exist")
    try:
        if d.path.suffix.lower() == ".npz":
            with np.load(d.path) as z:
                cols = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
        else:
            arr: Any = np.genfromtxt(d.path, delimiter=",", names=True, dtype=np.float64, encoding="utf-8")
            cols = {k: np.atleast_1d(arr[k]).astype(np.float64) for k in (arr.dtype.names or ())}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}.file: cannot read {d.path} ({exc})") from None
    for k in (d.x, d.y):
        if k not in cols:
            raise ConfigError(f"{where}: {d.path} has no column {k!r}; columns: {', '.join(cols) or 'none'}")
    return cols


def lstsq_minimum(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and bias minimising the squared error (``numpy.linalg.lstsq``)."""
    a = np.stack([x, np.ones_like(x)], axis=1)
    (m, b), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(m), float(b)


def _data_loss(model: str, loss: str, data: _PerDevice) -> BatchLoss:
    def batch_loss(m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        t = data.on(m)
        z = m[:, None] * t["x"] + b[:, None]  # [points, rows]
        if model == "logistic" and loss == "cross_entropy":  # mean binary cross-entropy, from logits
            return (torch.nn.functional.softplus(z) - t["y"] * z).mean(dim=1)
        pred = torch.sigmoid(z) if model == "logistic" else z
        sq = (pred - t["y"]) ** 2
        return sq.sum(dim=1) if loss == "sse" else sq.mean(dim=1)

    return batch_loss


def data_landscape(src: DataLandscapeSource, where: str = "function.landscape") -> FieldFunction:
    x, y = load_data(src, where + ".data")
    chunk = src.chunk or max(1, (1 << 22) // len(x))
    ff = _field(_data_loss(src.model, src.loss, _PerDevice(x=torch.from_numpy(x), y=torch.from_numpy(y))), chunk)
    minima: tuple[Minimum, ...] = ()
    if src.model == "linear":  # the least-squares fit is the landscape's one minimum
        m, b = lstsq_minimum(x, y)
        r = y - (m * x + b)
        minima = (Minimum((m, b), float((r ** 2).sum() if src.loss == "sse" else (r ** 2).mean())),)
    text = f"{src.model} regression, {src.loss} loss, {len(x)} rows"
    return FieldFunction(ff, "scalar", 1, "landscape", text, minima)


# -- networks ----------------------------------------------------------------------------------
@dataclass
class Network:
    """A model, its loss ``loss(outputs, targets) -> scalar``, its data, and optionally recorded
    weights (a training trajectory) and the training steps they were recorded at."""

    model: nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    trajectory: list[dict[str, torch.Tensor]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    description: str = ""


@dataclass
class Plane:
    """θ(α, β) = theta + α·directions[0] + β·directions[1] (one direction for a line)."""

    theta: dict[str, torch.Tensor]
    directions: list[dict[str, torch.Tensor]]
    explained_variance: list[float] | None = None

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """θ* and the directions as flat float32 vectors (for the store)."""
        t = torch.cat([v.reshape(-1) for v in self.theta.values()])
        d = torch.stack([torch.cat([dd[k].reshape(-1) for k in self.theta]) for dd in self.directions])
        return t.detach().numpy().astype(np.float32), d.detach().numpy().astype(np.float32)


def make_dataset(name: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two moons or two interleaved spirals: ``n`` points (float32 [n, 2]) with labels 0/1."""
    rs = np.random.RandomState(seed)
    half = n // 2
    if name == "moons":
        t0, t1 = rs.uniform(0, math.pi, half), rs.uniform(0, math.pi, n - half)
        a = np.stack([np.cos(t0), np.sin(t0)], 1)
        b = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)
    else:  # spirals
        t0, t1 = np.sqrt(rs.uniform(0, 1, half)) * 3 * math.pi, np.sqrt(rs.uniform(0, 1, n - half)) * 3 * math.pi
        a = np.stack([t0 * np.cos(t0), t0 * np.sin(t0)], 1) / (3 * math.pi)
        b = -np.stack([t1 * np.cos(t1), t1 * np.sin(t1)], 1) / (3 * math.pi)
    x = np.concatenate([a, b]) + noise * rs.normal(size=(n, 2))
    y = np.concatenate([np.zeros(half), np.ones(n - half)])
    order = rs.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.int64)


def _train_mlp(cfg: MLPConfig) -> Network:
    x, y = make_dataset(cfg.dataset, cfg.samples, cfg.noise, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    widths = (2, *cfg.hidden, 2)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():  # seeded init, independent of torch's global generator
            bound = 1 / math.sqrt(a)
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    loss = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    net = Network(model, loss, inputs, targets,
                  description=f"MLP {'-'.join(map(str, widths))} on {cfg.samples} {cfg.dataset} points, "
                              f"{cfg.steps} Adam steps (lr {cfg.lr:g})")

    def record(step: int) -> None:
        net.trajectory.append({k: v.detach().clone() for k, v in model.named_parameters()})
        net.steps.append(step)

    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        for step in range(cfg.steps):
            if step % cfg.record_every == 0:
                record(step)
            opt.zero_grad()
            loss(model(inputs), targets).backward()
            opt.step()
    record(cfg.steps)
    model.eval()
    return net


def _from_factory(ref: str, base_dir: Path | None, where: str) -> Network:
    factory = import_callable(ref, base_dir, where)
    try:
        out = factory()
    except SystemExit as exc:  # must not end the run, least of all with exit code 0
        raise FunctionError(f"{where}: {ref}() called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise FunctionError(f"{where}: {ref}() raised {type(exc).__name__}: {exc}") from exc
    if isinstance(out, dict):
        missing = [k for k in ("model", "loss", "inputs", "targets") if k not in out]
        if missing:
            raise FunctionError(f"{where}: {ref}() returned a dict without {', '.join(missing)}; expected keys "
                                "model, loss, inputs, targets (and optionally trajectory)")
        model, loss, inputs, targets = out["model"], out["loss"], out["inputs"], out["targets"]
        trajectory = list(out.get("trajectory", []))
    elif isinstance(out, (tuple, list)) and len(out) == 3 and isinstance(out[2], (tuple, list)) and len(out[2]) == 2:
        model, loss, (inputs, targets) = out
        trajectory = []
    else:
        raise FunctionError(f"{where}: {ref}() must return (model, loss, (inputs, targets)) or a dict with "
                            f"model, loss, inputs, targets; got {type(out).__name__}")
    if not isinstance(model, nn.Module):
        raise FunctionError(f"{where}: {ref}() returned a {type(model).__name__} as the model; expected a "
                            "torch.nn.Module")
    if not callable(loss):
        raise FunctionError(f"{where}: {ref}()'s loss is a {type(loss).__name__}, not callable")
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise FunctionError(f"{where}: {ref}()'s inputs and targets must be tensors; got "
                            f"{type(inputs).__name__} and {type(targets).__name__}")
    names = [k for k, _ in model.named_parameters()]
    for i, snap in enumerate(trajectory):
        if not isinstance(snap, dict) or set(snap) != set(names):
            raise FunctionError(f"{where}: {ref}()'s trajectory[{i}] must be a dict of the model's parameters "
                                f"({', '.join(names)})")
    model.eval()
    net = Network(model, loss, inputs, targets, [{k: v.detach() for k, v in s.items()} for s in trajectory],
                  list(range(len(trajectory))), description=f"{type(model).__name__} from {ref}")
    try:
        with torch.no_grad():
            value = loss(model(inputs), targets)
    except Exception as exc:
        raise FunctionError(f"{where}: {ref}(): loss(model(inputs), targets) failed with inputs of shape "
                            f"{tuple(inputs.shape)} and targets of shape {tuple(targets.shape)}: "
                            f"{type(exc).__name__}: {exc}") from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise FunctionError(f"{where}: {ref}(): the loss must be one number (a reduced loss); got {shape}")
    return net


@functools.lru_cache(maxsize=4)
def build_network(src: NetworkSource, where: str = "function.network") -> Network:
    """The trained built-in MLP, or what the user's factory returns (once per source)."""
    if isinstance(src.model, MLPConfig):
        return _train_mlp(src.model)
    return _from_factory(src.model, src.base_dir, f"{where}.model.callable")


def filter_normalize(direction: dict[str, torch.Tensor], theta: dict[str, torch.Tensor],
                     include_1d: bool = False) -> dict[str, torch.Tensor]:
    """Li et al. (2018): scale each filter of ``direction`` (each slice along a weight's first
    dimension) to the norm of the same filter of ``theta``. One-dimensional parameters (biases,
    norm layers) are left out (zero) unless ``include_1d``; then each is scaled as one filter."""
    out = {}
    for k, d in direction.items():
        w = theta[k]
        if d.dim() <= 1:
            out[k] = d * (w.norm() / (d.norm() + 1e-10)) if include_1d else torch.zeros_like(d)
            continue
        dn = d.reshape(d.shape[0], -1).norm(dim=1)
        wn = w.reshape(w.shape[0], -1).norm(dim=1)
        out[k] = d * (wn / (dn + 1e-10)).reshape(-1, *([1] * (d.dim() - 1)))
    return out


def _load_checkpoint(ref: str | int, net: Network, names: Sequence[str], where: str) -> dict[str, torch.Tensor]:
    if isinstance(ref, int):
        if ref not in net.steps:
            raise ConfigError(f"{where}: no weights recorded at training step {ref}; recorded: "
                              f"{net.steps[0]}, {net.steps[1] if len(net.steps) > 1 else ''} ... {net.steps[-1]}")
        return net.trajectory[net.steps.index(ref)]
    try:
        state = torch.load(ref, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot load checkpoint {ref} ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{where}: {ref} holds a {type(state).__name__}; expected a state_dict")
    missing = [n for n in names if n not in state]
    if missing:
        raise ConfigError(f"{where}: {ref} lacks parameters {', '.join(missing[:5])}")
    return {n: state[n].detach().float() for n in names}


def build_plane(net: Network, src: NetworkSource, ndim: int, where: str = "function.network") -> Plane:
    """θ* and ``ndim`` directions as the source asks."""
    params = {k: v.detach().clone() for k, v in net.model.named_parameters()}
    names = list(params)
    if src.directions == "checkpoints":
        cps = [_load_checkpoint(c, net, names, f"{where}.checkpoints[{i}]") for i, c in enumerate(src.checkpoints)]
        for i, c in enumerate(cps):
            for n in names:
                if c[n].shape != params[n].shape:
                    raise ConfigError(f"{where}.checkpoints[{i}]: parameter {n} has shape {tuple(c[n].shape)}, "
                                      f"the model's is {tuple(params[n].shape)}")
        theta = {n: cps[0][n].clone() for n in names}
        return Plane(theta, [{n: c[n] - theta[n] for n in names} for c in cps[1:]])
    if src.directions == "pca":
        if len(net.trajectory) < ndim + 1:
            raise ConfigError(f"{where}.directions: pca needs a recorded training trajectory of at least "
                              f"{ndim + 1} weight sets; the model has {len(net.trajectory)}")
        final = torch.cat([v.reshape(-1) for v in params.values()])
        m = torch.stack([torch.cat([s[n].reshape(-1) for n in names]) for s in net.trajectory]) - final
        _, sv, vt = torch.linalg.svd(m.double(), full_matrices=False)
        var = (sv ** 2) / (sv ** 2).sum()
        dirs = []
        for k in range(ndim):
            flat = vt[k].float()
            dirs.append(_unflatten(flat, params))
        return Plane(params, dirs, [float(v) for v in var[:ndim]])
    gen = torch.Generator().manual_seed(src.seed)
    dirs = []
    for _ in range(ndim):
        d = {n: torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in params.items()}
        dirs.append(filter_normalize(d, params, src.include_1d) if src.directions == "filter" else d)
    return Plane(params, dirs)


def _unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for n, p in like.items():
        out[n] = flat[i:i + p.numel()].reshape(p.shape).to(p.dtype)
        i += p.numel()
    return out


def project(plane: Plane, snapshots: Sequence[dict[str, torch.Tensor]]) -> np.ndarray:
    """Plane coordinates [T, ndim] of weight sets: the least-squares solution of
    ``D c = θ_t - θ*`` (for PCA's orthonormal directions, the dot products)."""
    names = list(plane.theta)
    t0 = torch.cat([plane.theta[n].reshape(-1) for n in names]).double()
    d = torch.stack([torch.cat([dd[n].reshape(-1) for n in names]) for dd in plane.directions], 1).double()
    rhs = torch.stack([torch.cat([s[n].reshape(-1) for n in names]).double() - t0 for s in snapshots], 1)
    sol = torch.linalg.lstsq(d, rhs).solution  # [ndim, T]
    return sol.T.numpy()


def _network_loss(net: Network, plane: Plane) -> BatchLoss:
    from torch.func import functional_call, vmap

    host = {"inputs": net.inputs, "targets": net.targets}
    for n, v in plane.theta.items():
        host[f"theta.{n}"] = v
        for i, d in enumerate(plane.directions):
            host[f"d{i}.{n}"] = d[n]
    tensors = _PerDevice(**host)
    names = list(plane.theta)
    models: dict[tuple[torch.device, torch.dtype], nn.Module] = {}

    def batch_loss(*coords: torch.Tensor) -> torch.Tensor:
        t = tensors.on(coords[0])
        key = (coords[0].device, coords[0].dtype)
        if key not in models:
            import copy

            models[key] = copy.deepcopy(net.model).to(coords[0].device, coords[0].dtype)
        model = models[key]
        inputs = t["inputs"]

        def one(*c: torch.Tensor) -> torch.Tensor:
            p = {n: t[f"theta.{n}"] + sum(ci * t[f"d{i}.{n}"] for i, ci in enumerate(c)) for n in names}
            return net.loss(functional_call(model, p, (inputs,)), t["targets"])

        return vmap(one)(*coords)

    return batch_loss


def network_landscape(src: NetworkSource, ndim: int, where: str = "function.network") -> tuple[FieldFunction, Network,
                                                                                               Plane]:
    net = build_network(src, where)
    plane = _cached_plane(src, ndim, where)
    width = max([p.shape[0] for p in plane.theta.values()] + [1])
    batch = src.batch or max(1, min(64, (1 << 23) // max(1, len(net.inputs) * width)))
    ff = _field(_network_loss(net, plane), batch)
    text = f"{net.description}; {src.directions} directions"
    return FieldFunction(ff, "scalar", 1, "network", text), net, plane


@functools.lru_cache(maxsize=4)
def _cached_plane(src: NetworkSource, ndim: int, where: str) -> Plane:
    return build_plane(build_network(src, where), src, ndim, where)
