"""Results on disk: PNGs in the app's outputs folder with their parameters inside them."""

from __future__ import annotations

import json
import os
import re
import time
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


def save_png(image: Any, folder: Path, stem: str, params: dict[str, Any], software: str,
             **save_args: Any) -> Path:
    """Write `image` (a PIL image) as folder/<date>/<stem>.png, atomically; returns the path.

    `save_args` go to PIL's PNG writer (exif=, icc_profile=)."""
    day = folder / time.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"{stem}.png"
    tmp = day / f".{stem}.png.tmp"
    image.save(tmp, format="PNG", pnginfo=png_info(params, software), **save_args)
    os.replace(tmp, path)
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
