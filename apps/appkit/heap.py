"""Keeping the C heap of a long-running app small (glibc on Linux; a no-op elsewhere).

An app loads its model in one thread, runs jobs in another and answers HTTP in a pool of
others; glibc gives each thread that allocates its own malloc arena (up to 8 per core),
and memory freed in an arena stays in the process's RSS. Two arenas are enough for a
server whose heavy work runs in one thread at a time, and trimming after a job or an unload
hands freed pages back to the system, so RAM shown for the app is RAM it uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (glibc only: musl has no mallopt/malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before the app starts its threads."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count))


def trim() -> bool:
    """Give freed heap pages back to the system (after a job, after unloading a model)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
