"""Supervision: a detached runner per app, and start/stop/status/logs from outside.

The runner (runner.py) is the only process that touches a running app; everyone else
reads and asks through run/ files (control.py).
"""

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

__all__ = ["LaunchSpec", "RunInfo", "app_status", "logs", "open_app", "restart", "start",
           "start_with_needs", "status", "stop", "wait_ready"]
