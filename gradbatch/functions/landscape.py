"""Data landscapes: the loss of ``y = m·x + b`` (linear) or ``sigmoid(m·x + b)`` (logistic) over
a dataset, as a field function of the grid's two axes (m, b).

A batch of grid points is evaluated against every data row at once, as a ``[points, rows]``
array, in chunks (:mod:`.chunked`). The data are stored with the landscape (its makings).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..config import DataLandscapeSource, FileData, SyntheticData
from ..errors import ConfigError
from ..records import LandscapeMakings, Minimum
from .chunked import BatchLoss, PerDevice, chunked_field
from .field import FieldFunction
from .registry import BuildContext, BuiltFunction, SourceBuilder

__all__ = ["load_data", "lstsq_minimum", "data_landscape", "data_makings", "DataLandscapeBuilder"]


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
        raise ConfigError(
            f"{where}: columns {d.x!r} and {d.y!r} of {d.path} must be 1D and equally long; "
            f"got shapes {x.shape} and {y.shape}"
        )
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


def _data_loss(model: str, loss: str, data: PerDevice) -> BatchLoss:
    def batch_loss(m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        t = data.on(m)
        z = m[:, None] * t["x"] + b[:, None]  # [points, rows]
        if model == "logistic" and loss == "cross_entropy":  # mean binary cross-entropy, from logits
            return (torch.nn.functional.softplus(z) - t["y"] * z).mean(dim=1)
        pred = torch.sigmoid(z) if model == "logistic" else z
        sq = (pred - t["y"]) ** 2
        return sq.sum(dim=1) if loss == "sse" else sq.mean(dim=1)

    return batch_loss


def data_landscape(src: DataLandscapeSource, x: np.ndarray, y: np.ndarray) -> FieldFunction:
    """The landscape of the data ``x``, ``y`` (from :func:`load_data`)."""
    chunk = src.chunk or max(1, (1 << 22) // len(x))
    ff = chunked_field(_data_loss(src.model, src.loss, PerDevice(x=torch.from_numpy(x), y=torch.from_numpy(y))), chunk)
    minima: tuple[Minimum, ...] = ()
    if src.model == "linear":  # the least-squares fit is the landscape's one minimum
        m, b = lstsq_minimum(x, y)
        r = y - (m * x + b)
        minima = (Minimum((m, b), float((r**2).sum() if src.loss == "sse" else (r**2).mean())),)
    text = f"{src.model} regression, {src.loss} loss, {len(x)} rows"
    return FieldFunction(ff, "scalar", 1, "landscape", text, minima)


def data_makings(src: DataLandscapeSource, x: np.ndarray, y: np.ndarray) -> LandscapeMakings:
    """The data and how they were made, for ``/<job>/landscape``."""
    attrs: dict[str, Any] = {
        "kind": "data",
        "model": src.model,
        "loss": src.loss,
        "rows": len(x),
        "data": str(dataclasses.asdict(src.data)),
    }
    if src.model == "linear":
        attrs["lstsq"] = list(lstsq_minimum(x, y))
    return LandscapeMakings({"x": x, "y": y}, attrs)


class DataLandscapeBuilder(SourceBuilder):
    def build(self, settings: DataLandscapeSource, ctx: BuildContext) -> BuiltFunction:
        x, y = load_data(settings, f"{ctx.where}.landscape.data")
        return BuiltFunction(data_landscape(settings, x, y), self, landscape=data_makings(settings, x, y))
