"""Choosing the device a job runs on. The device is always an argument, never a global."""

from __future__ import annotations

import torch

from ..errors import DeviceError

__all__ = ["resolve_device", "available_devices", "device_name"]


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


def device_name(device: torch.device) -> str:
    """A human description, e.g. ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"
