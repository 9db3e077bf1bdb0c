"""gradbatch: exact gradient fields on large grids, stored in self-describing HDF5.

The whole pipeline, as a notebook would use it::

    import gradbatch
    jobs = gradbatch.load_config("configs/ripple.yaml")      # YAML -> typed JobConfig objects
    reports = gradbatch.run_jobs(jobs, overwrite=True)       # tiles on CPU/CUDA -> ripple.h5
    info = gradbatch.inspect("ripple.h5")                    # what the file holds
    value = gradbatch.read_field("ripple.h5", "ripple", "value")
"""

from ._version import __version__
from .config import JobConfig, JobFile, load_config, parse_config
from .engine import available_devices, compute, evaluate, plan_job, resolve_device, value_and_jacobian
from .errors import (ConfigError, DeviceError, EngineError, ExpressionError, FunctionError,
                     GradbatchError, StoreError)
from .expr import Expr, parse
from .functions import BUILTINS
from .jobs import JobReport, Progress, run, run_jobs
from .store import inspect, read_field

__all__ = [
    "__version__", "JobConfig", "JobFile", "load_config", "parse_config", "available_devices",
    "compute", "value_and_jacobian", "evaluate", "plan_job", "resolve_device", "ConfigError", "DeviceError", "EngineError",
    "ExpressionError", "FunctionError", "GradbatchError", "StoreError", "Expr", "parse",
    "BUILTINS", "JobReport", "Progress", "run", "run_jobs", "inspect", "read_field",
]
