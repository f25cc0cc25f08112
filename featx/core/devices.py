"""Compute devices: resolving what the user asked for (``--device``) to what this machine has.

``auto`` means CUDA when there is a usable GPU, else the CPU; a CUDA device asked for and
not there is a :class:`~featx.core.errors.DeviceError`, never a silent fall-back. Shared
by stage one (the backbone) and stage two (the torch solvers); torch is imported only
when a device is resolved, never to import this module.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from featx.core.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str) -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:<i>`` -> a ``torch.device`` that exists.

    Raises:
        DeviceError: CUDA was asked for and is not available (or no such index).
        ConfigError: not a device featx knows.
    """
    import torch

    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        try:
            device = torch.device(text)
        except (RuntimeError, ValueError):
            raise ConfigError(f"{spec!r} is not a device; use auto, cpu, cuda or cuda:<index>", field="device") from None
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec} was asked for but CUDA is not available here (no usable GPU or driver); use --device cpu or --device auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"--device {spec}: there {'is' if count == 1 else 'are'} only {count} CUDA device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})"
            )
        return device
    raise ConfigError(f"{spec!r} is not a device; use auto, cpu, cuda or cuda:<index>", field="device")


#: what a loaded GPU driver leaves on Linux: NVIDIA's kernel module (also inside containers
#: that pass the GPU through) and AMD's ROCm compute device
_GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/kfd")


def surely_no_gpu() -> bool:
    """True when this Linux machine has no GPU driver loaded, so ``auto`` is the CPU,
    known without importing torch (seconds); False when unsure (then ask torch)."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(path) for path in _GPU_DRIVER_FILES)


def check_device(spec: str) -> str:
    """The syntax of a device (``auto``, ``cpu``, ``cuda``, ``cuda:<i>``), normalised; whether
    CUDA is there is checked when the work runs (:func:`resolve_device`).

    Raises:
        ConfigError: not a device featx knows.
    """
    text = str(spec).strip().lower()
    if not _DEVICE.match(text):
        raise ConfigError(f"{spec!r} is not a device; use auto, cpu, cuda or cuda:<index>")
    return text


def describe_device(device: torch.device) -> str:
    """``"cuda:0 (NVIDIA H200)"`` or ``"cpu (2 threads)"``, for the file's attributes."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
