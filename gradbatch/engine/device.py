"""Choosing the device a job runs on. The device is always an argument, never a global."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from ..errors import DeviceError

__all__ = ["resolve_device", "available_devices", "device_name", "cores", "CpuThreads", "cpu_threads"]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Asking for CUDA where there is none is a :class:`DeviceError`, never a silent fallback.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} was asked for but CUDA is not available here "
                f"(torch {torch.__version__}); use device: auto or cpu"
            )
        index = 0 if spec == "cuda" else int(spec.split(":", 1)[1])
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {spec!r} does not exist; this machine has cuda:0 .. cuda:{count - 1}")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}; expected auto, cpu, cuda or cuda:N")


def available_devices() -> list[torch.device]:
    """The CPU and every CUDA device present."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return devices


def device_name(device: torch.device, threads: int | None = None) -> str:
    """A human description, e.g. ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``.
    ``threads``: the CPU threads computing (default: torch's intra-op threads)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    n = threads if threads is not None else torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


def cores() -> int:
    """The cores this process may use (its CPU affinity: a Slurm or container share, not the
    whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class CpuThreads(NamedTuple):
    """How a CPU job's threads are spent: ``workers`` tiles computed at once, each with
    ``intra`` torch threads (``workers * intra`` = the job's threads)."""

    workers: int
    intra: int


def cpu_threads(threads: int | None, tiles: int) -> CpuThreads:
    """``threads`` (None: :func:`cores`) spread over ``tiles`` tiles to compute: whole tiles
    side by side first (a 512^2 tile is too small for torch's intra-op threads to pay: two
    threads on one tile were measured slower than one), the rest inside each tile when there
    are fewer tiles than threads."""
    n = threads if threads is not None else cores()
    workers = max(1, min(n, tiles))
    return CpuThreads(workers, max(1, n // workers))
