"""`darkroom env build|update|verify|repair|rollback|remove|list APP` and `darkroom cache prune`.

An installed app's env is rebuilt from the spec the installer recorded; an app not yet
installed gets the spec the installer would use (the planner's torch backend for this
machine, the app's code from its source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import appsource, catalogue, config, envs, hardware, installer, planner, state
from ..events import ignore
from ..home import Home
from ._common import ConsoleReporter, app_arg, home, human_bytes, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="build and look after each app's Python environment")
    esub = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    def action(name: str, text: str, handler, recipe: bool = False) -> argparse.ArgumentParser:
        c = esub.add_parser(name, help=text)
        c.add_argument("app", type=app_arg)
        c.add_argument("--json", action="store_true", help="JSON lines: events, then the result")
        if recipe:
            c.add_argument(
                "--recipe",
                type=Path,
                metavar="FILE",
                help="a recipe file instead of the bundled one",
            )
            c.add_argument(
                "--cpu", action="store_true", help="install the CPU build of torch even with a GPU"
            )
        c.set_defaults(handler=handler)
        return c

    action(
        "build",
        "build the app's environment (kept as it is when already up to date)",
        cmd_build,
        recipe=True,
    ).add_argument("--force", action="store_true", help="rebuild even if up to date")
    action(
        "update",
        "rebuild with the newest allowed packages; the old env is kept for rollback",
        cmd_update,
        recipe=True,
    )
    action("verify", "compare the environment with its lock and try importing the app", cmd_verify)
    action(
        "repair",
        "reinstall what differs from the lock (or rebuild a broken env)",
        cmd_repair,
        recipe=True,
    )
    action("rollback", "go back to the environment before the last update", cmd_rollback)
    action("remove", "delete the app's environment (the shared cache stays)", cmd_remove)
    c = esub.add_parser("list", help="apps that have an environment")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)

    p = sub.add_parser("cache", help="the shared package cache")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    c = csub.add_parser("prune", help="drop cached packages no environment can need again")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_cache_prune)


# ---------------------------------------------------------------- recipe -> spec


def _spec(h: Home, args: argparse.Namespace) -> envs.EnvSpec:
    """The spec the installer recorded for an installed app; else one planned the same way."""
    recipe = (
        catalogue.recipe_file(args.recipe, args.app)
        if args.recipe is not None
        else catalogue.app_recipe(h, args.app)
    )
    installed = state.load(h).apps.get(recipe.id)
    if installed is not None and installed.env_spec and args.recipe is None and not args.cpu:
        return envs.EnvSpec.from_dict(installed.env_spec)
    plan = planner.plan(
        recipe,
        hardware.probe(h.root),
        planner.Choices(models=(), backend="cpu" if args.cpu else None),
    )
    return installer.env_spec(recipe, plan, appsource.current(h, recipe))


# ---------------------------------------------------------------- output


def _reporter(args: argparse.Namespace) -> ConsoleReporter:
    return ConsoleReporter(as_json=args.json)


def _result(args: argparse.Namespace, data: dict) -> None:
    if args.json:
        print(json.dumps({"type": "Result", **data}, default=str), flush=True)


def _show_info(args: argparse.Namespace, info: envs.EnvInfo, verb: str) -> int:
    _result(args, info.to_dict())
    if not args.json:
        what = "already up to date" if info.reused else verb
        print(
            f"{info.app}: environment {what} — Python {info.python_version}, "
            f"{len(info.packages)} packages, torch {info.torch_backend}, files {info.link_mode}ed "
            f"from the shared cache."
        )
        print(f"  {info.path}")
    return 0


# ---------------------------------------------------------------- handlers


def cmd_build(args: argparse.Namespace) -> int:
    h = home()
    info = envs.build(h, config.load(h), _spec(h, args), _reporter(args), force=args.force)
    return _show_info(args, info, "built")


def cmd_update(args: argparse.Namespace) -> int:
    h = home()
    info = envs.build(h, config.load(h), _spec(h, args), _reporter(args), force=True)
    return _show_info(args, info, "updated (the previous one is kept for `darkroom env rollback`)")


def cmd_repair(args: argparse.Namespace) -> int:
    h = home()
    spec = None if envs.recorded_spec(h, args.app) else _spec(h, args)
    info = envs.repair(h, config.load(h), args.app, _reporter(args), spec=spec)
    return _show_info(args, info, "repaired")


def cmd_rollback(args: argparse.Namespace) -> int:
    info = envs.rollback(home(), args.app, _reporter(args))
    return _show_info(args, info, "rolled back")


def cmd_remove(args: argparse.Namespace) -> int:
    envs.remove(home(), args.app, _reporter(args))
    _result(args, {"app": args.app, "removed": True})
    if not args.json:
        print(f"{args.app}: environment removed.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    result = envs.verify(home(), args.app)
    if args.json:
        print_json(result.to_dict())
    elif result.ok:
        print(f"{args.app}: the environment matches its lock and imports.")
    else:
        print(f"{args.app}: the environment has drifted or is broken:", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        print(f"Run `darkroom env repair {args.app}` to fix it.", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    h = home()
    rows = [info.to_dict() for app in envs.list_envs(h) if (info := envs.info(h, app))]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("No app has an environment yet.")
    for row in rows:
        print(
            f"{row['app']:<16} Python {row['python_version']:<8} {len(row['packages']):>4} packages  "
            f"torch {row['torch_backend']}"
        )
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    h = home()
    result = envs.prune_cache(h, config.load(h), ignore if args.json else ConsoleReporter())
    if args.json:
        print_json(result.to_dict())
    else:
        print(
            f"Freed {human_bytes(result.freed_bytes)}; the cache now holds {human_bytes(result.after_bytes)}."
        )
    return 0
