"""The work of a batch: one item per image in the input folder, or per prompt x seed."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WorkflowError
from .presets import Preset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
PROMPTS_FILE = "prompts.txt"


@dataclass(frozen=True)
class Item:
    """One unit of work; `id` is stable across runs (it keys the ledger)."""

    id: str
    source: str = ""  # input file, relative to the input folder ("" for prompts)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def out_stem(self) -> str:
        """The output's path inside the out folder, without suffix: the input's, less its
        suffix (unless another input has the same stem: a.jpg and a.png give a.jpg.png, a.png.png)."""
        if not self.source or self.fields.get("keep_suffix"):
            return self.id
        return self.id.rsplit(".", 1)[0]


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n].strip("-") or "prompt"


def image_items(folder: Path, exclude: Path | None = None) -> list[Item]:
    """Every image under `folder` (sub-folders too; hidden files and the out folder skipped)."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(rel)
    stems = Counter(rel.with_suffix("").as_posix() for rel in found)
    return [
        Item(
            id=rel.as_posix(),
            source=rel.as_posix(),
            fields={
                "name": rel.as_posix(),
                "stem": rel.stem,
                **({"keep_suffix": True} if stems[rel.with_suffix("").as_posix()] > 1 else {}),
            },
        )
        for rel in found
    ]


def prompt_items(preset: Preset, source: Path | None) -> list[Item]:
    """prompts (prompts.txt in the folder, a .txt file, or the preset's own) x seeds."""
    prompts = list(preset.grid.prompts)
    if source is not None:
        file = source / PROMPTS_FILE if source.is_dir() else source
        if file.is_file():
            prompts = [
                line.strip()
                for line in file.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        elif not prompts:
            raise WorkflowError(
                f"There is no {PROMPTS_FILE} in {source}.",
                "Put one prompt per line in prompts.txt in that folder.",
            )
    out = []
    for i, prompt in enumerate(prompts):
        for seed in preset.grid.seeds:
            key = f"{i + 1:03d}-{_slug(prompt)}-seed{seed}"
            out.append(
                Item(id=key, fields={"prompt": prompt, "seed": seed, "name": key, "stem": key})
            )
    return out


def discover(preset: Preset, source: Path | None, exclude: Path | None = None) -> list[Item]:
    if preset.input == "prompts":
        items = prompt_items(preset, source)
    else:
        if source is None or not source.is_dir():
            raise WorkflowError(
                f"The input folder {source} does not exist.",
                "Give the folder that holds the images.",
            )
        items = image_items(source, exclude)
    if not items:
        what = "prompts" if preset.input == "prompts" else "images (png, jpg, webp, bmp, tiff)"
        raise WorkflowError(f"There are no {what} in {source}.", "Check the folder you gave.")
    return items
