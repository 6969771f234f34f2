"""Argument parsing; each command calls one core function and prints its result.

Commands live in manager/commands/<area>.py, each with `register(subparsers)`; this file
finds them, so areas grow without touching one another. No command lets a traceback
reach the user: a DarkroomError prints its sentence and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys

from . import __version__, commands, suggest
from .errors import DarkroomError
from .validate import clean_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darkroom",
        description="Install, run and switch between local AI image apps. "
        "Run with no command to open the full-screen interface.",
    )
    parser.add_argument("--version", action="version", version=f"darkroom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    if not args_given:
        # The full-screen interface first: building the parser imports every command module,
        # which would cost the TUI its first paint.
        try:
            from .tui.app import run_tui
        except ImportError:
            pass
        else:
            try:
                return run_tui()
            except DarkroomError as exc:
                print(f"darkroom: {exc.message}", file=sys.stderr)
                if exc.hint:
                    print(exc.hint, file=sys.stderr)
                return exc.exit_code
    parser = build_parser()
    if (wrong := suggest.unknown_verb(parser, args_given)) is not None:
        print(f"darkroom: {wrong.message}\n{wrong.hint}", file=sys.stderr)
        return wrong.exit_code
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    try:
        if handler is None:
            return _open_tui(parser)
        return int(handler(args) or 0)
    except DarkroomError as exc:
        if getattr(args, "json", False):  # the error as the last JSON event, for scripts and faces
            from .events import Error

            print(json.dumps(Error.of(exc).to_dict()), flush=True)
        # Messages quote names people typed or recipes gave: no escape sequences reach the terminal.
        print(f"darkroom: {clean_text(exc.message, keep_newlines=True)}", file=sys.stderr)
        if exc.hint:
            print(clean_text(exc.hint, keep_newlines=True), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from pathlib import Path

        from .fsutil import disk_full_error, is_disk_full

        if not is_disk_full(exc):
            raise
        # The net under every command: a write that met a full disk still ends in a sentence.
        where = Path(exc.filename).parent if isinstance(exc.filename, str) else "the data folder"
        err = disk_full_error(where, unchanged=False)
        print(f"darkroom: {err.message}", file=sys.stderr)
        print(err.hint, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "darkroom: stopped. Nothing half-done was kept; run the same command again to finish.",
            file=sys.stderr,
        )
        return 130


def _open_tui(parser: argparse.ArgumentParser) -> int:
    try:
        from .tui.app import run_tui
    except ImportError:
        parser.print_help()
        return 0
    return run_tui()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
