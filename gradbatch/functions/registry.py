"""One registry of function sources: a job's ``function:`` settings → its torch function, once.

Each kind of ``function:`` (expression, vector, built-in, callable, data landscape, network
landscape) has a typed, torch-free settings class in :mod:`gradbatch.config` (which validates
it) and a :class:`SourceBuilder` here, in its own module of this package. The builder turns the
settings into a :class:`BuiltFunction`: the :class:`FieldFunction` the engine evaluates, plus
what a loss landscape was made of (written to the file after the tiles, never rebuilt)::

    JobConfig.function ──build_function──▶ BuiltFunction ──check──▶ FieldFunction (probed)
      (config type)       (registry: type → builder)         (.landscape, .training: for flows)

The engine asks :func:`build_function` and never imports a specific source; builders are
imported by module path on first use, so ``import gradbatch.engine`` stays light.

Adding a source: a settings dataclass in ``gradbatch/config/`` (parsed and validated there), a
module here with a :class:`SourceBuilder` subclass, and one line in :data:`BUILDERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import (
    BuiltinSource,
    CallableSource,
    DataLandscapeSource,
    ExpressionSource,
    JobConfig,
    NetworkSource,
    VectorSource,
)
from ..records import Descent, LandscapeMakings
from .field import FieldFunction
from .probing import probe

__all__ = ["BuildContext", "BuiltFunction", "SourceBuilder", "BUILDERS", "builder_for", "build_function"]


@dataclass(frozen=True)
class BuildContext:
    """What a builder needs of the job besides its own settings: the grid's axis names (their
    count is the function's dimension), the job's ``params`` and the YAML path of its
    ``function:`` key for messages (``function`` or ``jobs[2].function``)."""

    axes: tuple[str, ...]
    params: Mapping[str, float]
    where: str = "function"

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @classmethod
    def of(cls, job: JobConfig) -> BuildContext:
        return cls(tuple(job.grid.names), job.params, f"{job.where}.function" if job.where else "function")


@dataclass(frozen=True)
class BuiltFunction:
    """A built source: the function, and for a loss landscape what it was made of.

    ``landscape`` is stored as ``/<job>/landscape``; ``training`` (a network's recorded training
    run projected on its plane) as the path ``training`` with ``training_attrs``.
    """

    function: FieldFunction
    builder: SourceBuilder
    landscape: LandscapeMakings | None = None
    training: Descent | None = None
    training_attrs: Mapping[str, Any] = field(default_factory=dict)

    def check(self, ndim: int, dtype: torch.dtype, device: torch.device) -> FieldFunction:
        """The function called on a few points and checked (its kind fixed, for user code)."""
        return self.builder.check(self.function, ndim, dtype, device)

    def check_graph(self, ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
        """Before a job that takes derivatives: the function's result reaches its inputs."""
        self.builder.check_graph(ff, ndim, dtype, device)


class SourceBuilder:
    """How one kind of source becomes a :class:`BuiltFunction`. Subclasses implement
    :meth:`build`; :meth:`check` and :meth:`check_graph` have defaults that fit every source
    whose torch code is ours."""

    def build(self, settings: Any, ctx: BuildContext) -> BuiltFunction:
        raise NotImplementedError

    def check(self, ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> FieldFunction:
        return probe(ff, ndim, dtype, device)

    def check_graph(self, ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
        """Our own sources always differentiate; only user code can lose its graph."""


BUILDERS: dict[type, str] = {
    ExpressionSource: "expression:ExpressionBuilder",
    VectorSource: "expression:VectorBuilder",
    BuiltinSource: "builtin:BuiltinBuilder",
    CallableSource: "callable:CallableBuilder",
    DataLandscapeSource: "landscape:DataLandscapeBuilder",
    NetworkSource: "network:NetworkBuilder",
}
"""Settings type → ``"module:Builder"`` in this package, imported on first use."""


def builder_for(settings: object) -> SourceBuilder:
    """The builder of a ``function:`` settings object (looked up by its type's MRO)."""
    for cls in type(settings).__mro__:
        ref = BUILDERS.get(cls)
        if ref is not None:
            module, _, name = ref.partition(":")
            builder: SourceBuilder = getattr(importlib.import_module(f"{__package__}.{module}"), name)()
            return builder
    raise TypeError(f"unknown function source {settings!r}")


def build_function(job: JobConfig) -> BuiltFunction:
    """Build the job's function from its ``function:`` settings (once per plan)."""
    return builder_for(job.function).build(job.function, BuildContext.of(job))
