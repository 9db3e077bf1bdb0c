"""Functions: where a job's function comes from, built once into a :class:`FieldFunction`.

A :class:`FieldFunction` is an elementwise torch function of one coordinate tensor per grid
axis that returns either one tensor (a scalar field, whose gradient the engine takes) or one
tensor per axis (a vector field, drawn as it is, whose divergence and curl the engine takes).

One module per source, one registry (:mod:`.registry`) from a ``function:`` settings type to its
builder::

    expression.py   one expression (scalar) or one per axis (vector)
    builtin.py      the built-in table (gradbatch.builtins) with known minima
    callable.py     the user's own torch function: import, guard, code hash
    landscape.py    data landscapes (regression loss over a dataset)
    network.py      network landscapes (a model's loss on a plane of its weights)
    models.py       the networks: the built-in MLP, a user's factory
    chunked.py      a landscape's points in chunks, value and gradient at once
    probing.py      checking a built function on a few points

Names are loaded on first use, so importing this package (or the engine, through
:mod:`.registry`) imports no source it does not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .field import FieldFunction, TensorFn

_LAZY = {
    "Minimum": "..records",
    "Builtin": "..builtins",
    "BUILTINS": "..builtins",
    "from_expression": ".expression",
    "from_vector": ".expression",
    "from_builtin": ".builtin",
    "from_callable": ".callable",
    "import_callable": ".callable",
    "code_hash": ".callable",
    "probe": ".probing",
    "probe_graph": ".probing",
    "BuiltFunction": ".registry",
    "build_function": ".registry",
}

__all__ = [
    "FieldFunction",
    "TensorFn",
    "Minimum",
    "Builtin",
    "BUILTINS",
    "from_expression",
    "from_vector",
    "from_builtin",
    "from_callable",
    "import_callable",
    "code_hash",
    "probe",
    "probe_graph",
    "BuiltFunction",
    "build_function",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


if TYPE_CHECKING:
    from ..builtins import BUILTINS, Builtin
    from ..records import Minimum
    from .builtin import from_builtin
    from .callable import code_hash, from_callable, import_callable
    from .expression import from_expression, from_vector
    from .probing import probe, probe_graph
    from .registry import BuiltFunction, build_function
