"""The restorer as an appkit app: load every chosen model through spandrel, serve `restore`."""

from __future__ import annotations

from typing import Any

from appkit.runtime import AppDef, Runtime, Task

from . import __version__, chain, loading, restore, ui


def load(runtime: Runtime, _model_id: str | None, progress) -> loading.Toolbox:
    # The restorer uses several models at once (faces + upscaler + LaMa): all of them load.
    return loading.load(runtime.settings.models, runtime.device, progress)


def unload(box: loading.Toolbox) -> None:
    box.nets.clear()
    box.diffusion.clear()
    box.restorers.clear()
    box.detector = None


def describe(box: loading.Toolbox) -> dict[str, Any]:
    return {**box.describe(), "chain": chain.describe(box, None)}


APP = AppDef(
    name="restorer",
    version=__version__,
    load=load,
    unload=unload,
    describe=describe,
    ui=ui.build,
    max_body_bytes=128 * 1024 * 1024,
    tasks=[
        Task(
            "restore",
            restore.RestoreRequest,
            restore.run,
            restore.check,
            "Old photo: scratches filled, grain and fading removed, upscaled, faces restored, "
            "coloured; each step switchable, each with its model",
        )
    ],
)
