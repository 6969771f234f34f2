"""`python -m workflow.cli`: the batch engine as a command (what `darkroom run` drives).

    run PRESET INPUT --out DIR [--url app=URL ...] [--ray auto|local|ADDRESS] [--workers N]
        [--set step.param=value ...] [--retry-failed] [--keep-running] [--json]
    needs PRESET [INPUT] [--ray ADDRESS]
                        the apps the preset calls, as JSON; with INPUT, first checks that it
                        holds work, and with --ray that the cluster answers (both in seconds,
                        before `darkroom run` starts any app)
    presets             the bundled presets, as JSON

With --json every event is one JSON line on stdout; an error is {"type": "error", "message",
"hint"} and exit status 2. Without --url the apps are found through DARKROOM_HOME's run files.
SIGINT/SIGTERM: the item in flight finishes, then it stops (a rerun continues).
A switch to another app (`darkroom start X --switch`) that needs an app of the batch pauses it
after the item in flight; it goes on when that app is back (pause.py). --keep-running makes
such a switch refuse instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from . import client, engine, items, presets
from .errors import WorkflowError


def _sets(values: list[str]) -> dict[str, Any]:
    out = {}
    for v in values:
        key, sep, raw = v.partition("=")
        if not sep or not key:
            raise WorkflowError(f"'{v}' is not name=value.", "For example: --set upscale.scale=2")
        out[key] = yaml.safe_load(raw) if raw else ""
    return out


def _home(arg: str | None) -> Path:
    value = arg or os.environ.get("DARKROOM_HOME")
    if not value:
        raise WorkflowError(
            "Darkroom's data folder is not known, so the apps cannot be found.",
            "Set DARKROOM_HOME, or give each app's address with --url app=URL.",
        )
    return Path(value)


def default_out(home: Path, preset: str, source: Path | None) -> Path:
    """The same command gives the same folder, so running it again resumes the batch."""
    name = source.resolve().name if source is not None else "prompts"
    return home / "outputs" / "workflow" / f"{preset}-{name}"


def cmd_run(args: argparse.Namespace, emit) -> int:
    preset = presets.load_preset(args.preset)
    if args.set:
        preset = preset.with_overrides(_sets(args.set))
    source = Path(args.input).expanduser() if args.input else None
    urls = client.parse_url_args(args.url or [])
    missing = [a for a in preset.apps if a not in urls]
    if missing:
        urls.update(client.from_run_files(_home(args.home), missing))
    out = (
        Path(args.out).expanduser()
        if args.out
        else default_out(_home(args.home), preset.name, source)
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    home = args.home or os.environ.get("DARKROOM_HOME")
    opts = engine.BatchOptions(
        preset=preset,
        source=source,
        out=out,
        urls=urls,
        ray=args.ray,
        workers=args.workers,
        retry_failed=args.retry_failed,
        stop=stop,
        home=Path(home) if home else None,
        keep_running=args.keep_running,
    )
    summary = engine.run_batch(opts, emit)
    return 130 if stop.is_set() and summary.done + summary.failed < summary.total else 0


def cmd_needs(args: argparse.Namespace) -> int:
    """The apps to start; the checks that would otherwise fail only after they started."""
    preset = presets.load_preset(args.preset)
    count = None
    if args.input:
        count = len(items.discover(preset, Path(args.input).expanduser()))
    if args.ray:
        from . import rayexec

        rayexec.check_reachable(args.ray)
    print(
        json.dumps(
            {"preset": preset.name, "apps": preset.apps, "input": preset.input, "items": count}
        )
    )
    return 0


def _fail(args: argparse.Namespace, message: str, hint: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"type": "error", "message": message, "hint": hint}), flush=True)
    else:
        print(f"error: {message}\n{hint}".rstrip(), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workflow.cli")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("preset")
    r.add_argument("input", nargs="?")
    r.add_argument("--out")
    r.add_argument("--home")
    r.add_argument("--url", action="append", metavar="APP=URL")
    r.add_argument("--ray", metavar="auto|local|ADDRESS")
    r.add_argument("--workers", type=int, default=0)
    r.add_argument("--set", action="append", metavar="STEP.PARAM=VALUE")
    r.add_argument("--retry-failed", action="store_true")
    r.add_argument(
        "--keep-running",
        action="store_true",
        help="refuse a switch to another app instead of pausing between items",
    )
    r.add_argument("--json", action="store_true")
    n = sub.add_parser("needs")
    n.add_argument("preset")
    n.add_argument("input", nargs="?")
    n.add_argument("--ray", metavar="auto|local|ADDRESS")
    n.add_argument("--json", action="store_true")
    sub.add_parser("presets").add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    def emit(event: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(event, default=str), flush=True)
        elif event["type"] == "progress":
            eta = f", {event['eta_s']:.0f} s left" if event.get("eta_s") is not None else ""
            print(
                f"  {event['done']}/{event['total']} ({event['failed']} failed), "
                f"{event['rate']:.2f}/s{eta}",
                file=sys.stderr,
                flush=True,
            )
        elif event["type"] in ("stage", "message"):
            print(event.get("message") or event.get("text"), file=sys.stderr, flush=True)
        elif event["type"] == "error":
            print(
                f"error: {event['message']}\n{event.get('hint', '')}".rstrip(),
                file=sys.stderr,
                flush=True,
            )
        elif event["type"] == "summary":
            print(
                f"{event['done']} done, {event['failed']} failed of {event['total']}; report: {event['report']}",
                flush=True,
            )

    try:
        if args.cmd == "run":
            return cmd_run(args, emit)
        if args.cmd == "needs":
            return cmd_needs(args)
        print(json.dumps({"presets": presets.bundled()}))
        return 0
    except WorkflowError as exc:
        return _fail(args, exc.message, exc.hint)
    except Exception as exc:  # a bug or a library's surprise: still a sentence; details on stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return _fail(
            args,
            f"The workflow runner failed unexpectedly ({type(exc).__name__}: {first}).",
            "Run the same command again to continue (finished images are kept); if it fails "
            "again, report it with the workflow runner's log.",
        )


if __name__ == "__main__":
    sys.exit(main())
