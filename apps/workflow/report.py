"""The batch report: an HTML contact sheet (before/after thumbnails, seconds per step,
failures with their reasons), written next to the results as report.html."""

from __future__ import annotations

import hashlib
import html
import io
import os
import time
from pathlib import Path

from .ledger import Row
from .presets import Preset

THUMB_PX = 256
REPORT = "report.html"

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px 10px;vertical-align:top;text-align:left}
img{max-width:256px;max-height:256px}.failed{background:#fff0f0}.err{color:#a00;max-width:30em}
.num{text-align:right;font-variant-numeric:tabular-nums}.prompt{max-width:20em;font-style:italic}"""


def thumb_name(item_id: str, which: str) -> str:
    return f"{hashlib.sha1(item_id.encode()).hexdigest()[:16]}-{which}.jpg"


def thumbnail(data: bytes, path: Path) -> bool:
    """A small JPEG of an image (best effort: a report without a thumbnail is still a report)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=85)
    except Exception:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return True


def _img(thumbs: Path, out: Path, item_id: str, which: str) -> str:
    p = thumbs / thumb_name(item_id, which)
    if not p.is_file():
        return "-"
    return f'<img src="{html.escape(p.relative_to(out).as_posix())}" alt="{which}" loading="lazy">'


def write(out: Path, preset: Preset, rows: list[Row], thumbs: Path) -> Path:
    steps = [s.name for s in preset.steps]
    done = [r for r in rows if r.status == "done"]
    failed = [r for r in rows if r.status == "failed"]
    left = len(rows) - len(done) - len(failed)
    means = {s: sum(r.steps.get(s, 0.0) for r in done) / len(done) if done else 0.0 for s in steps}
    head = "".join(f"<th>{html.escape(s)} (s)</th>" for s in steps)
    lines = []
    for r in rows:
        before = (
            f'<td class="prompt">{html.escape(str(r.fields.get("prompt", "")))} '
            f"(seed {html.escape(str(r.fields.get('seed', '')))})</td>"
            if not r.source
            else f"<td>{_img(thumbs, out, r.id, 'before')}</td>"
        )
        after = _img(thumbs, out, r.id, "after")
        if r.status == "done" and r.outputs:
            after = f'<a href="{html.escape(r.outputs[0])}">{after}</a>'
        times = "".join(
            f'<td class="num">{r.steps[s]:.2f}</td>' if s in r.steps else "<td>-</td>"
            for s in steps
        )
        err = f'<div class="err">{html.escape(r.error)}</div>' if r.error else ""
        lines.append(
            f'<tr class="{r.status}"><td>{html.escape(r.id)}<br><small>{r.status}</small>{err}</td>'
            f"{before}<td>{after}</td>{times}</tr>"
        )
    mean_cells = "".join(f'<td class="num">{means[s]:.2f}</td>' for s in steps)
    failures = "".join(
        f"<li><b>{html.escape(r.id)}</b>: {html.escape(r.error)}</li>" for r in failed
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(preset.name)} - batch report</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(preset.name)}</h1>
<p>{len(done)} done, {len(failed)} failed, {left} not done yet, of {len(rows)}. Written {time.strftime("%Y-%m-%d %H:%M:%S")}.</p>
{f"<h2>Failures</h2><ul>{failures}</ul>" if failures else ""}
<h2>Contact sheet</h2>
<table><tr><th>item</th><th>before</th><th>after</th>{head}</tr>
<tr><td colspan="3"><b>mean seconds per step</b></td>{mean_cells}</tr>
{"".join(lines)}
</table></body></html>
"""
    path = out / REPORT
    tmp = out / f".{REPORT}.tmp{os.getpid()}"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
