"""Loss-landscape function sources (``function: {landscape: ...}`` and ``{network: ...}``):
YAML → frozen configs. Part of the config layer: no torch here; every message names the YAML
path, the value and what is allowed.

A data landscape is the loss of a two-parameter model (linear or logistic regression) over a
dataset, with the grid's two axes as the parameters (slope, then bias). A network landscape is a
model's loss on the line or plane θ* + α·d₁ (+ β·d₂) around its weights θ*.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checks import Choice, bad_character, boolean, choice, integer, mapping, number, show

__all__ = [
    "Model",
    "Loss",
    "Dataset",
    "Directions",
    "SyntheticData",
    "FileData",
    "DataLandscapeSource",
    "MLPConfig",
    "NetworkSource",
    "parse_landscape",
    "parse_network",
    "check_landscape_grid",
    "MODELS",
    "LOSSES",
    "DATASETS",
    "DIRECTIONS",
]


class Model(Choice):
    """A data landscape's two-parameter model."""

    LINEAR = "linear"
    LOGISTIC = "logistic"


class Loss(Choice):
    SSE = "sse"
    MSE = "mse"
    CROSS_ENTROPY = "cross_entropy"


class Dataset(Choice):
    """The built-in MLP's 2D toy datasets, made in code."""

    MOONS = "moons"
    SPIRALS = "spirals"


class Directions(Choice):
    """How a network landscape's plane is spanned around the weights."""

    RANDOM = "random"
    FILTER = "filter"  # filter-normalised random directions (Li et al. 2018)
    CHECKPOINTS = "checkpoints"  # through recorded or saved weights
    PCA = "pca"  # of the training trajectory


MODELS = tuple(Model)
LOSSES = {Model.LINEAR: (Loss.SSE, Loss.MSE), Model.LOGISTIC: (Loss.CROSS_ENTROPY, Loss.SSE, Loss.MSE)}
"""The losses each model allows; the first is its default."""
DATASETS = tuple(Dataset)
DIRECTIONS = tuple(Directions)

# Resource limits, far beyond any sensible landscape: a typo must not start what cannot finish.
MAX_ROWS = 1 << 24
"""Most synthetic data rows."""
MAX_POINT_ROWS = 1 << 40
"""Most loss terms of a data landscape, grid points x rows (about 10^12)."""
MAX_NETWORK_POINTS = 1 << 24
"""Most grid points of a network landscape (one loss of the whole dataset per point)."""
MAX_SAMPLES = 1 << 20
MAX_WIDTH = 4096
MAX_LAYERS = 16
MAX_TRAIN_STEPS = 1_000_000
MAX_CHUNK = 1 << 26
MAX_SEED = (1 << 32) - 1  # numpy's RandomState takes seeds below 2^32


@dataclass(frozen=True)
class SyntheticData:
    """``n`` evenly spaced x in ``x_range``; y = slope·x + bias + noise·N(0, 1) (linear), or
    y ~ Bernoulli(sigmoid(slope·x + bias)) (logistic). numpy's ``RandomState(seed)``, so seed 42
    with the defaults is seed 002's data."""

    slope: float = 2.0
    bias: float = -3.0
    noise: float = 1.0
    n: int = 40
    x_range: tuple[float, float] = (-5.0, 4.75)
    seed: int = 42


@dataclass(frozen=True)
class FileData:
    """Columns ``x`` and ``y`` of a CSV file (with a header row) or arrays of an NPZ file."""

    path: Path
    x: str = "x"
    y: str = "y"


@dataclass(frozen=True)
class DataLandscapeSource:
    model: Model = Model.LINEAR
    loss: Loss = Loss.SSE
    data: SyntheticData | FileData = SyntheticData()
    chunk: int = 0  # grid points per batch against all rows; 0: about 4M point-rows per batch


@dataclass(frozen=True)
class MLPConfig:
    """The built-in model: an MLP (ReLU) classifying a 2D toy dataset made in code, trained
    full-batch with Adam; every ``record_every`` steps its weights are recorded (the trajectory)."""

    dataset: Dataset = Dataset.MOONS
    samples: int = 2000
    noise: float = 0.1
    hidden: tuple[int, ...] = (64, 64)
    steps: int = 300
    lr: float = 0.01
    seed: int = 0
    record_every: int = 10


@dataclass(frozen=True)
class NetworkSource:
    model: MLPConfig | str = MLPConfig()  # the built-in MLP, or 'package.module:factory'
    base_dir: Path | None = None
    directions: Directions = Directions.FILTER
    include_1d: bool = False  # filter-normalised: also perturb biases and norm layers (Li et al. leave them out)
    seed: int = 0  # random and filter-normalised directions
    checkpoints: tuple[str | int, ...] = ()  # files, or recorded steps of the built-in's training
    batch: int = 0  # plane points per vmap call; 0: chosen from the model's size


