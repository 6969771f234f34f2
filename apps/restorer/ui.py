"""The restorer's web page (Gradio): the same `restore` task, through the same job queue.

The page lays out the chain (chain.py) in its order - defects, global restoration, texture,
faces, colour - each step with its switch and its model; "auto" leaves the model to the
restorer (what is installed and fits)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from appkit.runtime import Runtime
from appkit.webui import run_job

from . import chain, colourfix
from .restore import RestoreRequest

GLOBAL = {"auto (when installed)": None, "on": True, "off": False}
# BOPBTL's two settings; auto takes the scratch one when the photo has scratches and it is installed
GLOBAL_SETTING = {
    "auto (with scratches when the photo has them)": "auto",
    **{label: setting for setting, label in chain.GLOBAL_LABELS.items()},
}
COLOUR_FIX_HELP = (
    "Diffusion shifts colours; this puts the cleaned photo's colours back. wavelet (best): "
    "colour from the photo, fine detail from the model. adain: overall colour balance only. "
    "none: as the model made it."
)


def build(runtime: Runtime) -> Any:
    import gradio as gr

    task = runtime.tasks["restore"]

    def run(
        path: str | None,
        scratches: bool,
        global_restore: str,
        global_setting: str,
        upscale: bool,
        texture: str,
        prompt: str,
        colour_fix: str,
        positive_prompt: str,
        negative_prompt: str,
        scale: str,
        faces: bool,
        face_model: str,
        fidelity: float,
        colour: bool,
        colour_strength: float,
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
                global_restore=GLOBAL.get(global_restore),
                global_setting=GLOBAL_SETTING.get(global_setting, "auto"),
                upscale=upscale,
                texture=None if texture in ("", "auto") else texture,
                prompt=prompt or "",
                colour_fix=colour_fix or "wavelet",
                positive_prompt=positive_prompt or None,
                negative_prompt=negative_prompt or None,
                scale=int(scale),
                faces=faces,
                face_model=face_model or None,
                fidelity=float(fidelity),
                colour=colour,
                colour_strength=float(colour_strength),
            ),
            progress,
        )
        return str(
            runtime.settings.outputs / job.result["files"][0]
        ), f"Done: {', '.join(job.result['steps'])}."

    with gr.Blocks(title="Darkroom photo restorer") as page:
        gr.Markdown(
            "## Photo restorer\nScratches filled, grain and fading removed, the photo enlarged, "
            "faces restored, colour added - step by step, on this computer."
        )
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Photo", elem_id="photo")
                with gr.Group():
                    gr.Markdown("**1. Defects**")
                    scratches = gr.Checkbox(True, label="Fill scratches and dust")
                with gr.Group():
                    gr.Markdown("**2. Grain, fading and blur** (Bringing Old Photos Back to Life)")
                    global_restore = gr.Radio(
                        list(GLOBAL), value="auto (when installed)", label="Global restoration"
                    )
                    global_setting = gr.Radio(
                        list(GLOBAL_SETTING),
                        value=next(iter(GLOBAL_SETTING)),
                        label="Setting",
                        elem_id="global-setting",
                    )
                with gr.Group():
                    gr.Markdown("**3. Upscale and texture**")
                    upscale = gr.Checkbox(True, label="Upscale")
                    texture = gr.Dropdown(
                        ["auto", *chain.TEXTURE], value="auto", label="Texture step"
                    )
                    prompt = gr.Textbox(
                        label="What the photo shows (DiffBIR / SUPIR, optional)",
                        placeholder="an old family portrait, two people outdoors",
                        max_lines=1,
                    )
                    colour_fix = gr.Radio(
                        list(colourfix.KINDS),
                        value="wavelet",
                        label="Colour fix (DiffBIR / SUPIR)",
                        info=COLOUR_FIX_HELP,
                    )
                    with gr.Accordion("Quality prompts (DiffBIR / SUPIR)", open=False):
                        positive_prompt = gr.Textbox(
                            label="Positive quality prompt",
                            placeholder="empty: the model's own (SUPIR: the paper's)",
                            lines=2,
                        )
                        negative_prompt = gr.Textbox(
                            label="Negative prompt",
                            placeholder="empty: the model's own (SUPIR: the paper's)",
                            lines=2,
                        )
                    scale = gr.Radio(["2", "4"], value="4", label="Scale")
                with gr.Group():
                    gr.Markdown("**4. Faces**")
                    faces = gr.Checkbox(True, label="Restore faces")
                    face_model = gr.Dropdown(
                        ["auto", *chain.FACE_NAMES], value="auto", label="Face model"
                    )
                    fidelity = gr.Slider(0, 1, value=0.5, step=0.05, label="CodeFormer fidelity")
                with gr.Group():
                    gr.Markdown("**5. Colour** (DDColor, when installed for the restorer)")
                    colour = gr.Checkbox(False, label="Colourise")
                    colour_strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Colour strength")
                button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column():
                result = gr.Image(type="filepath", label="Result", elem_id="result", format="png")
                status = gr.Markdown(elem_id="status")
        button.click(
            run,
            [
                photo,
                scratches,
                global_restore,
                global_setting,
                upscale,
                texture,
                prompt,
                colour_fix,
                positive_prompt,
                negative_prompt,
                scale,
                faces,
                face_model,
                fidelity,
                colour,
                colour_strength,
            ],
            [result, status],
        )
    return page
