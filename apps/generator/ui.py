"""The generator's web page (Gradio): the same task the API runs, through the same job queue."""

from __future__ import annotations

from typing import Any

from appkit.errors import AppError
from appkit.runtime import Runtime
from appkit.webui import run_job

from .generate import GenerateRequest, model_info


def build(runtime: Runtime) -> Any:
    import gradio as gr

    models = list(runtime.settings.models.models)
    default = runtime.settings.models.default_id
    try:
        info = model_info(runtime, default) if default else None
    except AppError:
        info = None
    d = info.defaults if info else {"width": 1024, "height": 1024, "steps": 28, "guidance": 3.5}
    task = runtime.tasks["generate"]

    def generate(
        prompt: str,
        negative: str,
        model: str | None,
        width: float,
        height: float,
        steps: float,
        guidance: float,
        seed: float | None,
        count: float,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        job = run_job(
            runtime,
            task,
            lambda: GenerateRequest(
                prompt=prompt or "",
                negative_prompt=negative or "",
                model=model or None,
                width=int(width),
                height=int(height),
                steps=int(steps),
                guidance=float(guidance),
                seed=None if seed is None or seed < 0 else int(seed),
                count=int(count),
            ),
            progress,
        )
        paths = [str(runtime.settings.outputs / f) for f in job.result["files"]]
        seeds = ", ".join(str(s) for s in job.result["seeds"])
        return paths, f"Done: {len(paths)} image(s), seed {seeds}."

    with gr.Blocks(title="Darkroom image generator") as page:
        gr.Markdown("## Image generator\nDescribe a picture; the model draws it on this computer.")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
                negative = gr.Textbox(
                    label="Negative prompt (what to avoid)",
                    lines=2,
                    elem_id="negative",
                    visible=bool(info and info.negative_prompt),
                )
                model = gr.Dropdown(models, value=default, label="Model", visible=len(models) > 1)
                with gr.Row():
                    width = gr.Slider(64, 2048, value=d["width"], step=16, label="Width")
                    height = gr.Slider(64, 2048, value=d["height"], step=16, label="Height")
                with gr.Row():
                    steps = gr.Slider(1, 100, value=d["steps"], step=1, label="Steps")
                    guidance = gr.Slider(0, 30, value=d["guidance"], step=0.1, label="Guidance")
                with gr.Row():
                    seed = gr.Number(-1, precision=0, label="Seed (-1: random)")
                    count = gr.Slider(1, 8, value=1, step=1, label="Images")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                gallery = gr.Gallery(label="Results", elem_id="gallery", format="png")
                status = gr.Markdown(elem_id="status")
        button.click(
            generate,
            [prompt, negative, model, width, height, steps, guidance, seed, count],
            [gallery, status],
        )
    return page
