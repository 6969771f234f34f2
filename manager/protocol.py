"""The app protocol, as the manager uses it: the one module apps/appkit/protocol.py.

The app kit owns the protocol (environment names, the models spec, the health and unload
answers, the run/holds/batches files), because bundled apps run in their own env, which
holds no `manager`. The manager ships the apps tree (manager/bundled.py finds it in a
checkout and in an installed wheel) and loads that same file here, so there is one copy
and the two sides cannot drift. The file imports only the standard library.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .bundled import apps_dir

_NAME = "manager._app_protocol"


def _load() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    path = apps_dir() / "appkit" / "protocol.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken install
        raise ImportError(f"The app protocol is missing from Darkroom's apps folder ({path}).")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # before exec: dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


_p = _load()

# environment
HOST: str = _p.HOST
PORT: str = _p.PORT
APP: str = _p.APP
DEVICE: str = _p.DEVICE
OUTPUTS: str = _p.OUTPUTS
HOME: str = _p.HOME
MODELS: str = _p.MODELS
IDLE_UNLOAD: str = _p.IDLE_UNLOAD
HF_CACHE: str = _p.HF_CACHE
HF_OFFLINE: str = _p.HF_OFFLINE

# HTTP
HEALTH_PATH: str = _p.HEALTH_PATH
HEALTH_READY: str = _p.HEALTH_READY
HEALTH_LOADING: str = _p.HEALTH_LOADING
UNLOAD_PATH: str = _p.UNLOAD_PATH
LOAD_PATH: str = _p.LOAD_PATH
UNLOAD_DONE: int = _p.UNLOAD_DONE
UNLOAD_BUSY: int = _p.UNLOAD_BUSY

# files under HOME/run
RUN_DIR: str = _p.RUN_DIR
HOLDS_DIR: str = _p.HOLDS_DIR
BATCHES_DIR: str = _p.BATCHES_DIR
BATCH_RUNNING: str = _p.BATCH_RUNNING
BATCH_PAUSED: str = _p.BATCH_PAUSED
run_file = _p.run_file
hold_file = _p.hold_file
batches_dir = _p.batches_dir
RunStatus = _p.RunStatus
Hold = _p.Hold
Batch = _p.Batch

# the models spec (DARKROOM_MODELS)
OFFLOADS: tuple[str, ...] = _p.OFFLOADS
ModelsError = _p.ModelsError
LocalFile = _p.LocalFile
ModelChoice = _p.ModelChoice
ModelsSpec = _p.ModelsSpec
