"""The engine: device choice, value and gradient of a tile, the tile loop."""

from .device import CpuThreads, available_devices, cores, cpu_threads, device_name, resolve_device
from .kernel import COMPILE_MIN_POINTS, CheckStats, Kernel, build_kernel, field_names, value_and_jacobian
from .runner import EvalStats, JobPlan, TileResult, compute, evaluate, plan_job, resolve_function

__all__ = [
    "available_devices",
    "cores",
    "cpu_threads",
    "CpuThreads",
    "device_name",
    "resolve_device",
    "COMPILE_MIN_POINTS",
    "CheckStats",
    "Kernel",
    "build_kernel",
    "field_names",
    "EvalStats",
    "JobPlan",
    "TileResult",
    "evaluate",
    "plan_job",
    "resolve_function",
    "compute",
    "value_and_jacobian",
]
