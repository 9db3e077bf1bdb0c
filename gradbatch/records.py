"""What flows between the stages besides the fields: frozen records of numpy arrays.

Descent paths, basins with their table of critical points, streamlines, a loss landscape's
makings and known minima. The trajectory modules return them, the store writes and reads them,
the viewer and ``gradbatch info`` draw and print them. No torch and no h5py here: a record can be
built, read and tested anywhere (the import contracts in ``pyproject.toml`` hold this).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # annotations only: building a record imports nothing heavy
    import numpy as np

__all__ = [
    "WindowRequest",
    "WindowResponse",
    "REASONS",
    "STOPS",
    "Minimum",
    "Descent",
    "CriticalPoint",
    "BasinsResult",
    "Streamlines",
    "LandscapeMakings",
    "Stored",
    "Overlays",
    "FieldStats",
]

REASONS = ("converged", "left_domain", "diverged", "max_steps", "stalled")
"""Why a path stopped, by code: converged (gradient norm below tol), left_domain (outside the
grid's box), diverged (a non-finite value or gradient), max_steps, stalled (no progress left in
the job's dtype: see :data:`gradbatch.trajectories.paths.STALL_WINDOW`). New reasons are only ever appended,
so the codes in older files keep their meaning."""

STOPS = ("max_length", "max_steps", "stagnation", "domain_edge", "occupied", "not_integrated")
"""Why one end of a streamline stopped, by code."""


@dataclass(frozen=True)
class Minimum:
    """A known minimum: ``point`` in axis order, ``value`` there; ``local`` if not global."""

    point: tuple[float, ...]
    value: float
    local: bool = False


@dataclass(frozen=True)
class Descent:
    """Descent paths for N starts in D dimensions (host arrays).

    ``positions``, ``values``, ``grad_norms`` are ``(N, steps + 1, D)``, ``(N, steps + 1)``,
    ``(N, steps + 1)`` when recorded (NaN after each path's stop step), else None.
    ``final`` is ``(N, D)``; ``stop_step`` the index of each path's last position; ``reason``
    indexes :data:`REASONS`.
    """

    final: np.ndarray
    final_value: np.ndarray
    stop_step: np.ndarray
    reason: np.ndarray
    positions: np.ndarray | None = None
    values: np.ndarray | None = None
    grad_norms: np.ndarray | None = None


@dataclass(frozen=True)
class CriticalPoint:
    point: tuple[float, ...]
    value: float
    kind: str  # "minimum" | "maximum" | "saddle" | "degenerate"
    eigenvalues: tuple[float, ...]
    known: bool  # one of the built-in's known minima


@dataclass(frozen=True)
class BasinsResult:
    """``label``, ``steps`` and ``reason`` have the starts grid's shape in array order."""

    axes: tuple[np.ndarray, ...]  # start coordinates per axis, grid order
    label: np.ndarray  # int32: index into ``points``, -1 for none
    steps: np.ndarray  # int32: steps taken
    reason: np.ndarray  # uint8: index into REASONS
    points: tuple[CriticalPoint, ...]
    counts: tuple[int, ...]  # starts per point


@dataclass(frozen=True)
class Streamlines:
    """Ragged lines: line i is ``points[offsets[i]:offsets[i + 1]]``, from its backward end
    through its seed to its forward end."""

    points: np.ndarray  # (M, D)
    offsets: np.ndarray  # (L + 1,) int64
    seeds: np.ndarray  # (L, D)
    stop_backward: np.ndarray  # (L,) uint8, index into STOPS
    stop_forward: np.ndarray  # (L,) uint8
    length: np.ndarray  # (L,) arc length


@dataclass(frozen=True)
class LandscapeMakings:
    """What a loss landscape was made of, so the file reproduces it: the data (``x``, ``y``), or
    a network's θ* and plane directions, with their description as ``attrs``."""

    arrays: Mapping[str, np.ndarray]
    attrs: Mapping[str, Any] = field(default_factory=dict)


R = TypeVar("R")


@dataclass(frozen=True)
class Stored(Generic[R]):
    """A record as a job's file holds it, with the attributes stored beside it: the settings it
    was made with (an optimiser's name and hyperparameters, the streamlines' field, ...)."""

    record: R
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overlays:
    """Everything a job stores besides its fields, as records (what the viewer draws):
    ``paths`` by label in file order (the order the optimisers were given)."""

    paths: Mapping[str, Stored[Descent]] = field(default_factory=dict)
    basins: Stored[BasinsResult] | None = None
    streamlines: Stored[Streamlines] | None = None
    landscape: LandscapeMakings | None = None


@dataclass(frozen=True)
class WindowRequest:
    """``window`` = (x0, x1, y0, y1) in data coordinates; ``canvas`` = (width, height) pixels."""

    job: str
    window: tuple[float, float, float, float]
    canvas: tuple[int, int]
    fields: tuple[str, ...]
    # fields wanted only at a coarse resolution (arrows: one per ~24 pixels), read from the
    # level matching ``coarse_canvas`` instead of the full canvas
    coarse_fields: tuple[str, ...] = ()
    coarse_canvas: tuple[int, int] = (0, 0)
    # a 3D job: the coordinate of the slice plane on the reader's slice axis (None: its middle)
    plane: float | None = None


@dataclass(frozen=True)
class WindowResponse:
    """The fields inside the window at ``level``: arrays (ny, nx) over coordinates ``x``, ``y``."""

    request: WindowRequest
    level: int
    x: np.ndarray
    y: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)
    coarse: WindowResponse | None = None  # the coarse fields, on their own level and coordinates
    plane: float | None = None  # a 3D job: the slice's coordinate at this level (nearest to the request's)


@dataclass(frozen=True)
class FieldStats:
    """What a picture needs to know of a whole field, whatever part of it is drawn: its finite
    range at full resolution, what is not finite, and percentiles for robust colour limits.

    ``minimum``/``maximum``/``min_positive`` are over the finite values of every grid point (NaN
    when there is none); ``nonpositive`` counts finite values <= 0 (a log scale cannot show them).
    ``percentiles``: (percent, value) pairs, ascending, over the finite values of ``percentile_level``
    (the pyramid level they were taken from: 0 is exact). ``exact``: False when the range came
    from a pyramid level (an older file without per-tile ranges); block means then narrow it."""

    field: str
    points: int  # grid points (a 3D job: of the whole volume)
    nan: int
    posinf: int
    neginf: int
    minimum: float
    maximum: float
    min_positive: float
    nonpositive: int
    percentiles: tuple[tuple[float, float], ...] = ()
    percentile_level: int = 0
    exact: bool = True

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), interpolated between the stored ones; the minimum or
        maximum outside them, NaN without finite values."""
        if not self.percentiles:
            return float("nan")
        points = [(0.0, self.minimum), *self.percentiles, (100.0, self.maximum)]
        q = min(max(q, 0.0), 100.0)
        for (q0, v0), (q1, v1) in zip(points, points[1:]):
            if q0 <= q <= q1:
                return v0 if q1 == q0 else v0 + (v1 - v0) * (q - q0) / (q1 - q0)
        return self.maximum
