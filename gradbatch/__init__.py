"""gradbatch: exact gradient fields on large grids, stored in self-describing HDF5.

The whole pipeline, as a notebook would use it::

    import gradbatch
    jobs = gradbatch.load_config("configs/seed000_ripple.yaml")   # YAML -> typed JobConfig objects
    reports = gradbatch.run_jobs(jobs, overwrite=True)            # tiles on CPU/CUDA -> ripple.h5
    info = gradbatch.inspect("ripple.h5")                         # what the file holds
    ds = gradbatch.open("ripple.h5")                              # an xarray Dataset (gradbatch[xarray])
    value = gradbatch.read_field("ripple.h5", field="value")      # one field, an xarray DataArray

Names are imported on first use, so reading files (``gradbatch.store``, ``gradbatch.grid``)
never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from ._version import __version__
from .errors import ConfigError, DeviceError, EngineError, ExpressionError, FunctionError, GradbatchError, StoreError

# public name -> module that defines it
_LAZY = {
    "JobConfig": "config",
    "JobFile": "config",
    "load_config": "config",
    "parse_config": "config",
    "available_devices": "engine",
    "compute": "jobs",  # a job in memory, as an xarray Dataset
    "evaluate": "engine",
    "plan_job": "engine",
    "resolve_device": "engine",
    "value_and_jacobian": "engine",
    "Expr": "expr",
    "parse": "expr",
    "BUILTINS": "functions",
    "JobReport": "jobs",
    "Progress": "progress",
    "run": "api",
    "run_jobs": "api",  # api: jobs + their pictures
    "inspect": "store",
    "open": "datasets",  # a job of a file as an xarray Dataset
    "read_field": "datasets",
    "describe": "summary",
    "show": "viewer.render",
    "explore": "viewer.notebook",
}

__all__ = [
    "__version__",
    "ConfigError",
    "DeviceError",
    "EngineError",
    "ExpressionError",
    "FunctionError",
    "GradbatchError",
    "StoreError",
    *(name for name in _LAZY if name != "open"),  # `from gradbatch import *` must not hide the builtin open
]


__getattr__, __dir__ = lazy_attributes(__name__, {name: f".{module}" for name, module in _LAZY.items()})


if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports
    from .api import run, run_jobs
    from .config import JobConfig, JobFile, load_config, parse_config
    from .datasets import open, read_field
    from .engine import available_devices, evaluate, plan_job, resolve_device, value_and_jacobian
    from .expr import Expr, parse
    from .functions import BUILTINS
    from .jobs import JobReport, compute
    from .progress import Progress
    from .store import inspect
    from .summary import describe
    from .viewer.notebook import explore
    from .viewer.render import show
