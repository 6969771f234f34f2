"""A labelled progress bar for one stream of Progress events (the env, or the downloads)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from ...events import Progress
from ...views import human_bytes


def progress_words(event: Progress) -> str:
    """`1.2 GB / 12.0 GB · 45.0 MB/s · 4 min left`, or `12 / 40 packages`."""
    if event.unit == "B":
        text = f"{human_bytes(event.done)} / {human_bytes(event.total) if event.total else '?'}"
        if event.rate:
            text += f" · {human_bytes(event.rate)}/s"
        eta = event.eta_s
        if eta is not None and event.done < event.total:
            text += f" · {eta / 60:.0f} min left" if eta >= 90 else f" · {eta:.0f} s left"
    else:
        text = f"{event.done} / {event.total or '?'} {event.unit}"
    return text


class TransferProgress(Vertical):
    """Title, a bar and the words under it; fed with Progress events."""

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(classes="transfer", **kwargs)
        self.title = title

    def compose(self) -> ComposeResult:
        yield Static(f"{self.title}: waiting", classes="transfer-label")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, classes="transfer-bar")

    def stage(self, text: str) -> None:
        self.query_one(".transfer-label", Static).update(f"{self.title}: {text}")

    def show(self, event: Progress) -> None:
        bar = self.query_one(ProgressBar)
        if event.total:
            bar.update(total=event.total, progress=min(event.done, event.total))
        what = event.stage if event.unit != "B" else "downloading"
        self.stage(f"{what} — {progress_words(event)}")

    def finish(self, text: str = "done") -> None:
        bar = self.query_one(ProgressBar)
        bar.update(total=bar.total or 1, progress=bar.total or 1)
        self.stage(text)
