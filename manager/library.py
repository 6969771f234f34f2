"""models/library/<kind>/<file>: the store's files under the folder names that apps such as
ComfyUI and Forge look in (checkpoints, vae, upscale_models ...), as hard links.

A third-party app pointed at these folders sees every weight Darkroom installed without a
second copy on disk; the HF-cache layout stays the one source of truth.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .home import Home
from .recipe import Recipe
from .state import InstalledApp
from .weights_store import RepoStore

# The folders a template may point at; created even when empty so apps find them.
KINDS = ("checkpoints", "diffusion_models", "unet", "text_encoders", "clip", "vae", "loras",
         "upscale_models", "facerestore_models", "facedetection", "inpaint", "embeddings", "controlnet")


def root(home: Home) -> Path:
    return home.models / "library"


def ensure(home: Home) -> Path:
    for kind in KINDS:
        (root(home) / kind).mkdir(parents=True, exist_ok=True)
    return root(home)


def link(home: Home, recipe: Recipe, installed: InstalledApp) -> list[Path]:
    """Link each file of models that name a library folder; returns the links made."""
    ensure(home)
    kinds = {m.id: m.library for m in recipe.models if m.library}
    made = []
    for m in installed.models:
        kind = kinds.get(m.model)
        if not kind:
            continue
        folder = root(home) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for f in m.files:
            source = RepoStore(home.models, f.repo, f.repo_type).pointer(f.revision, f.path).resolve()
            if not source.is_file():
                continue
            target = folder / Path(f.path).name
            if target.exists() and os.path.samefile(target, source):
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)  # another filesystem: a copy is the only way
            made.append(target)
    return made


def unlink_unused(home: Home, keep: set[Path]) -> int:
    """Remove library entries whose blob no longer exists in the store's blobs (after gc)."""
    removed = 0
    base = root(home)
    if not base.is_dir():
        return 0
    for entry in base.rglob("*"):
        if entry.is_file() and entry.resolve() not in keep and os.stat(entry).st_nlink <= 1:
            entry.unlink()
            removed += 1
    return removed
