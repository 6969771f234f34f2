"""install, update, rollback, remove: the actions a person takes, each one command."""

from __future__ import annotations

import argparse
import sys

from .. import config, installer
from .. import state as state_mod
from ..errors import DarkroomError
from ._common import ConsoleReporter, app_arg, home, human_bytes, print_json
from .basics import machine, parse_choices, print_plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install an app: a bundled app id, a recipe file or a URL")
    p.add_argument("target", metavar="APP|RECIPE")
    _common_options(p)
    p.add_argument("--variant", action="append", default=[], metavar="[MODEL=]VARIANT")
    p.add_argument(
        "--models", metavar="M1,M2", help="which models to include (default: the app's defaults)"
    )
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if there is a GPU")
    p.add_argument("--hardware", metavar="PROFILE", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_install)

    p = sub.add_parser(
        "update", help="update an app (or --all); the old version comes back if the new fails"
    )
    p.add_argument("app", nargs="?", type=app_arg)
    p.add_argument("--all", action="store_true")
    _common_options(p)
    p.set_defaults(handler=cmd_update)

    p = sub.add_parser("rollback", help="go back to the version before the last update")
    p.add_argument("app", type=app_arg)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("remove", help="remove an app (models other apps use are kept)")
    p.add_argument("app", type=app_arg)
    p.add_argument("--keep-models", action="store_true", help="keep its model files in the store")
    p.add_argument(
        "--delete-data",
        action="store_true",
        help="delete its saved work too (ComfyUI's workflows, custom nodes, inputs); "
        "kept unless you say so",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask to confirm")
    p.set_defaults(handler=cmd_remove)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "-y", action="store_true", help="do not ask to confirm the plan")
    p.add_argument(
        "--accept-licences",
        action="store_true",
        help="accept the non-commercial or gated licences shown",
    )
    p.add_argument("--no-check", action="store_true", help="skip the check-start after installing")
    p.add_argument("--json", action="store_true", help="progress as JSON lines")


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def confirm(pv: installer.Preview, args: argparse.Namespace, h=None) -> None:
    """Show the plan, the manifest and the licences; get a yes for each, or stop."""
    if not args.json:
        if pv.manifest:
            print(pv.manifest.heading)
            for line in pv.manifest.lines():
                print(f"  {line}")
        print_plan(pv.plan)
        if h is not None:
            _already_here(h, pv)
    if pv.manifest and not (args.yes or _ask("Trust this recipe and install it?")):
        raise DarkroomError(
            "Nothing was installed: the recipe was not confirmed.",
            "Run again and answer yes, or add --yes.",
        )
    for lic in pv.licences:
        print(f"Licence: {lic.sentence()}")
    if pv.licences and not (args.accept_licences or _ask("Do you accept these licences?")):
        raise DarkroomError(
            "Nothing was installed: the licences above need your acceptance.",
            "Run again and answer yes, or add --accept-licences.",
        )
    if not pv.manifest and not pv.licences and not (args.yes or _ask("Install?")):
        raise DarkroomError("Nothing was installed.", "Run again and answer yes, or add --yes.")


def _already_here(h, pv: installer.Preview) -> None:
    """The plan counts every model file; say how much of that is in the store already (no network)."""
    from .. import weights

    files = [f for m in pv.plan.models for f in m.files]
    if not files:
        return
    dplan = weights.plan_download(h, files, remote=False)
    here = pv.plan.download_bytes - dplan.download_bytes
    if here > 0:
        print(
            f"  Of that, {human_bytes(here)} is here already: {human_bytes(dplan.download_bytes)} to download."
        )


