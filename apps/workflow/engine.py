"""Run a batch: items from the input, the ledger for what is done, an executor for the
rest (local, one at a time; or Ray workers), outputs written by the driver, and a report.

Events are plain dicts (JSON lines on the CLI): {"type": "stage"|"progress"|"item"|"message", ...}.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .client import Urls, check_ready
from .errors import WorkflowError
from .items import discover
from .ledger import Ledger, Row, write_atomic
from .pause import Presence
from .presets import Preset
from .steps import ItemResult, process

Emit = Callable[[dict[str, Any]], None]
STATE_DIR = ".workflow"


@dataclass
class BatchOptions:
    preset: Preset
    source: Path | None  # input folder (or prompts file); None: the preset's own prompts
    out: Path
    urls: Urls
    ray: str | None = None  # None: local; "local" (start one here), "auto", or a cluster address
    workers: int = 0  # Ray workers (0: one per CPU of the cluster)
    retry_failed: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    home: Path | None = None  # Darkroom's data folder: where a switch sees this batch (pause.py)
    keep_running: bool = False  # a switch is refused rather than pausing this batch


@dataclass
class Summary:
    preset: str
    out: str
    report: str
    total: int
    done: int
    failed: int
    skipped: int  # done before this run started
    processed: int  # finished (done or failed) in this run
    seconds: float
    rate: float  # items per second in this run
    workers: int
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ledger_path(out: Path) -> Path:
    return out / STATE_DIR / "batch.sqlite"


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One run per batch folder at a time (a second one would do the same items twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+b")  # noqa: SIM115 (held for the whole run)
    try:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows
            import msvcrt

            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        f.close()
        raise WorkflowError(
            f"Another run is already working on the batch in {path.parent.parent}.",
            "Wait for it to finish, or stop it first.",
        ) from None
    try:
        yield
    finally:
        f.close()


def _suffix(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"


def check_image(data: bytes) -> str:
    """'' if Pillow can read the image, else the reason (a bad file fails before any app call)."""
    try:
        from PIL import Image
    except ImportError:
        return ""
    import io

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception as exc:  # Pillow raises many kinds for broken files
        return f"the file is not an image that can be read ({type(exc).__name__}: {exc})."
    return ""


class Driver:
    """Owns the ledger and the out folder; executors hand it results."""

    def __init__(
        self,
        opts: BatchOptions,
        ledger: Ledger,
        emit: Emit,
        total: int,
        already: int,
        failed_before: int,
    ) -> None:
        self.opts, self.ledger, self.emit = opts, ledger, emit
        self.total, self.done, self.failed = total, already, failed_before
        self.processed = 0
        self.t0 = time.monotonic()
        self.failures: list[tuple[str, str]] = []

    def read_input(self, row: Row) -> tuple[bytes | None, str]:
        """(bytes, '') or (None, reason); prompts items have no input."""
        if not row.source:
            return None, ""
        assert self.opts.source is not None
        try:
            data = (self.opts.source / row.source).read_bytes()
        except OSError as exc:
            return None, f"input: the file cannot be read ({exc.strerror or exc})."
        reason = check_image(data)
        return (None, f"input: {reason}") if reason else (data, "")

    def start(self, row: Row) -> None:
        self.ledger.start(row.id)

    def record(self, row: Row, res: ItemResult) -> None:
        out = self.opts.out
        if res.cancelled:  # cut short by the person (a switch): not a failure, done again later
            self.ledger.requeue(row.id)
            self.emit(
                {
                    "type": "message",
                    "level": "info",
                    "text": f"{row.id}: {res.error} It goes back in the queue.",
                }
            )
            return
        if res.ok:
            assert res.output is not None
            rel = row.item().out_stem + _suffix(res.output)
            write_atomic(out / rel, res.output)
            self._thumbs(row, res.output)
            self.ledger.finish(row.id, [rel], res.steps)
            self.done += 1
        else:
            self.ledger.fail(row.id, res.error, res.steps)
            self.failed += 1
            self.failures.append((row.id, res.error))
            self.emit(
                {"type": "message", "level": "warning", "text": f"{row.id} failed: {res.error}"}
            )
        self.processed += 1
        self.emit(
            {
                "type": "item",
                "id": row.id,
                "status": "done" if res.ok else "failed",
                "error": res.error,
                "steps": res.steps,
                "worker": res.worker,
            }
        )
        self.progress(row.id)

    def progress(self, item: str = "") -> None:
        elapsed = time.monotonic() - self.t0
        rate = self.processed / elapsed if elapsed > 0 and self.processed else 0.0
        finished = self.done + self.failed
        eta = (self.total - finished) / rate if rate else None
        self.emit(
            {
                "type": "progress",
                "done": finished,
                "total": self.total,
                "ok": self.done,
                "failed": self.failed,
                "rate": round(rate, 4),
                "eta_s": round(eta, 1) if eta is not None else None,
                "item": item,
            }
        )

    def _thumbs(self, row: Row, output: bytes) -> None:
        folder = self.opts.out / STATE_DIR / "thumbs"
        if row.source and self.opts.source is not None:
            report.thumbnail(
                (self.opts.source / row.source).read_bytes(),
                folder / report.thumb_name(row.id, "before"),
            )
        report.thumbnail(output, folder / report.thumb_name(row.id, "after"))


def run_local(driver: Driver, rows: list[Row], presence: Presence | None = None) -> int:
    """One item at a time; between items, pause while a switch holds one of the apps."""
    opts = driver.opts
    todo = collections.deque(rows)
    while todo and not opts.stop.is_set():
        if presence is not None:
            presence.wait_while_held(opts.stop, opts.urls, driver.emit)
            if opts.stop.is_set():
                break
        row = todo.popleft()
        driver.start(row)
        if presence is not None:
            presence.update(item=row.id)
        data, reason = driver.read_input(row)
        if reason:
            res = ItemResult(item_id=row.id, error=reason)
        else:
            res = process(opts.preset, opts.urls, row.id, row.fields, data)
        driver.record(row, res)
        if res.cancelled:
            todo.appendleft(row)
        if presence is not None:
            presence.update(item="", done=driver.done + driver.failed)
    return 1


def run_batch(opts: BatchOptions, emit: Emit = lambda _e: None) -> Summary:
    """Process every item not yet done; safe to call again after any interruption."""
    out = opts.out.resolve()
    opts.out = out
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out / STATE_DIR / "lock"):
        items = discover(opts.preset, opts.source, exclude=out)
        ledger = Ledger(ledger_path(out))
        try:
            return _run(opts, ledger, items, emit)
        finally:
            ledger.close()


def _run(opts: BatchOptions, ledger: Ledger, items: list, emit: Emit) -> Summary:
    preset = opts.preset
    new_batch = ledger.bind(
        {
            "preset": preset.name,
            "preset_digest": preset.digest(),
            "input": str(opts.source or ""),
            "preset_json": preset.model_dump_json(),
        }
    )
    added = ledger.sync(items)
    interrupted = ledger.recover(opts.retry_failed)
    counts = ledger.counts()
    if not new_batch:
        emit(
            {
                "type": "stage",
                "stage": "resuming",
                "message": f"{counts.done} of {counts.total} already done"
                + (f", {added} new" if added else "")
                + (f", {interrupted} to redo" if interrupted else ""),
            }
        )
    rows = ledger.pending()
    start = time.monotonic()
    driver = Driver(opts, ledger, emit, counts.total, counts.done, counts.failed)
    workers = 1
    if rows:
        check_ready(opts.urls, preset.apps)
        emit(
            {
                "type": "stage",
                "stage": "running",
                "message": f"{preset.name}: {len(rows)} to do, {len(preset.steps)} step(s) each",
            }
        )
        driver.progress()
        if opts.ray:
            from . import rayexec

            workers = rayexec.run(driver, rows, opts.ray, opts.workers)
        else:
            presence = Presence(opts.home, preset.name, preset.apps, opts.keep_running)
            presence.update(done=counts.done + counts.failed, total=counts.total)
            try:
                workers = run_local(driver, rows, presence)
            finally:
                presence.close()
    seconds = time.monotonic() - start
    final = ledger.counts()
    rows_all = ledger.rows()
    report_path = report.write(opts.out, preset, rows_all, opts.out / STATE_DIR / "thumbs")
    failures = [(r.id, r.error) for r in rows_all if r.status == "failed"]
    summary = Summary(
        preset=preset.name,
        out=str(opts.out),
        report=str(report_path),
        total=final.total,
        done=final.done,
        failed=final.failed,
        skipped=counts.done,
        processed=driver.processed,
        seconds=round(seconds, 3),
        rate=round(driver.processed / seconds, 4) if seconds > 0 else 0.0,
        workers=workers,
        failures=failures,
    )
    emit({"type": "summary", **summary.to_dict()})
    return summary
