"""The networks of network landscapes: the built-in MLP trained on a toy dataset made in code,
or what a user's factory returns (a model, its loss, its data, maybe a recorded trajectory)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import MLPConfig, NetworkSource
from ..errors import FunctionError
from .callable import import_callable

__all__ = ["Network", "make_dataset", "build_network"]


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
    net = Network(
        model,
        loss,
        inputs,
        targets,
        description=f"MLP {'-'.join(map(str, widths))} on {cfg.samples} {cfg.dataset} points, "
        f"{cfg.steps} Adam steps (lr {cfg.lr:g})",
    )

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
    model, loss, inputs, targets, trajectory = _factory_parts(out, ref, where)
    if not isinstance(model, nn.Module):
        raise FunctionError(
            f"{where}: {ref}() returned a {type(model).__name__} as the model; expected a torch.nn.Module"
        )
    if not callable(loss):
        raise FunctionError(f"{where}: {ref}()'s loss is a {type(loss).__name__}, not callable")
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise FunctionError(
            f"{where}: {ref}()'s inputs and targets must be tensors; got "
            f"{type(inputs).__name__} and {type(targets).__name__}"
        )
    names = [k for k, _ in model.named_parameters()]
    for i, snap in enumerate(trajectory):
        if not isinstance(snap, dict) or set(snap) != set(names):
            raise FunctionError(
                f"{where}: {ref}()'s trajectory[{i}] must be a dict of the model's parameters ({', '.join(names)})"
            )
    # held on the CPU, whatever device the factory built them on (a model trained on CUDA):
    # each tile's evaluation copies them to the job's device once, and what is stored is numpy
    model.eval().to("cpu")
    inputs, targets = inputs.detach().cpu(), targets.detach().cpu()
    net = Network(
        model,
        loss,
        inputs,
        targets,
        [{k: v.detach().cpu() for k, v in s.items()} for s in trajectory],
        list(range(len(trajectory))),
        description=f"{type(model).__name__} from {ref}",
    )
    try:
        with torch.no_grad():
            value = loss(model(inputs), targets)
    except Exception as exc:
        raise FunctionError(
            f"{where}: {ref}(): loss(model(inputs), targets) failed with inputs of shape "
            f"{tuple(inputs.shape)} and targets of shape {tuple(targets.shape)}: "
            f"{type(exc).__name__}: {exc} (gradbatch holds the model and its data on the CPU "
            "and moves them to the job's device)"
        ) from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise FunctionError(f"{where}: {ref}(): the loss must be one number (a reduced loss); got {shape}")
    return net


def _factory_parts(out: Any, ref: str, where: str) -> tuple[Any, Any, Any, Any, list[Any]]:
    """A factory's (model, loss, (inputs, targets)) or its dict, as model, loss, inputs, targets, trajectory."""
    if isinstance(out, dict):
        missing = [k for k in ("model", "loss", "inputs", "targets") if k not in out]
        if missing:
            raise FunctionError(
                f"{where}: {ref}() returned a dict without {', '.join(missing)}; expected keys "
                "model, loss, inputs, targets (and optionally trajectory)"
            )
        model, loss, inputs, targets = out["model"], out["loss"], out["inputs"], out["targets"]
        trajectory = list(out.get("trajectory", []))
    elif isinstance(out, (tuple, list)) and len(out) == 3 and isinstance(out[2], (tuple, list)) and len(out[2]) == 2:
        model, loss, (inputs, targets) = out
        trajectory = []
    else:
        raise FunctionError(
            f"{where}: {ref}() must return (model, loss, (inputs, targets)) or a dict with "
            f"model, loss, inputs, targets; got {type(out).__name__}"
        )
    return model, loss, inputs, targets, trajectory


def build_network(src: NetworkSource, where: str = "function.network") -> Network:
    """The trained built-in MLP, or what the user's factory returns (built once per plan: the
    network builder keeps it with the function)."""
    if isinstance(src.model, MLPConfig):
        return _train_mlp(src.model)
    return _from_factory(src.model, src.base_dir, f"{where}.model.callable")
