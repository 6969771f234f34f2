"""The shape of DARKROOM_MODELS: which variant of each model to run, and where its files lie.

The installer writes it from the plan and the weight store; every bundled app reads it
through `ModelsSpec.from_json`. Only pydantic is imported here, so the manager's own
tests can check the shape without an app env.

    {"models": {"flux-schnell": {
        "variant": "gguf-q4", "precision": "gguf-q4", "offload": "model",
        "files": [{"repo": "city96/FLUX.1-schnell-gguf", "revision": "main",
                   "path": "flux1-schnell-Q4_K_S.gguf", "local": "/abs/.../flux1-schnell-Q4_K_S.gguf"}],
        "snapshots": {"black-forest-labs/FLUX.1-schnell": "/abs/.../snapshots/<commit>"}}},
     "default": "flux-schnell"}

A bare map {model_id: {...}} (no "models" key) is read the same way, and `files` may be
a map {repo path: local path}; both keep older writers working.
"""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ModelsError(ValueError):
    """DARKROOM_MODELS is not valid JSON of the expected shape; the message says where."""


class LocalFile(BaseModel):
    """One weight file as the store holds it: where it came from and where it lies."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    repo: str = ""
    revision: str = "main"
    path: str
    local: str

    @property
    def local_path(self) -> Path:
        return Path(self.local)


class ModelChoice(BaseModel):
    """The variant of one model the plan chose, with its files on disk."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    variant: str
    precision: str = ""
    offload: Literal["none", "model", "sequential"] = "none"
    files: list[LocalFile] = Field(default_factory=list)
    snapshots: dict[str, str] = Field(default_factory=dict, description="repo -> local snapshot folder")

    @field_validator("files", mode="before")
    @classmethod
    def _files_map(cls, v: Any) -> Any:
        if isinstance(v, dict):  # {repo path: local path}
            return [{"path": k, "local": local} for k, local in v.items()]
        return v

    @field_validator("offload", mode="before")
    @classmethod
    def _offload(cls, v: Any) -> Any:
        return "none" if v in (None, "") else v

    @model_validator(mode="after")
    def _default_precision(self) -> ModelChoice:
        if not self.precision:
            object.__setattr__(self, "precision", self.variant)
        return self

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
                if f.repo == repo:
                    # strip the repo path's depth from the local path
                    depth = len(Path(f.path).parts)
                    return f.local_path.parents[depth - 1]
        return None


class ModelsSpec(BaseModel):
    """Every model the app may use, and which one to load first."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    models: dict[str, ModelChoice] = Field(default_factory=dict)
    default: str | None = None

    @model_validator(mode="after")
    def _check_default(self) -> ModelsSpec:
        if self.default is not None and self.default not in self.models:
            raise ValueError(f"default model '{self.default}' is not among the models")
        return self

    @classmethod
    def from_json(cls, text: str | None) -> ModelsSpec:
        """Parse DARKROOM_MODELS; empty means no models. Raises ModelsError with a sentence."""
        if not text or not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelsError(f"DARKROOM_MODELS is not valid JSON ({exc.msg} at character {exc.pos}).") from None
        if isinstance(data, dict) and "models" not in data:
            data = {"models": data}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "top level"
            raise ModelsError(f"DARKROOM_MODELS: {where}: {err['msg']}.") from None

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
