"""Compute devices and precisions: resolving what the user asked for to what this machine has.

``auto`` means CUDA when there is a usable GPU, else the CPU; a CUDA device asked for and
not there is a :class:`~featx.core.errors.DeviceError`, never a silent fall-back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

#: ``--precision``: autocast dtype of the model (features are stored float32 either way)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
            raise ConfigError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:<index>") from None
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
    raise ConfigError(f"--device {spec!r} is not supported; use auto, cpu, cuda or cuda:<index>")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU.

    CPU bf16 is about twice as fast on CPUs with AVX-512 BF16 but changes the numbers,
    so it is only used when asked for.
    """
    import torch

    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def describe_device(device: torch.device) -> str:
    """``"cuda:0 (NVIDIA H200)"`` or ``"cpu (2 threads)"``, for the file's attributes."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
