"""models/library/<kind>/<file>: the store's files under the folder names that apps such as
ComfyUI and Forge look in (checkpoints, diffusion_models, unet, vae, upscale_models ...), as
hard links.

A third-party app pointed at these folders sees every weight Darkroom installed without a
second copy on disk; the HF-cache layout stays the one source of truth. A file's `library:`
wins over its variant's, and a variant's over its model's, so a GGUF build of FLUX lands in
unet/ and the pipeline's CLIP text encoder in text_encoders/. Only single weight files are
linked: a checkpoint split into shards (FLUX's T5, a diffusers transformer) is something
neither ComfyUI nor Forge loads, and configs and tokenizers are no use to them. A file named
alike in every diffusers repo (text_encoder/model.safetensors) is linked under its repo's
name (FLUX.1-schnell-text_encoder.safetensors), so two models never take each other's place.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path, PurePosixPath

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

# Folders that gather several kinds, for apps that take one folder where ComfyUI takes many.
# Forge lists everything under its --ckpt-dir (following links) and loads a FLUX or SD 3.5
# diffusion-model file or GGUF from that list as it loads a full checkpoint.
VIEWS = {"webui_checkpoints": ("checkpoints", "diffusion_models", "unet")}

# What an app can load: one weight file, not one shard of several, nor a config or tokenizer.
_WEIGHT_SUFFIXES = {".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pth", ".bin", ".onnx"}
_SHARD = re.compile(r"-\d+-of-\d+$")
# The names diffusers and transformers give every component's weights, whatever the model.
_GENERIC_STEM = re.compile(r"^(model|diffusion_pytorch_model|pytorch_model)(\.fp16)?$")


def root(home: Home) -> Path:
    return home.library


def ensure(home: Home) -> Path:
    for kind in KINDS:
        (root(home) / kind).mkdir(parents=True, exist_ok=True)
    for view, kinds in VIEWS.items():
        (root(home) / view).mkdir(exist_ok=True)
        for kind in kinds:
            _link_dir(root(home) / kind, root(home) / view / kind)
    return root(home)


def _link_dir(target: Path, link: Path) -> None:
    """library/<view>/<kind> -> library/<kind>: a directory link, so nothing is kept twice.
    Best effort: where the filesystem has no links at all, the view stays without that kind
    and the app still finds the kind's own folder."""
    if link.is_symlink() or link.exists():
        return
    try:
        os.symlink(target, link, target_is_directory=True)
    except OSError:
        if os.name == "nt":  # symlinks need a privilege on Windows; a junction does not
            import _winapi

            with contextlib.suppress(OSError):
                _winapi.CreateJunction(str(target), str(link))


def linkable(path: str) -> bool:
    """True for a file an app loads by itself: a weight file, not one shard of several."""
    p = PurePosixPath(path)
    return p.suffix.lower() in _WEIGHT_SUFFIXES and not _SHARD.search(p.stem)


def library_name(repo: str, path: str) -> str:
    """The file's name in library/: its own, unless diffusers named it alike in every repo
    (vae/diffusion_pytorch_model.safetensors -> FLUX.1-schnell-vae.safetensors)."""
    p = PurePosixPath(path)
    if len(p.parts) > 1 and _GENERIC_STEM.match(p.stem):
        return "-".join([repo.rsplit("/", 1)[-1], *p.parts[:-1]]) + p.suffix
    return p.name


def _matches(spec: ModelFile, repo: str, path: str) -> bool:
    if spec.repo != repo:
        return False
    return spec.path == path or (spec.is_pattern and bool(match_pattern(spec.path, [path])))


def kind_of(model: Model, variant: str | None, repo: str, path: str) -> str | None:
    """The library folder a file of `model` goes to: the file entry's, else its variant's,
    else the model's (common files: the entry's, else the model's). `variant=None`: any
    variant. None for a file no app could load by itself (see `linkable`)."""
    if not linkable(path):
        return None
    for v in model.variants:
        if variant is None or v.id == variant:
            for f in v.files:
                if _matches(f, repo, path):
                    return f.library or v.library or model.library
    for f in model.common_files:
        if _matches(f, repo, path):
            return f.library or model.library
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
            placed = _place(home, kind, source, library_name(f.repo, f.path))
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
                placed = _place(
                    home, kind, lf.local_path.resolve(), library_name(lf.spec.repo, lf.path)
                )
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
