"""Network landscapes: a model's loss at ``θ* + α·d₁ + β·d₂`` as a field function of (α, β).

A batch of plane points becomes a batch of parameter sets evaluated together with
``torch.func.vmap`` over ``functional_call``, in chunks (:mod:`.chunked`). θ* and the directions
(filter-normalised random, random, PCA of the training trajectory, or checkpoints) are the
landscape's makings; a recorded training run, projected on the plane, is stored as the path
``training`` so viewers draw it over the landscape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import NetworkSource
from ..errors import ConfigError
from ..records import REASONS, Descent, LandscapeMakings
from .chunked import Fastest, PerDevice, chunked_field
from .field import FieldFunction
from .models import Network, build_network
from .registry import BuildContext, BuiltFunction, SourceBuilder

__all__ = [
    "Plane",
    "build_plane",
    "filter_normalize",
    "project",
    "network_landscape",
    "network_makings",
    "training_path",
    "NetworkBuilder",
]


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


def filter_normalize(
    direction: dict[str, torch.Tensor], theta: dict[str, torch.Tensor], include_1d: bool = False
) -> dict[str, torch.Tensor]:
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
            raise ConfigError(
                f"{where}: no weights recorded at training step {ref}; recorded: "
                f"{net.steps[0]}, {net.steps[1] if len(net.steps) > 1 else ''} ... {net.steps[-1]}"
            )
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
                    raise ConfigError(
                        f"{where}.checkpoints[{i}]: parameter {n} has shape {tuple(c[n].shape)}, "
                        f"the model's is {tuple(params[n].shape)}"
                    )
        theta = {n: cps[0][n].clone() for n in names}
        return Plane(theta, [{n: c[n] - theta[n] for n in names} for c in cps[1:]])
    if src.directions == "pca":
        if len(net.trajectory) < ndim + 1:
            raise ConfigError(
                f"{where}.directions: pca needs a recorded training trajectory of at least "
                f"{ndim + 1} weight sets; the model has {len(net.trajectory)}"
            )
        final = torch.cat([v.reshape(-1) for v in params.values()])
        m = torch.stack([torch.cat([s[n].reshape(-1) for n in names]) for s in net.trajectory]) - final
        _, sv, vt = torch.linalg.svd(m.double(), full_matrices=False)
        var = (sv**2) / (sv**2).sum()
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
        out[n] = flat[i : i + p.numel()].reshape(p.shape).to(p.dtype)
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


def _network_loss(net: Network, plane: Plane) -> Fastest:
    """The loss at a batch of plane points, two ways: ``vmap`` of one evaluation over the
    batch, and a loop of single evaluations (what the loss-landscapes package does); the
    faster on the job's device is used (:class:`~gradbatch.functions.chunked.Fastest`)."""
    from torch.func import functional_call, vmap

    host = {"inputs": net.inputs, "targets": net.targets}
    for n, v in plane.theta.items():
        host[f"theta.{n}"] = v
        for i, d in enumerate(plane.directions):
            host[f"d{i}.{n}"] = d[n]
    tensors = PerDevice(**host)
    names = list(plane.theta)
    models: dict[tuple[torch.device, torch.dtype], nn.Module] = {}

    def setup(like: torch.Tensor) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        """The model and tensors on ``like``'s device and dtype."""
        key = (like.device, like.dtype)
        if key not in models:
            import copy

            models[key] = copy.deepcopy(net.model).to(like.device, like.dtype)
        return models[key], tensors.on(like)

    def weights(t: dict[str, torch.Tensor], c: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """θ* + Σ c_i d_i; with ``c`` of shape [B], each weight gets a leading batch dimension."""
        lead = (-1,) if c[0].dim() else ()
        out = {}
        for n in names:
            w = t[f"theta.{n}"]
            for i, ci in enumerate(c):
                d = t[f"d{i}.{n}"]
                w = w + ci.reshape(*lead, *([1] * d.dim())) * d
            out[n] = w
        return out

    def batched(*coords: torch.Tensor) -> torch.Tensor:
        model, t = setup(coords[0])

        def one(*c: torch.Tensor) -> torch.Tensor:
            return net.loss(functional_call(model, weights(t, c), (t["inputs"],)), t["targets"])

        return vmap(one)(*coords)

    def loop(*coords: torch.Tensor) -> torch.Tensor:
        model, t = setup(coords[0])
        every = weights(t, coords)  # all the batch's weights at once, then one point at a time
        if not torch.is_grad_enabled() or not any(c.requires_grad for c in coords):
            # the value alone: each point's weights copied into the model's own parameters (a
            # private copy of the user's model), then a plain forward, as loss-landscapes does
            params = {**dict(model.named_buffers()), **dict(model.named_parameters())}
            with torch.no_grad():
                losses = []
                for i in range(coords[0].shape[0]):
                    for n, v in every.items():
                        params[n].copy_(v[i])
                    losses.append(net.loss(model(t["inputs"]), t["targets"]))
                return torch.stack(losses)
        losses = []
        for i in range(coords[0].shape[0]):
            w = {n: v[i] for n, v in every.items()}
            losses.append(net.loss(functional_call(model, w, (t["inputs"],)), t["targets"]))
        return torch.stack(losses)

    return Fastest(vmap=batched, loop=loop)


def network_landscape(net: Network, plane: Plane, src: NetworkSource) -> FieldFunction:
    """The loss of ``net`` on ``plane`` as a field function of the plane coordinates."""
    width = max([p.shape[0] for p in plane.theta.values()] + [1])
    batch = src.batch or max(1, min(64, (1 << 23) // max(1, len(net.inputs) * width)))
    ff = chunked_field(_network_loss(net, plane), batch)
    text = f"{net.description}; {src.directions} directions"
    return FieldFunction(ff, "scalar", 1, "network", text)


def _loss(net: Network, weights: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(net.loss(torch.func.functional_call(net.model, weights, (net.inputs,)), net.targets))


def network_makings(net: Network, plane: Plane, src: NetworkSource) -> LandscapeMakings:
    """θ* and the directions (flat float32), and how they were made, for ``/<job>/landscape``."""
    theta, dirs = plane.flat()
    attrs: dict[str, Any] = {
        "kind": "network",
        "description": net.description,
        "directions": src.directions,
        "include_1d": src.include_1d,
        "seed": src.seed,
        "checkpoints": [str(c) for c in src.checkpoints],
        "parameters": list(plane.theta),
        "shapes": [list(v.shape) for v in plane.theta.values()],
        "loss_at_theta": _loss(net, plane.theta),
        "model": str(src.model),
    }
    if plane.explained_variance is not None:
        attrs["explained_variance"] = plane.explained_variance
    return LandscapeMakings({"theta": theta, "directions": dirs}, attrs)


def training_path(net: Network, plane: Plane, src: NetworkSource) -> tuple[Descent, dict[str, Any]] | None:
    """The recorded training run projected on the plane, and its attributes; None without one,
    or for random directions, which miss a trajectory almost entirely (Li et al. 2018, section 7)."""
    if not net.trajectory or src.directions not in ("pca", "checkpoints"):
        return None
    theta, dirs = plane.flat()
    coords = project(plane, net.trajectory)  # [T, ndim]
    losses = np.array([_loss(net, s) for s in net.trajectory])
    last = np.concatenate([net.trajectory[-1][n].reshape(-1).numpy() for n in plane.theta])
    rel = float(np.linalg.norm(dirs.T @ coords[-1] + theta - last)) / max(float(np.linalg.norm(theta)), 1e-12)
    t = len(coords)
    d = Descent(
        final=coords[-1:],
        final_value=losses[-1:],
        stop_step=np.array([t - 1]),
        reason=np.array([REASONS.index("max_steps")], dtype=np.int8),
        positions=coords[None],
        values=losses[None],
        grad_norms=np.full((1, t), np.nan),
    )
    return d, {
        "optimizer": "training",
        "recorded_steps": net.steps,
        "values_are": "the model's loss at the recorded weights (not the plane's)",
        "final_offset_from_plane": rel,
        "reasons": list(REASONS),
    }


class NetworkBuilder(SourceBuilder):
    def build(self, settings: NetworkSource, ctx: BuildContext) -> BuiltFunction:
        where = f"{ctx.where}.network"
        net = build_network(settings, where)
        plane = build_plane(net, settings, ctx.ndim, where)
        training = training_path(net, plane, settings)
        return BuiltFunction(
            network_landscape(net, plane, settings),
            self,
            landscape=network_makings(net, plane, settings),
            training=training[0] if training else None,
            training_attrs=training[1] if training else {},
        )
