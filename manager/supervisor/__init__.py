"""Supervision: a detached runner per app, and start/stop/status/logs from outside.

The runner (runner.py) is the only process that touches a running app; everyone else
reads and asks through run/ files (control.py). The public names load lazily so the
runner process, which imports this package too, starts without the control side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .control import (
        app_status,
        logs,
        open_app,
        restart,
        start,
        start_with_needs,
        status,
        stop,
        wait_ready,
    )
    from .spec import LaunchSpec, RunInfo

_WHERE = {
    "LaunchSpec": "spec",
    "RunInfo": "spec",
    **{
        name: "control"
        for name in (
            "app_status",
            "logs",
            "open_app",
            "restart",
            "start",
            "start_with_needs",
            "status",
            "stop",
            "wait_ready",
        )
    },
}
__all__ = [
    "LaunchSpec",
    "RunInfo",
    "app_status",
    "logs",
    "open_app",
    "restart",
    "start",
    "start_with_needs",
    "status",
    "stop",
    "wait_ready",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