def cmd_install(args: argparse.Namespace) -> int:
    h = home()
    settings = config.load(h)
    hw = machine(args.hardware)
    pv = installer.preview(
        h, settings, args.target, hw, parse_choices(args.variant, args.models, args.cpu)
    )
    if installer.up_to_date(h, pv):
        if args.json:
            print_json(
                {"installed": pv.recipe.id, "version": pv.recipe.version, "up_to_date": True}
            )
        else:
            print(
                f"{pv.recipe.name} is already installed and up to date (version {pv.recipe.version}); "
                f"nothing to do. Start it with `darkroom start {pv.recipe.id}`."
            )
        return 0
    confirm(pv, args, h)
    record = installer.install(
        h, settings, pv, ConsoleReporter(args.json), accepted=True, check_start=not args.no_check
    )
    if args.json:
        print_json({"installed": record.app, "version": record.version})
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    h = home()
    settings = config.load(h)
    if args.all:
        apps = sorted(state_mod.load(h).apps)
    elif args.app:
        apps = [args.app]
    else:
        raise DarkroomError(
            "Say which app to update, or --all.", "For example: darkroom update generator"
        )
    hw = machine(None)
    failed = 0
    for app in apps:
        pv = installer.update_preview(h, settings, app, hw)
        if installer.up_to_date(h, pv):
            if args.json:
                print_json({"app": app, "version": pv.recipe.version, "up_to_date": True})
            else:
                print(
                    f"{pv.recipe.name} is already up to date (version {pv.recipe.version}); nothing to download."
                )
            continue
        try:
            confirm(pv, args, h)
            installer.install(
                h,
                settings,
                pv,
                ConsoleReporter(args.json),
                accepted=True,
                check_start=not args.no_check,
            )
        except DarkroomError as exc:
            if len(apps) == 1:
                raise
            failed += 1
            print(f"darkroom: {app}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    h = home()
    installer.rollback(h, config.load(h), args.app, ConsoleReporter())
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    h = home()
    if not args.yes:
        _confirm_remove(h, args.app, args.keep_models)
    delete_data = args.delete_data or (not args.yes and _ask_delete_data(h, args.app))
    installer.remove(
        h,
        config.load(h),
        args.app,
        args.keep_models,
        ConsoleReporter(),
        keep_data=not delete_data,
    )
    return 0


def _ask_delete_data(h, app: str) -> bool:
    """The app's saved work is kept unless the person says otherwise: the question's default,
    no terminal and --yes all keep it (only --delete-data deletes without asking)."""
    from .. import appsource
    from ..fsutil import dir_size

    data = appsource.data_dir(h, app)
    names = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
    if not names:
        return False
    return _ask(
        f"Also delete your saved work ({', '.join(names)}: "
        f"{human_bytes(dir_size(data))} in {data})? No keeps it for a later install."
    )


def _confirm_remove(h, app: str, keep_models: bool) -> None:
    """Say what removing deletes (and that a running app stops), then ask; no terminal, no yes."""
    from .. import envs, suggest
    from ..fsutil import dir_size
    from ..supervisor import control

    installed = state_mod.load(h).apps.get(app)
    if installed is None and envs.info(h, app) is None:
        raise suggest.not_installed(h, app, "Nothing was changed.")
    env_dir = h.env_dir(app)
    size = dir_size(env_dir) if env_dir.exists() else 0
    run = control.app_status(h, app)
    print(f"Removing {app} deletes its environment ({human_bytes(size)}), its code and its logs.")
    if run is not None and run.active:
        print(f"{app} is running: it will be stopped first.")
    if installed is not None and installed.models and not keep_models:
        models = sum(f.size for m in installed.models for f in m.files)
        print(
            f"Its model files ({human_bytes(models)}) are deleted too unless another app uses them "
            "(add --keep-models to keep them)."
        )
    if not sys.stdin.isatty():
        raise DarkroomError(
            f"Nothing was removed: removing {app} needs a yes, and there is no terminal to ask.",
            f"Run `darkroom remove {app} --yes` to remove it.",
        )
    if not _ask(f"Remove {app}?"):
        raise DarkroomError(
            f"Nothing was removed: {app} is still installed.",
            f"Run `darkroom remove {app}` again and answer yes, or add --yes.",
        )
