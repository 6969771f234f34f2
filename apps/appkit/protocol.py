"""The app protocol: all that the manager and an app agree on, in one module.

- The environment the manager launches an app with (the names below). DARKROOM_MODELS
  holds the models spec, `ModelsSpec`: the manager writes it with `to_json`, the app
  reads it with `from_json`.
- The HTTP answers the manager relies on: /api/health (200 ready, 503 loading) and
  /api/unload (200 unloaded, 409 busy with a job: ask again later).
- The files under DARKROOM_HOME/run through which apps find one another and a switch
  pauses a workflow batch: run files, holds and batches (`RunStatus`, `Hold`, `Batch`).

This file is the only copy. Bundled apps import it as `appkit.protocol`; the manager,
whose env holds no app kit, loads this same file from the apps tree it ships (see
manager/protocol.py). So it imports nothing but the standard library.

The models spec, as JSON:

    {"models": {"flux-schnell": {
        "variant": "gguf-q4", "precision": "gguf-q4", "offload": "model",
        "files": [{"repo": "city96/FLUX.1-schnell-gguf", "revision": "<commit>", "sha256": "...",
                   "path": "flux1-schnell-Q4_K_S.gguf", "local": "/abs/.../flux1-schnell-Q4_K_S.gguf"}],
        "snapshots": {"black-forest-labs/FLUX.1-schnell": "/abs/.../snapshots/<commit>"}}},
     "default": "flux-schnell"}

A bare map {model_id: {...}} (no "models" key) is read the same way, and `files` may be
a map {repo path: local path}; both keep older writers working.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- environment

HOST = "DARKROOM_HOST"  # address to bind, 127.0.0.1 unless the user opts in
PORT = "DARKROOM_PORT"  # port to listen on
APP = "DARKROOM_APP"  # the app id
DEVICE = "DARKROOM_DEVICE"  # "cuda", "cuda:1", "mps" or "cpu"
OUTPUTS = "DARKROOM_OUTPUTS"  # folder for results
HOME = "DARKROOM_HOME"  # the data folder
MODELS = "DARKROOM_MODELS"  # the models spec, JSON (ModelsSpec)
IDLE_UNLOAD = "DARKROOM_IDLE_UNLOAD_MINUTES"  # 0 = never
HF_CACHE = "HF_HUB_CACHE"  # the shared model store
HF_OFFLINE = "HF_HUB_OFFLINE"  # always "1": apps never download at run time

# ---------------------------------------------------------------- HTTP

HEALTH_PATH = "/api/health"
HEALTH_READY = "ready"  # 200 {"status": "ready"}
HEALTH_LOADING = "loading"  # 503 {"status": "loading", "progress": 0..1}
UNLOAD_PATH = "/api/unload"  # POST ?timeout=<s>: free the model, keep process and port
LOAD_PATH = "/api/load"  # POST ?model=<id>: load a model again
UNLOAD_DONE = 200  # the model is freed (or none was loaded)
UNLOAD_BUSY = 409  # a job is still running; nothing was freed: ask again when it ends

# ---------------------------------------------------------------- files under DARKROOM_HOME/run

RUN_DIR = "run"
HOLDS_DIR = "holds"
BATCHES_DIR = "batches"
BATCH_RUNNING, BATCH_PAUSED = "running", "paused"


def run_file(home: Path, app: str) -> Path:
    """HOME/run/<app>.json: the supervisor's run file, which others only read."""
    return Path(home) / RUN_DIR / f"{app}.json"


def hold_file(home: Path, app: str) -> Path:
    """HOME/run/holds/<app>.json: a switch is making <app> give up its GPU memory."""
    return Path(home) / RUN_DIR / HOLDS_DIR / f"{app}.json"


def batches_dir(home: Path) -> Path:
    """HOME/run/batches: one file per workflow batch at work."""
    return Path(home) / RUN_DIR / BATCHES_DIR


