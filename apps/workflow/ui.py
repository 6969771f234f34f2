"""The workflow runner's web page: pick a preset and a folder, run, watch the progress,
open the report. It queues the same `batch` task as POST /api/batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appkit.runtime import Runtime
from appkit.webui import run_job

from . import presets


def _sets(text: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for line in (text or "").splitlines():
        key, sep, raw = line.strip().partition("=")
        if sep and key.strip():
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def build(runtime: Runtime) -> Any:
    import gradio as gr

    from .app import BatchRequest

    task = runtime.tasks["batch"]
    names = presets.bundled()

    def start(
        preset: str,
        folder: str,
        out: str,
        settings: str,
        retry: bool,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        job = run_job(
            runtime,
            task,
            lambda: BatchRequest(
                preset=preset,
                input=(folder or "").strip(),
                out=(out or "").strip() or None,
                set=_sets(settings),
                retry_failed=bool(retry),
            ),
            progress,
            poll_s=0.5,
        )
        s = job.result
        results = [
            str(Path(s["out"]) / p.name)
            for p in sorted(Path(s["out"]).rglob("*"))
            if p.is_file()
            and p.suffix.lower() in (".png", ".jpg", ".webp")
            and ".workflow" not in p.parts
        ][:48]
        text = (
            f"**{s['done']} done, {s['failed']} failed** of {s['total']} "
            f"({s['processed']} this run, {s['rate']:.2f} images/s).  \n"
            f"Results: `{s['out']}`  \nReport: `{s['report']}`"
        )
        if s["failures"]:
            text += "\n\n" + "\n".join(f"- {i}: {e}" for i, e in s["failures"][:20])
        return results, text

    with gr.Blocks(title="Darkroom workflow runner") as page:
        gr.Markdown(
            "## Workflow runner\nRun a preset over a whole folder. A stopped batch continues "
            "where it left off when you run it again."
        )
        with gr.Row():
            with gr.Column():
                preset = gr.Dropdown(
                    names,
                    value=names[0] if names else None,
                    label="Preset",
                    allow_custom_value=True,
                    elem_id="preset",
                )
                folder = gr.Textbox(
                    label="Input folder", placeholder="/path/to/old/photos", elem_id="folder"
                )
                out = gr.Textbox(
                    label="Output folder (empty: in Darkroom's outputs)", elem_id="out"
                )
                settings = gr.Textbox(
                    label="Settings, one per line (e.g. upscale.scale=4)", lines=2
                )
                retry = gr.Checkbox(label="Try failed images again")
                button = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                gallery = gr.Gallery(label="Results", elem_id="gallery")
                status = gr.Markdown(elem_id="status")
        button.click(start, [preset, folder, out, settings, retry], [gallery, status])
    return page
