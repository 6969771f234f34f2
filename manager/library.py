"""models/library/<kind>/<file>: the store's files under the folder names that apps such as
ComfyUI and Forge look in (checkpoints, diffusion_models, unet, vae, upscale_models ...), as
hard links.

A third-party app pointed at these folders sees every weight Darkroom installed without a
second copy on disk; the HF-cache layout stays the one source of truth. A variant's
`library:` wins over its model's, so a GGUF build of FLUX lands in unet/ while the
diffusers folders it shares with other variants (named alike in every repo) stay out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .home import Home
from .recipe import Model, ModelFile, Recipe
from .state import InstalledApp
from .weights.store import RepoStore, all_blobs, match_pattern
from .weights.types import LocalFile

# The folders a template may point at; created even when empty so apps find them.
KINDS = (
    "checkpoints",
    "diffusion_models",
    "unet",
    "text_encoders",
    "clip",
    "vae",
    "loras",
    "upscale_models",
    "facerestore_models",
    "facedetection",
    "inpaint",
    "embeddings",
    "controlnet",
)


def root(home: Home) -> Path:
    return home.library


def ensure(home: Home) -> Path:
    for kind in KINDS:
        (root(home) / kind).mkdir(parents=True, exist_ok=True)
    return root(home)


def _matches(spec: ModelFile, repo: str, path: str) -> bool:
    if spec.repo != repo:
        return False
    return spec.path == path or (spec.is_pattern and bool(match_pattern(spec.path, [path])))


def kind_of(model: Model, variant: str | None, repo: str, path: str) -> str | None:
    """The library folder a file of `model` goes to: its variant's, else the model's; the
    model's common files only ever go to the model's. `variant=None`: any variant."""
    for v in model.variants:
        if (variant is None or v.id == variant) and any(_matches(f, repo, path) for f in v.files):
            return v.library or model.library
    if any(_matches(f, repo, path) for f in model.common_files):
        return model.library
    return None


def _place(home: Home, kind: str, source: Path, name: str) -> Path | None:
    """Hard-link `source` (a blob in the store) as library/<kind>/<name>; None when nothing changed."""
    if not source.is_file():
        return None
    folder = root(home) / kind
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists() and os.path.samefile(target, source):
        return None
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)  # another filesystem: a copy is the only way
    return target


def link(home: Home, recipe: Recipe, installed: InstalledApp) -> list[Path]:
    """Link each file of an installed app whose model or variant names a library folder."""
    ensure(home)
    models = {m.id: m for m in recipe.models}
    made = []
    for m in installed.models:
        model = models.get(m.model)
        if model is None:
            continue
        for f in m.files:
            kind = kind_of(model, m.variant, f.repo, f.path)
            if not kind:
                continue
            source = (
                RepoStore(home.models, f.repo, f.repo_type).pointer(f.revision, f.path).resolve()
            )
            placed = _place(home, kind, source, Path(f.path).name)
            if placed:
                made.append(placed)
    return made


def link_local(
    home: Home, recipe: Recipe, local: list[LocalFile], variants: dict[str, str] | None = None
) -> list[Path]:
    """Link files just pulled or imported (`models pull`, `models import`) the same way;
    `variants` narrows a model to the variant the files were fetched for."""
    ensure(home)
    made = []
    for lf in local:
        for model in recipe.models:
            kind = kind_of(model, (variants or {}).get(model.id), lf.spec.repo, lf.path)
            if kind:
                placed = _place(home, kind, lf.local_path.resolve(), Path(lf.path).name)
                if placed:
                    made.append(placed)
                break
    return made


def unlink_unused(home: Home, keep: set[Path] | None = None) -> int:
    """Remove library entries whose file left the store (after gc or remove). The test is the
    inode, not the link count: an imported file may still have the user's own name."""
    base = root(home)
    if not base.is_dir():
        return 0
    in_store = set()
    for blob in all_blobs(home.models):
        with contextlib.suppress(OSError):
            st = blob.stat()
            in_store.add((st.st_dev, st.st_ino))
    kept = {p.resolve() for p in keep or set()}
    removed = 0
    for entry in base.rglob("*"):
        if not entry.is_file() or entry.resolve() in kept:
            continue
        st = entry.stat()
        if (st.st_dev, st.st_ino) not in in_store:
            entry.unlink()
            removed += 1
    return removed
