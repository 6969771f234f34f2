"""probe, list, plan, recipe check, config: the commands that read and never install."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import catalogue, config, hardware, planner, validate
from ..errors import DarkroomError
from ..recipe import RecipeError
from ..views import app_rows, parse_choices, plan_summary
from ._common import app_arg, home, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="show this machine's GPUs, memory and disk")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser("list", help="the apps you can install, and which are installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("plan", help="what installing an app would do on this (or another) machine")
    p.add_argument("app", type=app_arg)
    p.add_argument(
        "--hardware", metavar="PROFILE", help="a profile name (e.g. rtx3060-12gb) or a JSON file"
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="[MODEL=]VARIANT",
        help="choose a variant, for one model (flux-dev=gguf-q8) or all (gguf-q8)",
    )
    p.add_argument(
        "--models", metavar="M1,M2", help="which models to include (default: the app's defaults)"
    )
    p.add_argument("--cpu", action="store_true", help="plan for the CPU even if there is a GPU")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("recipe", help="work with recipe files")
    rsub = p.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)
    c = rsub.add_parser("check", help="validate recipe files")
    c.add_argument("files", nargs="+", type=Path)
    c.set_defaults(handler=cmd_recipe_check)

    p = sub.add_parser("config", help="show or change settings")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("show", help="all settings (the token is masked)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_config_show)
    c = csub.add_parser(
        "set", help="change one setting (mirror: wheel folders and indexes, all in one)"
    )
    c.add_argument("key")
    c.add_argument("value")
    c.set_defaults(handler=cmd_config_set)


def machine(profile: str | None) -> hardware.Hardware:
    """The hardware to plan for: a named profile, or a probe of this machine."""
    if profile:
        return hardware.load_profile(profile)
    return hardware.probe(home().root)


def cmd_probe(args: argparse.Namespace) -> int:
    hw = hardware.probe(home().root)
    if args.json:
        print_json(hw.model_dump())
        return 0
    print(f"System:  {hw.os} {hw.arch}{' (Apple silicon)' if hw.apple_silicon else ''}")
    print(f"Memory:  {hw.ram_total_gb:g} GB ({hw.ram_free_gb:g} GB free)")
    print(f"Disk:    {hw.disk_free_gb:g} GB free for Darkroom's data folder")
    if not hw.gpus:
        print("GPU:     none — no NVIDIA GPU found; apps will run on the CPU (slowly)")
    for g in hw.gpus:
        extra = ", ".join(
            x
            for x in (
                f"driver {g.driver}" if g.driver else "",
                f"CUDA {g.cuda_version}" if g.cuda_version else "",
                f"compute {g.compute_capability}" if g.compute_capability else "",
            )
            if x
        )
        print(
            f"GPU {g.index}:   {g.name}, {g.vram_total_gb:g} GB ({g.vram_free_gb:g} GB free)"
            + (f"; {extra}" if extra else "")
        )
    for note in hw.notes:
        print(f"Note:    {note}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "app": r.app,
            "name": r.name,
            "description": r.description,
            "installed": r.installed,
            "version": r.version,
        }
        for r in app_rows(home(), running=False)
    ]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        mark = "installed" if row["installed"] else "not installed"
        print(f"{row['app']:<12} {row['name']:<18} {mark:<14} {row['description']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    recipe = catalogue.bundled_recipe(args.app)
    hw = machine(args.hardware)
    plan = planner.plan(recipe, hw, parse_choices(args.variant, args.models, args.cpu))
    if args.json:
        print_json(plan.to_dict())
        return 0
    print_plan(plan)
    return 0


def print_plan(plan: planner.Plan) -> None:
    """The plan in the words the TUI's Install screen shows (views.plan_summary)."""
    summary = plan_summary(plan)
    print(f"{summary.title} on {summary.hardware}")
    for line in summary.lines:
        print(f"  {line}")
    print("Why:")
    for reason in summary.reasons:
        print(f"  - {reason}")
    for warning in summary.warnings:
        print(f"warning: {warning}")


def cmd_recipe_check(args: argparse.Namespace) -> int:
    bad = 0
    start = time.perf_counter()
    for path in args.files:
        try:
            recipe = catalogue.recipe_file(path)
        except RecipeError as exc:
            bad += 1
            for problem in exc.problems:
                print(problem)
            continue
        print(f"{path}: ok ({recipe.id}, {len(recipe.models)} models)")
    if len(args.files) > 1:
        print(
            f"{len(args.files) - bad} of {len(args.files)} recipes are valid "
            f"({time.perf_counter() - start:.2f} s)."
        )
    return 1 if bad else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    h = home()
    view = config.public_view(config.load(h))
    if args.json:
        print_json({"data_folder": str(h.root), **view})
        return 0
    print(f"data_folder: {h.root}")
    for key, value in view.items():
        print(f"{key}: {value if value not in (None, []) else '-'}")
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    h = home()
    updated = config.set_value(h, args.key, args.value)
    shown = "(hidden)" if args.key in config.SECRET_KEYS else validate.clean_text(args.value)
    print(
        f"{args.key} set to {shown}."
        if args.value or args.key != config.MIRROR
        else "mirror cleared."
    )
    if args.key == config.MIRROR:
        print(config.mirror_note(updated))
    return 0


__all__ = ["register", "machine", "parse_choices", "print_plan", "DarkroomError"]