def _keys(raw: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    return mapping(raw, where, set(allowed))


def parse_landscape(raw: Any, where: str, base_dir: Path | None) -> DataLandscapeSource:
    d = _keys(raw, where, ("model", "loss", "data", "chunk"))
    model = choice(Model, d.get("model", "linear"), f"{where}.model")
    loss = choice(Loss, d.get("loss", LOSSES[model][0].value), f"{where}.loss", LOSSES[model])
    data_raw = d.get("data", {"synthetic": {}})
    at = f"{where}.data"
    data_d = _keys(data_raw, at, ("synthetic", "file", "x", "y"))
    data: SyntheticData | FileData
    if "synthetic" in data_d:
        if set(data_d) != {"synthetic"}:
            raise ConfigError(f"{at}: give either synthetic: {{...}} or file: PATH (with x:, y: columns), not both")
        s = _keys(data_d["synthetic"] or {}, f"{at}.synthetic", ("slope", "bias", "noise", "n", "x", "seed"))
        default = SyntheticData()
        xr = s.get("x", list(default.x_range))
        if not isinstance(xr, list) or len(xr) != 2:
            raise ConfigError(f"{at}.synthetic.x: expected [min, max], got {show(xr)}")
        lo, hi = number(xr[0], f"{at}.synthetic.x[0]"), number(xr[1], f"{at}.synthetic.x[1]")
        if not lo < hi:
            raise ConfigError(f"{at}.synthetic.x: expected min < max, got {show(xr)}")
        data = SyntheticData(
            slope=number(s.get("slope", default.slope), f"{at}.synthetic.slope"),
            bias=number(s.get("bias", default.bias), f"{at}.synthetic.bias"),
            noise=number(s.get("noise", default.noise), f"{at}.synthetic.noise", lo=0),
            n=integer(s.get("n", default.n), f"{at}.synthetic.n", 2, MAX_ROWS),
            x_range=(lo, hi),
            seed=integer(s.get("seed", default.seed), f"{at}.synthetic.seed", 0, MAX_SEED),
        )
    elif "file" in data_d:
        path = data_d["file"]
        if not isinstance(path, str) or not path.lower().endswith((".csv", ".npz")):
            raise ConfigError(f"{at}.file: expected a path ending in .csv or .npz, got {show(path)}")
        p = Path(path)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        cols = {k: data_d.get(k, k) for k in ("x", "y")}
        for k, v in cols.items():
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{at}.{k}: expected a column name, got {show(v)}")
        data = FileData(p, cols["x"], cols["y"])
    else:
        raise ConfigError(
            f"{at}: expected synthetic: {{slope, bias, noise, n, x, seed}} or file: PATH, got {show(data_raw)}"
        )
    chunk = integer(d.get("chunk", 0), f"{where}.chunk", 0, MAX_CHUNK)
    return DataLandscapeSource(model, loss, data, chunk)


def parse_network(raw: Any, where: str, base_dir: Path | None) -> NetworkSource:
    d = _keys(raw, where, ("model", "directions", "include_1d", "seed", "checkpoints", "batch"))
    model = _network_model(d.get("model", {"builtin": "mlp"}), f"{where}.model")
    directions = choice(Directions, d.get("directions", "filter"), f"{where}.directions")
    include_1d = boolean(d.get("include_1d", False), f"{where}.include_1d")
    cps = _checkpoints(d.get("checkpoints", []), where, directions, model, base_dir)
    return NetworkSource(
        model,
        base_dir,
        directions,
        include_1d,
        integer(d.get("seed", 0), f"{where}.seed", 0, MAX_SEED),
        tuple(cps),
        integer(d.get("batch", 0), f"{where}.batch", 0, MAX_CHUNK),
    )


def _network_model(m: Any, at: str) -> MLPConfig | str:
    """``model:``: the built-in MLP's settings, or a factory's ``package.module:function``."""
    if isinstance(m, dict) and "callable" in m:
        ref = m["callable"]
        if len(m) != 1 or not isinstance(ref, str) or ref.count(":") != 1:
            raise ConfigError(f"{at}.callable: expected 'package.module:factory', got {show(m)}")
        return ref
    if not (isinstance(m, dict) and m.get("builtin") == "mlp"):
        raise ConfigError(
            f"{at}: expected {{builtin: mlp, ...}} or {{callable: 'package.module:factory'}}, got {show(m)}"
        )
    s = _keys(m, at, ("builtin", "dataset", "samples", "noise", "hidden", "steps", "lr", "seed", "record_every"))
    default = MLPConfig()
    hidden = s.get("hidden", list(default.hidden))
    if (
        not isinstance(hidden, list)
        or not 1 <= len(hidden) <= MAX_LAYERS
        or not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_WIDTH for h in hidden)
    ):
        raise ConfigError(
            f"{at}.hidden: expected a list of layer widths, e.g. [64, 64] (1 to {MAX_LAYERS} "
            f"layers of 1 to {MAX_WIDTH}), got {show(hidden)}"
        )
    return MLPConfig(
        dataset=choice(Dataset, s.get("dataset", default.dataset.value), f"{at}.dataset"),
        samples=integer(s.get("samples", default.samples), f"{at}.samples", 10, MAX_SAMPLES),
        noise=number(s.get("noise", default.noise), f"{at}.noise", lo=0),
        hidden=tuple(hidden),
        steps=integer(s.get("steps", default.steps), f"{at}.steps", 1, MAX_TRAIN_STEPS),
        lr=number(s.get("lr", default.lr), f"{at}.lr", above_zero=True),
        seed=integer(s.get("seed", default.seed), f"{at}.seed", 0, MAX_SEED),
        record_every=integer(s.get("record_every", default.record_every), f"{at}.record_every", 1),
    )


