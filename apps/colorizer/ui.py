"""The colorizer's web page (Gradio): the same `colorize` task, through the same job queue."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from appkit.runtime import Runtime
from appkit.webui import run_job

from .colorize import ColorizeRequest


def build(runtime: Runtime) -> Any:
    import gradio as gr

    task = runtime.tasks["colorize"]
    models = list(runtime.settings.models.models)

    def run(path: str | None, model: str | None, strength: float, progress: Any = gr.Progress()):  # noqa: B008
        if not path:
            raise gr.Error("Choose a photo first.")
        job = run_job(
            runtime,
            task,
            lambda: ColorizeRequest(
                image=base64.b64encode(Path(path).read_bytes()).decode(),
                filename=Path(path).name,
                model=model or None,
                strength=float(strength),
            ),
            progress,
        )
        return str(runtime.settings.outputs / job.result["files"][0])

    with gr.Blocks(title="Darkroom colorizer") as page:
        gr.Markdown("## Colorizer\nColour for black-and-white and faded photos, on this computer.")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Photo", elem_id="photo")
                model = gr.Dropdown(
                    models,
                    value=runtime.settings.models.default_id,
                    label="Model",
                    visible=len(models) > 1,
                )
                strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength")
                button = gr.Button("Colourise", variant="primary", elem_id="colorize")
            with gr.Column():
                result = gr.Image(type="filepath", label="Result", elem_id="result", format="png")
        button.click(run, [photo, model, strength], [result])
    return page
