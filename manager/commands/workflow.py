"""`darkroom run PRESET INPUT_FOLDER [--out DIR] [--ray auto|ADDRESS]`: a workflow preset over a
whole folder, resumable.

The work is `manager.batch.run` (it starts the apps, runs the engine and reports typed events);
this command turns the arguments into a request and prints the events and the summary.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from .. import batch
from ..errors import Cancelled
from ..events import Progress
from ._common import ConsoleReporter, home, print_json


class WorkflowReporter(ConsoleReporter):
    """The console reporter, with images per second on progress lines (counted as "images",
    not named after the image that just finished)."""

    @staticmethod
    def _progress_line(event: Progress) -> str:
        line = ConsoleReporter._progress_line(replace(event, item=""))
        if event.rate and event.unit != "B":
            line += f", {event.rate:.2f} {event.unit}/s"
        return line


def request_of(args: argparse.Namespace) -> batch.BatchRequest:
    return batch.BatchRequest(
        preset=args.preset,
        input=args.input,
        out=args.out,
        ray=args.ray,
        workers=args.workers,
        sets=tuple(args.set or ()),
        retry_failed=args.retry_failed,
        keep_running=args.keep_running,
    )


def cmd_run(args: argparse.Namespace) -> int:
    report = WorkflowReporter(as_json=args.json)
    try:
        summary = batch.run(home(), request_of(args), report)
    except Cancelled as exc:
        print(f"{exc.message} {exc.hint}")
        return 130
    if args.json:
        print_json(summary.data)
    else:
        print(
            f"{summary.preset}: {summary.done} done, {summary.failed} failed of {summary.total} "
            f"({summary.processed} this run in {summary.seconds:.1f} s, {summary.rate:.2f} images/s)."
        )
        for item, reason in summary.failures[:20]:
            print(f"  failed: {item}: {reason}")
        print(f"Results: {summary.out}\nReport:  {summary.report}")
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a workflow preset over a folder (resumable)",
        description="Run a workflow preset (old-photo, upscale-only, colorize-only, prompt-grid, "
        "or a preset .yaml file) over every image in a folder. Starts the apps it "
        "needs. Run the same command again to continue an interrupted batch. "
        "Exit status 1 if some images failed (see the report).",
    )
    p.add_argument("preset", help="a preset name or a path to a preset .yaml")
    p.add_argument(
        "input", metavar="INPUT_FOLDER", help="the folder of images (prompt-grid: with prompts.txt)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where results and report.html go (default: outputs/workflow/<preset>-<folder>)",
    )
    p.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run the images on a Ray cluster (auto: the running one, else a local one)",
    )
    p.add_argument("--workers", type=int, default=0, help="Ray workers (default: one per CPU)")
    p.add_argument(
        "--set", action="append", metavar="STEP.PARAM=VALUE", help="change a step's parameter"
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="try the images that failed before again"
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="refuse `darkroom start X --switch` instead of pausing the batch for it",
    )
    p.add_argument("--json", action="store_true", help="events and the summary as JSON")
    p.set_defaults(handler=cmd_run)
