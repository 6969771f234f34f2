"""The generator as an appkit app: load the chosen model's pipeline, serve `generate`,
`inpaint` (FLUX.1 Fill) and `control` (FLUX.1 Canny / Depth)."""

from __future__ import annotations

from typing import Any

from appkit.errors import LoadError
from appkit.runtime import AppDef, Runtime, Task

from . import __version__, edit, generate, loading, ui


def load(runtime: Runtime, model_id: str | None, progress) -> loading.Loaded:
    try:
        key, choice = runtime.settings.models.get(model_id)
    except KeyError as exc:
        raise LoadError(
            f"{exc.args[0]} Reinstall the generator with `darkroom install generator`."
        ) from None
    return loading.load(key, choice, runtime.device, progress)


def unload(loaded: loading.Loaded) -> None:
    pipe = loaded.pipe
    if hasattr(pipe, "remove_all_hooks"):
        pipe.remove_all_hooks()
    for name in list(getattr(pipe, "components", {})):
        setattr(pipe, name, None)
    loaded.pipe = None


def describe(loaded: loading.Loaded) -> dict[str, Any]:
    transformer = getattr(loaded.pipe, "transformer", None)
    params = list(transformer.parameters()) if transformer is not None else []
    return {
        "weight_types": sorted({type(p).__name__ for p in params}),
        "weight_dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params}),
        "family": loaded.info.family,
        "task": loaded.info.task,
        "precision": loaded.choice.precision,
        "offload": loaded.choice.offload,
        "dtype": loaded.dtype,
        "defaults": loaded.info.defaults,
        "negative_prompt": loaded.info.negative_prompt,
    }


APP = AppDef(
    name="generator",
    version=__version__,
    load=load,
    unload=unload,
    describe=describe,
    ui=ui.build,
    tasks=[
        Task(
            "generate",
            generate.GenerateRequest,
            generate.run,
            generate.check,
            "Text to image: prompt, size, steps, guidance, seed, count",
        ),
        Task(
            "inpaint",
            edit.InpaintRequest,
            edit.run_inpaint,
            edit.check_inpaint,
            "FLUX.1 Fill: repaint where the mask is white, or extend the canvas (expand)",
        ),
        Task(
            "control",
            edit.ControlRequest,
            edit.run_control,
            edit.check_control,
            "FLUX.1 Canny / Depth: a picture that follows a control image (photo or map)",
        ),
    ],
)
