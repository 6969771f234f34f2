"""Finding a free TCP port for an app: the one it prefers, else the next free one in range."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable

from ..errors import DarkroomError


def port_free(host: str, port: int) -> bool:
    """True if a server could listen on host:port now.

    POSIX servers set SO_REUSEADDR, so we do too (a port in TIME_WAIT is free for them);
    on Windows that option would let us bind a port in use, so we ask for exclusivity.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name == "nt":
            with contextlib.suppress(AttributeError, OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, preferred: int, start: int, end: int, taken: Iterable[int] = ()) -> int:
    """The preferred port if free, else the first free one in start..end (both included).

    `taken` holds ports other supervised apps have claimed but may not have bound yet.
    """
    claimed = set(taken)
    candidates = [preferred] + [p for p in range(start, end + 1) if p != preferred]
    for port in candidates:
        if port not in claimed and port_free(host, port):
            return port
    raise DarkroomError(
        f"No free port for the app: {preferred} and every port from {start} to {end} on {host} are in use.",
        "Close programs that use these ports, or widen the range with "
        "`darkroom config set port_end <number>`.",
    )
