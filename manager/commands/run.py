"""`darkroom start|stop|restart|status|logs|open APP`: running installed apps."""

from __future__ import annotations

import argparse
import sys

from .. import config as config_mod
from .. import hardware, launching, state, supervisor, switching, validate
from ..errors import DarkroomError, NotFound
from ..home import Home
from ..supervisor import LaunchSpec
from ..views import status_rows
from ._common import ConsoleReporter, app_arg, home, print_json


def launch_spec_for(home: Home, app: str) -> LaunchSpec:
    """The LaunchSpec of an installed app (state + recipe + store), as the installer records it."""
    return launching.launch_spec(home, config_mod.load(home), app)


# ---------------------------------------------------------------- handlers


def switch_choice(args: argparse.Namespace) -> None:
    """`--switch APP` reads the app as the flag's value (it takes an optional `now`): put it
    back where it belongs, so the flag works before and after the app's name alike."""
    if args.switch in (None, switching.WAIT, switching.NOW):
        if args.app is None:
            raise DarkroomError(
                "Name the app to start.", "For example: `darkroom start generator`."
            )
        return
    if args.app is not None:
        raise DarkroomError(
            f"--switch takes no value but `now` (got {args.switch!r}).",
            f"Use `darkroom start {args.app} --switch` or `--switch=now`.",
        )
    args.app, args.switch = validate.app_id_or_fail(args.switch), switching.WAIT


def cmd_start(args: argparse.Namespace) -> int:
    switch_choice(args)
    h = home()
    settings = config_mod.load(h)
    report = ConsoleReporter(as_json=args.json)
    hw = hardware.load_profile(args.hardware) if args.hardware else hardware.probe(h.root)
    try:
        info = switching.start(
            h,
            settings,
            hw,
            args.app,
            lambda a: launch_spec_for(h, a),
            switch=args.switch or False,
            report=report,
        )
    except KeyboardInterrupt:  # while a switch waits: withdraw the start, touch nothing else
        print(
            f"\nThe start of {args.app} was withdrawn; every other app keeps running as it was.",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"{args.app} is running at {info.url}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if not args.all and not args.app:
        raise DarkroomError(
            "Name the app to stop.",
            "For example: `darkroom stop generator`, or `darkroom stop --all`.",
        )
    h = home()
    apps = [i.app for i in supervisor.status(h)] if args.all else [args.app]
    for app in apps:
        was_running = supervisor.stop(h, app)
        if not was_running and not args.all and app not in state.load(h).apps:
            raise NotFound(
                f"There is no app called '{app}' to stop: it is neither running nor installed.",
                "`darkroom status` shows the running apps, `darkroom list` the installed ones.",
            )
        print(f"{app} stopped." if was_running else f"{app} was not running.")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    h = home()
    settings = config_mod.load(h)
    spec = launch_spec_for(h, args.app)
    info = supervisor.restart(h, settings, spec, ConsoleReporter())
    print(f"{args.app} is running at {info.url}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = status_rows(home(), args.app)
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    if not rows:
        print(f"{args.app} is not running." if args.app else "No apps are running.")
        return 0
    table = [("APP", "STATUS", "URL", "RESTARTS", "UP", "GPU MEMORY")]
    table += [(r.app, r.info.status, r.url, str(r.info.restarts), r.uptime, r.gpu) for r in rows]
    widths = [max(len(t[c]) for t in table) for c in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for r in rows:
        if r.note:
            print(f"\n{r.note}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    h = home()
    try:
        for line in supervisor.logs(h, args.app, follow=args.follow, lines=args.lines):
            print(line, flush=args.follow)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `darkroom logs x | head`
        sys.stderr.close()
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    import webbrowser

    opened: list[bool] = []
    url = supervisor.open_app(home(), args.app, lambda u: opened.append(bool(webbrowser.open(u))))
    if opened and opened[0]:
        print(f"Opened {url} in the web browser.")
    else:
        # No display (a server, SSH) or no browser set up: nothing opened, so say where the page is.
        print(
            f"No web browser could be started here. {args.app}'s page is at {url}: "
            "open that address in a browser on this computer (or forward the port, when connected by SSH)."
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("start", help="start an installed app (and the apps it needs)")
    p.add_argument("app", nargs="?", type=app_arg)
    p.add_argument(
        "--switch",
        nargs="?",
        const=switching.WAIT,
        metavar="now",
        help="free GPU memory first: other apps unload their models once their running "
        "job is done (queued meanwhile; Ctrl-C withdraws); --switch=now cancels "
        "that job instead",
    )
    p.add_argument("--hardware", metavar="PROFILE", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="progress and result as JSON")
    p.set_defaults(handler=cmd_start)

    p = sub.add_parser("stop", help="stop a running app, children included")
    p.add_argument("app", nargs="?", type=app_arg)
    p.add_argument("--all", action="store_true", help="stop every running app")
    p.set_defaults(handler=cmd_stop)

    p = sub.add_parser("restart", help="stop an app and start it again")
    p.add_argument("app", type=app_arg)
    p.set_defaults(handler=cmd_restart)

    p = sub.add_parser("status", help="which apps run, on which port, and how they are")
    p.add_argument("app", nargs="?", type=app_arg)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("logs", help="an app's log (-f to follow)")
    p.add_argument("app", type=app_arg)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-n", "--lines", type=int, default=100, help="how many lines to show first")
    p.set_defaults(handler=cmd_logs)

    p = sub.add_parser("open", help="open a running app's page in the web browser")
    p.add_argument("app", type=app_arg)
    p.set_defaults(handler=cmd_open)
