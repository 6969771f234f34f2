"""The generator's web page (Gradio): the same tasks the API runs (text to image, repaint,
control image), through the same job queue."""

from __future__ import annotations

from typing import Any

from appkit.errors import AppError
from appkit.runtime import Runtime
from appkit.webui import run_job

from .edit import ControlRequest, InpaintRequest
from .generate import GenerateRequest, model_info, task_of

# What the control tab's picture is: a photo (the app draws its Canny edges, or its depth map
# with Depth Anything V2 Small for FLUX.1 Depth), or a map made elsewhere.
PHOTO_KIND = "A photo (the app draws its edges or its depth map)"
MAP_KIND = "A ready map (edges: white on black; depth: near = white)"


def _png_b64(image: Any) -> str:
    import base64
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def mask_of(editor: dict[str, Any] | None) -> tuple[Any, Any]:
    """(picture, mask) from Gradio's ImageMask value: the strokes on its layers are the mask
    (white = repaint), whatever colour the brush had."""
    from PIL import Image, ImageChops

    if not editor or editor.get("background") is None:
        raise AppError("Upload a picture first, then paint over the part to repaint.")
    background = editor["background"].convert("RGB")
    mask = Image.new("L", background.size, 0)
    for layer in editor.get("layers") or []:
        if layer is not None:
            alpha = layer.convert("RGBA").getchannel("A").resize(background.size)
            mask = ImageChops.lighter(mask, alpha.point(lambda v: 255 if v > 0 else 0))
    return background, mask


def build(runtime: Runtime) -> Any:
    import gradio as gr

    by_task: dict[str, list[str]] = {}
    for key, choice in runtime.settings.models.models.items():
        by_task.setdefault(task_of(key, choice) or "generate", []).append(key)
    models = by_task.get("generate", [])
    default = runtime.settings.models.default_id
    if default not in models:
        default = models[0] if models else None
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

    def inpaint(
        editor: dict[str, Any] | None,
        prompt: str,
        model: str | None,
        left: float,
        top: float,
        right: float,
        bottom: float,
        steps: float,
        seed: float | None,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        try:
            picture, mask = mask_of(editor)
        except AppError as exc:
            raise gr.Error(exc.message) from None
        expand = [int(left), int(top), int(right), int(bottom)]
        job = run_job(
            runtime,
            runtime.tasks["inpaint"],
            lambda: InpaintRequest(
                prompt=prompt or "",
                image=_png_b64(picture),
                mask=_png_b64(mask) if mask.getextrema()[1] > 0 else None,
                expand=expand if any(expand) else None,
                model=model or None,
                steps=int(steps),
                seed=None if seed is None or seed < 0 else int(seed),
            ),
            progress,
        )
        paths = [str(runtime.settings.outputs / f) for f in job.result["files"]]
        return paths, f"Done: seed {', '.join(str(s) for s in job.result['seeds'])}."

    def control(
        picture: Any,
        kind: str,
        prompt: str,
        model: str | None,
        steps: float,
        seed: float | None,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        if picture is None:
            raise gr.Error("Upload a photo, an edge map or a depth map first.")
        job = run_job(
            runtime,
            runtime.tasks["control"],
            lambda: ControlRequest(
                prompt=prompt or "",
                control_image=_png_b64(picture),
                control="photo" if kind == PHOTO_KIND else "map",
                model=model or None,
                steps=int(steps),
                seed=None if seed is None or seed < 0 else int(seed),
            ),
            progress,
        )
        files = [*job.result["files"], job.result["control_map"]]
        paths = [str(runtime.settings.outputs / f) for f in files]
        return paths, f"Done: seed {', '.join(str(s) for s in job.result['seeds'])}."

    with gr.Blocks(title="Darkroom image generator") as page:
        gr.Markdown("## Image generator\nDescribe a picture; the model draws it on this computer.")
        fills, controls = by_task.get("inpaint", []), by_task.get("control", [])
        shown = [t for t, ms in (("text", models), ("inpaint", fills), ("control", controls)) if ms]
        with gr.Tabs(selected=shown[0] if shown else "text"):  # the first tab with a model
            with gr.Tab("Text to image", id="text", visible=bool(models)), gr.Row():
                with gr.Column():
                    prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt")
                    negative = gr.Textbox(
                        label="Negative prompt (what to avoid)",
                        lines=2,
                        elem_id="negative",
                        visible=bool(info and info.negative_prompt),
                    )
                    model = gr.Dropdown(
                        models, value=default, label="Model", visible=len(models) > 1
                    )
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
            with (
                gr.Tab("Repaint or extend (FLUX.1 Fill)", id="inpaint", visible=bool(fills)),
                gr.Row(),
            ):
                with gr.Column():
                    editor = gr.ImageMask(
                        label="Picture: paint over what should change",
                        type="pil",
                        elem_id="inpaint-editor",
                    )
                    f_prompt = gr.Textbox(
                        label="What to paint there", lines=2, elem_id="inpaint-prompt"
                    )
                    f_model = gr.Dropdown(
                        fills,
                        value=fills[0] if fills else None,
                        label="Model",
                        visible=len(fills) > 1,
                    )
                    with (
                        gr.Accordion("Extend the picture (outpainting), pixels", open=False),
                        gr.Row(),
                    ):
                        edges = [
                            gr.Slider(0, 512, value=0, step=16, label=side)
                            for side in ("Left", "Top", "Right", "Bottom")
                        ]
                    with gr.Row():
                        f_steps = gr.Slider(1, 100, value=50, step=1, label="Steps")
                        f_seed = gr.Number(-1, precision=0, label="Seed (-1: random)")
                    f_button = gr.Button("Repaint", variant="primary", elem_id="inpaint")
                with gr.Column():
                    f_gallery = gr.Gallery(label="Result", elem_id="inpaint-gallery", format="png")
                    f_status = gr.Markdown(elem_id="inpaint-status")
            f_button.click(
                inpaint,
                [editor, f_prompt, f_model, *edges, f_steps, f_seed],
                [f_gallery, f_status],
            )
            with (
                gr.Tab(
                    "Follow edges or depth (FLUX.1 Canny / Depth)",
                    id="control",
                    visible=bool(controls),
                ),
                gr.Row(),
            ):
                with gr.Column():
                    c_image = gr.Image(label="Control picture", type="pil", elem_id="control-image")
                    c_kind = gr.Radio(
                        [PHOTO_KIND, MAP_KIND],
                        value=PHOTO_KIND,
                        label="The picture is",
                        elem_id="control-kind",
                    )
                    c_prompt = gr.Textbox(label="Prompt", lines=2, elem_id="control-prompt")
                    c_model = gr.Dropdown(
                        controls,
                        value=controls[0] if controls else None,
                        label="Model",
                        visible=len(controls) > 1,
                    )
                    with gr.Row():
                        c_steps = gr.Slider(1, 100, value=30, step=1, label="Steps")
                        c_seed = gr.Number(-1, precision=0, label="Seed (-1: random)")
                    c_button = gr.Button("Generate", variant="primary", elem_id="control")
                with gr.Column():
                    c_gallery = gr.Gallery(
                        label="Result and the map it followed",
                        elem_id="control-gallery",
                        format="png",
                    )
                    c_status = gr.Markdown(elem_id="control-status")
            c_button.click(
                control,
                [c_image, c_kind, c_prompt, c_model, c_steps, c_seed],
                [c_gallery, c_status],
            )
    return page
