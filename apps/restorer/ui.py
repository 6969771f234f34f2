"""The restorer's web page (Gradio): the same `restore` task, through the same job queue."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from appkit.runtime import Runtime
from appkit.webui import run_job

from .restore import RestoreRequest


def build(runtime: Runtime) -> Any:
    import gradio as gr

    task = runtime.tasks["restore"]

    def run(
        path: str | None,
        scratches: bool,
        faces: bool,
        face_model: str,
        fidelity: float,
        upscale: bool,
        scale: str,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        if not path:
            raise gr.Error("Choose a photo first.")
        job = run_job(
            runtime,
            task,
            lambda: RestoreRequest(
                image=base64.b64encode(Path(path).read_bytes()).decode(),
                filename=Path(path).name,
                scratches=scratches,
                inpaint=scratches,
                faces=faces,
                face_model=face_model or None,
                fidelity=float(fidelity),
                upscale=upscale,
                scale=int(scale),
            ),
            progress,
        )
        return str(
            runtime.settings.outputs / job.result["files"][0]
        ), f"Done: {', '.join(job.result['steps'])}."

    with gr.Blocks(title="Darkroom photo restorer") as page:
        gr.Markdown(
            "## Photo restorer\nScratches filled, faces restored, the photo enlarged - on this computer."
        )
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Photo", elem_id="photo")
                scratches = gr.Checkbox(True, label="Fill scratches and dust")
                faces = gr.Checkbox(True, label="Restore faces")
                face_model = gr.Dropdown(
                    ["gfpgan", "restoreformer", "codeformer"], value="gfpgan", label="Face model"
                )
                fidelity = gr.Slider(0, 1, value=0.5, step=0.05, label="CodeFormer fidelity")
                upscale = gr.Checkbox(True, label="Upscale")
                scale = gr.Radio(["2", "4"], value="4", label="Scale")
                button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column():
                result = gr.Image(type="filepath", label="Result", elem_id="result", format="png")
                status = gr.Markdown(elem_id="status")
        button.click(
            run, [photo, scratches, faces, face_model, fidelity, upscale, scale], [result, status]
        )
    return page
