"""Precisions of stage one, and the devices it runs on (resolved by :mod:`featx.core.devices`).

``--precision auto`` is bf16 on CUDA and fp32 on CPU; the features are stored float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.devices import describe_device, resolve_device

if TYPE_CHECKING:
    import torch

#: ``--precision``: autocast dtype of the model (features are stored float32 either way)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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


__all__ = ["PRECISIONS", "describe_device", "resolve_device", "resolve_precision"]
