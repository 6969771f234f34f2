"""Results on disk: PNGs in the app's outputs folder with their parameters inside them."""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def png_info(params: dict[str, Any], software: str):
    """Text chunks: `parameters` (JSON, sorted keys, so same settings give the same bytes)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", json.dumps(params, sort_keys=True, ensure_ascii=False))
    info.add_text("Software", software)
    return info


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_stem(filename: str | None, action: str) -> str:
    """The name a result gets: the input's own name and what was done (`grandma-restored`), so a
    person finds it again; the time when no name was given. Only characters every file system
    and URL takes are kept."""
    base = Path((filename or "").replace("\\", "/")).name
    base = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    base = (
        unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    )  # Ölbild -> Olbild
    base = _UNSAFE.sub("-", base).strip("-._")[:100].rstrip("-._")
    if not base:
        base = time.strftime("%H%M%S")
    return f"{base}-{action}" if action else base


def _claim(day: Path, stem: str) -> Path:
    """A name in `day` no other result has: stem.png, else stem-2.png, stem-3.png, ...

    The name is taken by creating the file exclusively, so two jobs finishing at once never
    write over each other's result."""
    n = 1
    while True:
        path = day / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            n += 1
            continue
        return path


def save_png(
    image: Any, folder: Path, stem: str, params: dict[str, Any], software: str, **save_args: Any
) -> Path:
    """Write `image` (a PIL image) as folder/<date>/<stem>.png, atomically; returns the path.

    An existing result is never replaced: the new one gets a numbered suffix (`stem-2.png`).
    `save_args` go to PIL's PNG writer (exif=, icc_profile=)."""
    day = folder / time.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    path = _claim(day, stem)
    tmp = day / f".{path.name}.tmp"
    try:
        image.save(tmp, format="PNG", pnginfo=png_info(params, software), **save_args)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise
    return path


def read_params(path: Path) -> dict[str, Any]:
    """The parameters a PNG written by `save_png` carries."""
    from PIL import Image

    with Image.open(path) as img:
        return json.loads(img.text.get("parameters", "{}"))


def resolve(folder: Path, relative: str) -> Path | None:
    """A file inside the outputs folder named by a URL path, or None if it is outside or absent."""
    parts = relative.split("/")
    if not parts or not all(_SAFE.match(p) for p in parts):
        return None
    path = folder.joinpath(*parts)
    return path if path.is_file() else None