def _read_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class RunStatus:
    """What an app reads of another app's run file: its status and, when ready, its URL.

    The supervisor writes more (pids, log tail...); those are the manager's own business."""

    status: str
    url: str = ""

    @property
    def ready(self) -> bool:
        return self.status == HEALTH_READY and bool(self.url)

    @classmethod
    def read(cls, home: Path, app: str) -> RunStatus | None:
        """The run file's status and URL; None when there is none or it is unreadable."""
        data = _read_object(run_file(home, app))
        if data is None or not isinstance(data.get("status"), str):
            return None
        return cls(status=data["status"], url=str(data.get("url") or ""))


@dataclass(frozen=True)
class Hold:
    """A switch holds `app` for the app `for_app`. In force while the process it names lives:
    the waiting switch (`waiter_pid`), then the runner of `for_app` (`runner_pid`)."""

    app: str
    for_app: str
    waiter_pid: int | None = None
    runner_pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The process whose life the hold lasts."""
        return self.runner_pid or self.waiter_pid

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"app": self.app, "for": self.for_app}
        if self.waiter_pid is not None:
            data["waiter_pid"] = self.waiter_pid
        if self.runner_pid is not None:
            data["runner_pid"] = self.runner_pid
        return data

    @classmethod
    def read(cls, home: Path, app: str) -> Hold | None:
        data = _read_object(hold_file(home, app))
        if data is None:
            return None
        pids = [
            data.get(k) if isinstance(data.get(k), int) else None
            for k in ("waiter_pid", "runner_pid")
        ]
        return cls(
            app=str(data.get("app") or app),
            for_app=str(data.get("for") or ""),
            waiter_pid=pids[0],
            runner_pid=pids[1],
        )


@dataclass
class Batch:
    """A workflow batch at work (HOME/run/batches/<id>.json), written by the workflow engine;
    a switch reads it to wait for the current item, or to refuse when `keep_running`."""

    pid: int
    preset: str
    apps: list[str]
    keep_running: bool = False
    state: str = BATCH_RUNNING
    item: str = ""
    done: int = 0
    total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        pid = data.get("pid")
        return cls(
            pid=pid if isinstance(pid, int) else 0,
            preset=str(data.get("preset") or "?"),
            apps=[str(a) for a in data.get("apps") or []],
            keep_running=bool(data.get("keep_running")),
            state=str(data.get("state") or BATCH_RUNNING),
            item=str(data.get("item") or ""),
            done=int(data.get("done") or 0),
            total=int(data.get("total") or 0),
        )

    @classmethod
    def read(cls, path: Path) -> Batch | None:
        data = _read_object(path)
        return None if data is None else cls.from_dict(data)


# ---------------------------------------------------------------- the models spec

OFFLOADS = ("none", "model", "sequential")


class ModelsError(ValueError):
    """DARKROOM_MODELS is not valid JSON of the expected shape; the message says where."""


def _need(data: Any, where: str, kind: type, what: str) -> Any:
    if not isinstance(data, kind):
        raise ModelsError(f"DARKROOM_MODELS: {where}: must be {what}.")
    return data


def _text(data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None:
        raise ModelsError(f"DARKROOM_MODELS: {where}.{key}: Field required.")
    return _need(value, f"{where}.{key}", str, "a string")


@dataclass(frozen=True)
class LocalFile:
    """One weight file as the store holds it: where it came from and where it lies."""

    path: str
    local: str
    repo: str = ""
    revision: str = "main"
    sha256: str | None = None

    @property
    def local_path(self) -> Path:
        return Path(self.local)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "file") -> LocalFile:
        _need(data, where, dict, "an object")
        sha = data.get("sha256")
        return cls(
            path=_text(data, "path", where),
            local=_text(data, "local", where),
            repo=_text(data, "repo", where, ""),
            revision=_text(data, "revision", where, "main"),
            sha256=sha if isinstance(sha, str) else None,
        )


@dataclass(frozen=True)
class ModelChoice:
    """The variant of one model the plan chose, with its files on disk."""

    variant: str
    precision: str = ""  # empty: the same as the variant
    offload: str = "none"  # one of OFFLOADS
    files: list[LocalFile] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)  # repo -> local snapshot folder

    def __post_init__(self) -> None:
        if not self.precision:
            object.__setattr__(self, "precision", self.variant)
        if self.offload not in OFFLOADS:
            raise ModelsError(
                f"DARKROOM_MODELS: offload: must be one of {', '.join(OFFLOADS)}, "
                f"not '{self.offload}'."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "precision": self.precision,
            "offload": self.offload,
            "files": [f.to_dict() for f in self.files],
            "snapshots": dict(self.snapshots),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "model") -> ModelChoice:
        _need(data, where, dict, "an object")
        raw_files = data.get("files") or []
        if isinstance(raw_files, dict):  # {repo path: local path}
            raw_files = [{"path": k, "local": v} for k, v in raw_files.items()]
        files = [
            LocalFile.from_dict(f, f"{where}.files.{i}")
            for i, f in enumerate(_need(raw_files, f"{where}.files", list, "a list"))
        ]
        snapshots = _need(data.get("snapshots") or {}, f"{where}.snapshots", dict, "an object")
        offload = data.get("offload") or "none"
        if offload not in OFFLOADS:
            raise ModelsError(
                f"DARKROOM_MODELS: {where}.offload: must be one of "
                f"{', '.join(OFFLOADS)}, not '{offload}'."
            )
        return cls(
            variant=_text(data, "variant", where),
            precision=_text(data, "precision", where, ""),
            offload=offload,
            files=files,
            snapshots={str(k): str(v) for k, v in snapshots.items()},
        )

    def find(self, pattern: str) -> list[LocalFile]:
        """Files whose repo path matches a glob ('*.gguf', 'transformer/*')."""
        return [f for f in self.files if fnmatch(f.path, pattern)]

    def snapshot(self, repo: str | None = None) -> Path | None:
        """The local folder of a repo's snapshot: named, or worked out from model_index.json.

        Without `repo`, the repo that holds model_index.json (the pipeline's own) is meant.
        """
        if repo is not None and repo in self.snapshots:
            return Path(self.snapshots[repo])
        for f in self.files:
            if f.path == "model_index.json" and (repo is None or f.repo == repo):
                return f.local_path.parent
        if repo is None and len(self.snapshots) == 1:
            return Path(next(iter(self.snapshots.values())))
        if repo is not None:
            for f in self.files:
                if f.repo == repo:  # strip the repo path's depth from the local path
                    return f.local_path.parents[len(Path(f.path).parts) - 1]
        return None


@dataclass(frozen=True)
class ModelsSpec:
    """Every model the app may use, and which one to load first."""

    models: dict[str, ModelChoice] = field(default_factory=dict)
    default: str | None = None

    def __post_init__(self) -> None:
        if self.default is not None and self.default not in self.models:
            raise ModelsError(
                f"DARKROOM_MODELS: default model '{self.default}' is not among the models."
            )

    def to_dict(self) -> dict[str, Any]:
        return {"models": {k: m.to_dict() for k, m in self.models.items()}, "default": self.default}

    def to_json(self) -> str:
        """The value of DARKROOM_MODELS (keys sorted: the same spec gives the same text)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> ModelsSpec:
        _need(data, "top level", dict, "an object")
        if "models" not in data:
            data = {"models": data}
        models = _need(data["models"] or {}, "models", dict, "an object")
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise ModelsError("DARKROOM_MODELS: default: must be a model id.")
        return cls(
            models={str(k): ModelChoice.from_dict(v, f"models.{k}") for k, v in models.items()},
            default=default,
        )

    @classmethod
    def from_json(cls, text: str | None) -> ModelsSpec:
        """Parse DARKROOM_MODELS; empty means no models. Raises ModelsError with a sentence."""
        if not text or not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelsError(
                f"DARKROOM_MODELS is not valid JSON ({exc.msg} at character {exc.pos})."
            ) from None
        return cls.from_dict(data)

    @property
    def default_id(self) -> str | None:
        """The model to load first: the named default, else the first listed."""
        return self.default or next(iter(self.models), None)

    def get(self, model_id: str | None) -> tuple[str, ModelChoice]:
        """(id, choice) for a model id, or the default one; KeyError with a sentence if unknown."""
        key = model_id or self.default_id
        if key is None:
            raise KeyError("No model is installed for this app; install one with Darkroom first.")
        if key not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise KeyError(f"Unknown model '{key}'. Installed models: {known}.")
        return key, self.models[key]