def _checkpoints(
    cps: Any, where: str, directions: Directions, model: MLPConfig | str, base_dir: Path | None
) -> list[str | int]:
    """``checkpoints:``: files (relative to the job file), or the built-in MLP's recorded steps."""
    if not isinstance(cps, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in cps):
        raise ConfigError(
            f"{where}.checkpoints: expected a list of checkpoint files or training steps, got {show(cps)}"
        )
    if directions != "checkpoints":
        if cps:
            raise ConfigError(f"{where}.checkpoints: only used with directions: checkpoints")
        return cps
    if any(isinstance(c, int) for c in cps) and not isinstance(model, MLPConfig):
        raise ConfigError(
            f"{where}.checkpoints: training steps name the built-in MLP's recorded weights; "
            "a callable's checkpoints are files"
        )
    for i, c in enumerate(cps):
        if isinstance(c, int) and isinstance(model, MLPConfig):
            recorded = 0 <= c <= model.steps and (c % model.record_every == 0 or c == model.steps)
            if not recorded:
                raise ConfigError(
                    f"{where}.checkpoints[{i}]: no weights are recorded at training step {c}; "
                    f"the built-in MLP records every {model.record_every} steps from 0 to "
                    f"{model.steps} and step {model.steps}"
                )
        elif isinstance(c, str) and (not c or bad_character(c)):
            raise ConfigError(f"{where}.checkpoints[{i}]: expected a file path, got {show(c)}")
    return [
        str(base_dir / c) if isinstance(c, str) and base_dir is not None and not Path(c).is_absolute() else c
        for c in cps
    ]


def check_landscape_grid(source: DataLandscapeSource | NetworkSource, ndim: int, where: str, points: int = 0) -> None:
    """The grid's axes must match the landscape's parameters, and its ``points`` be affordable."""
    if isinstance(source, DataLandscapeSource):
        if ndim != 2:
            raise ConfigError(
                f"{where}: a {source.model} model has 2 parameters (slope, bias): the grid needs 2 axes, it has {ndim}"
            )
        if isinstance(source.data, SyntheticData) and points * source.data.n > MAX_POINT_ROWS:
            raise ConfigError(
                f"{where}: {points:,} grid points x {source.data.n:,} data rows = "
                f"{points * source.data.n:.3g} loss terms; at most {MAX_POINT_ROWS:.3g} (2^40) are "
                "allowed: a coarser grid or fewer rows"
            )
        return
    if points > MAX_NETWORK_POINTS:
        raise ConfigError(
            f"{where}: {points:,} grid points, each a loss over the whole dataset; at most "
            f"{MAX_NETWORK_POINTS:,} (2^24) are allowed for a network landscape: a coarser grid"
        )
    if ndim not in (1, 2):
        raise ConfigError(f"{where}: a network landscape is a line (1 axis) or a plane (2 axes); the grid has {ndim}")
    if source.directions == "checkpoints" and len(source.checkpoints) != ndim + 1:
        raise ConfigError(
            f"{where}.checkpoints: a {ndim}-axis grid is the "
            f"{'line through 2' if ndim == 1 else 'plane through 3'} checkpoints; "
            f"got {len(source.checkpoints)}"
        )
