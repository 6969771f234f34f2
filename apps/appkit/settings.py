"""The app's settings, read once from the environment variables the supervisor sets.

The names come from appkit/protocol.py, which the manager loads too: one copy for both sides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .protocol import (
    APP,
    DEVICE,
    HOME,
    HOST,
    IDLE_UNLOAD,
    MODELS,
    OUTPUTS,
    PORT,
    ModelsError,
    ModelsSpec,
)


class SettingsError(ValueError):
    """An environment variable holds something the app cannot use; the message names it."""


@dataclass(frozen=True)
class AppSettings:
    app: str
    host: str
    port: int
    device: str
    outputs: Path
    home: Path | None
    models: ModelsSpec
    idle_unload_s: float  # 0 = never

    @classmethod
    def from_env(
        cls, app: str, default_port: int = 7860, environ: Mapping[str, str] | None = None
    ) -> AppSettings:
        env = os.environ if environ is None else environ
        try:
            port = int(env.get(PORT) or default_port)
        except ValueError:
            raise SettingsError(f"{PORT} must be a port number, not '{env.get(PORT)}'.") from None
        if not 0 < port < 65536:
            raise SettingsError(f"{PORT} must be between 1 and 65535, not {port}.")
        try:
            idle_min = float(env.get(IDLE_UNLOAD) or 0)
        except ValueError:
            raise SettingsError(
                f"{IDLE_UNLOAD} must be a number of minutes, not '{env.get(IDLE_UNLOAD)}'."
            ) from None
        home = Path(env[HOME]) if env.get(HOME) else None
        name = env.get(APP) or app
        if env.get(OUTPUTS):
            outputs = Path(env[OUTPUTS])
        elif home is not None:
            outputs = home / "outputs" / name
        else:
            outputs = Path.cwd() / "outputs"
        try:
            models = ModelsSpec.from_json(env.get(MODELS))
        except ModelsError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            app=name,
            host=env.get(HOST) or "127.0.0.1",
            port=port,
            device=(env.get(DEVICE) or "cpu").strip().lower(),
            outputs=outputs,
            home=home,
            models=models,
            idle_unload_s=max(0.0, idle_min * 60.0),
        )
