"""Which torch device to run on, and how much GPU memory is in use; torch imported lazily
so apps without torch (and the server's start) do not pay for it."""

from __future__ import annotations

import gc
import sys
from typing import Any

from . import heap


def resolve(requested: str) -> str:
    """The device to use for DARKROOM_DEVICE; falls back to CPU, saying so, when it is absent."""
    import torch

    name = requested or "cpu"
    if name.startswith("cuda"):
        if torch.cuda.is_available():
            index = int(name.split(":", 1)[1]) if ":" in name else 0
            if index < torch.cuda.device_count():
                return name
        print(
            f"warning: {name} was asked for but torch sees no such GPU; running on the CPU "
            "(slow). Repair the app's environment if this machine has an NVIDIA GPU.",
            file=sys.stderr,
            flush=True,
        )
        return "cpu"
    if name == "mps":
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        print(
            "warning: mps was asked for but is not available; running on the CPU.",
            file=sys.stderr,
            flush=True,
        )
        return "cpu"
    return "cpu"


def memory(device: str) -> dict[str, Any]:
    """GPU memory torch holds now and at peak, in bytes; empty for the CPU."""
    if not device.startswith("cuda"):
        return {}
    import torch

    return {
        "vram_allocated": int(torch.cuda.memory_allocated(device)),
        "vram_reserved": int(torch.cuda.memory_reserved(device)),
        "vram_peak": int(torch.cuda.max_memory_allocated(device)),
    }


def release(device: str) -> None:
    """Give freed memory back: Python's garbage, then torch's cached GPU blocks."""
    gc.collect()
    heap.trim()
    if "torch" not in sys.modules:
        return
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
