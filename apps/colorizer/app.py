"""The colorizer as an appkit app: DDColor (spandrel_extra_arches) loaded from the store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from appkit.errors import LoadError
from appkit.runtime import AppDef, Runtime, Task

from . import __version__, colorize, ui

_REPAIR = "Run `darkroom models pull colorizer` to fetch the model's files again."


@dataclass
class Loaded:
    model_id: str
    variant: str
    descriptor: Any
    tags: list[str]


def load(runtime: Runtime, model_id: str | None, progress) -> Loaded:
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        key, choice = runtime.settings.models.get(model_id)
    except KeyError as exc:
        raise LoadError(
            f"{exc.args[0]} Reinstall the colorizer with `darkroom install colorizer`."
        ) from None
    files = [f.local_path for f in choice.files if f.path.endswith((".pth", ".pt", ".safetensors"))]
    if not files or not files[0].is_file():
        raise LoadError(
            f"The weight file of {key} ({choice.variant}) is missing from the store. {_REPAIR}"
        )
    progress(0.1, "importing spandrel")
    import spandrel
    import spandrel_extra_arches

    # DDColor is among spandrel's extra (non-commercial) architectures; the recipe says so.
    spandrel_extra_arches.install()
    progress(0.3, f"loading {files[0].name}")
    try:
        descriptor = spandrel.ModelLoader().load_from_file(str(files[0]))
    except Exception as exc:
        raise LoadError(
            f"{files[0].name} cannot be loaded by spandrel ({type(exc).__name__}: {exc}). {_REPAIR}"
        ) from None
    if descriptor.architecture.name != "DDColor":
        raise LoadError(
            f"{files[0].name} is a {descriptor.architecture.name} model, not DDColor. {_REPAIR}"
        )
    descriptor.to(runtime.device).eval()
    return Loaded(
        model_id=key, variant=choice.variant, descriptor=descriptor, tags=list(descriptor.tags)
    )


def unload(loaded: Loaded) -> None:
    loaded.descriptor = None


def describe(loaded: Loaded) -> dict[str, Any]:
    encoder = next((t for t in loaded.tags if t.startswith("convnext")), "")
    return {
        "arch": "DDColor",
        "encoder": encoder,
        "size": "tiny" if encoder == "convnext-t" else "large",
        "tags": loaded.tags,
    }


APP = AppDef(
    name="colorizer",
    version=__version__,
    load=load,
    unload=unload,
    describe=describe,
    ui=ui.build,
    max_body_bytes=128 * 1024 * 1024,
    tasks=[
        Task(
            "colorize",
            colorize.ColorizeRequest,
            colorize.run,
            colorize.check,
            "Colour for greyscale or faded photos; keeps the photo's own luminance",
        )
    ],
)
