"""Plain data the supervisor works with: what to launch (LaunchSpec) and what is running (RunInfo).

Both cross a process boundary (caller -> runner -> run file -> any reader), so both turn
into JSON and back without losing anything.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# Statuses a run file can hold. "stale" is never written: readers report it when the
# runner that owned the file is gone.
STARTING, READY, RESTARTING, STOPPING = "starting", "ready", "restarting", "stopping"
STOPPED, FAILED, STALE = "stopped", "failed", "stale"
ACTIVE = frozenset({STARTING, READY, RESTARTING, STOPPING})

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass
class LaunchSpec:
    """Everything needed to launch one app; built from a recipe and the installed env."""

    app: str
    argv: list[str]  # may hold {port} {host} {env_python} {app_dir} {models_dir} {outputs_dir}
    env: dict[str, str]  # extra env vars; the protocol vars are added by the supervisor
    placeholders: dict[str, str]  # values for every placeholder except port/host
    port: int  # preferred; the next free one in the settings' range if taken
    health_path: str = "/api/health"
    startup_timeout_s: float = 600.0
    cwd: Path | None = None
    vram_gb: float = 0.0  # recorded in the run file (for switching apps on one GPU)
    needs: list[str] = field(default_factory=list)
    # Supervision knobs; the defaults suit real apps, tests make them short.
    poll_s: float = 0.5  # longest wait between health checks while starting
    backoff_s: float = 1.0  # first wait before a restart; doubles per quick crash
    backoff_max_s: float = 30.0
    max_quick_crashes: int = 5  # this many crashes in a row, each soon after start: give up
    stable_s: float = 60.0  # a run that lasted this long was not a "quick" crash
    stop_timeout_s: float = 10.0  # grace between SIGTERM and SIGKILL
    log_max_bytes: int = 5_000_000
    log_backups: int = 3

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cwd"] = str(self.cwd) if self.cwd else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("cwd"):
            values["cwd"] = Path(values["cwd"])
        return cls(**values)


def substitute(text: str, values: dict[str, str]) -> str:
    """Fill {name} placeholders; other braces (JSON, say) are left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass
class RunInfo:
    """The state of one supervised app, as its run file says (plus `stale`, worked out on read)."""

    app: str
    status: str
    port: int = 0
    host: str = "127.0.0.1"
    url: str = ""
    runner_pid: int | None = None
    runner_created: float | None = None  # process create time: tells a reused pid apart
    app_pid: int | None = None
    app_created: float | None = None
    started: float = 0.0  # wall clock, when the runner started
    ready_at: float | None = None
    restarts: int = 0
    last_error: str = ""
    hint: str = ""
    log_tail: list[str] = field(default_factory=list)
    progress: float | None = None  # 0..1 while the app says it is loading
    log_file: str = ""
    vram_gb: float = 0.0
    stop_timeout_s: float = 10.0
    token: str = ""  # ties a run file to the start call that made it
    updated: float = 0.0
    stale: bool = False

    @property
    def active(self) -> bool:
        """True while a live runner owns the app (starting, ready, restarting, stopping)."""
        return self.status in ACTIVE and not self.stale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
