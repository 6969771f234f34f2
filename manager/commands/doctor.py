"""doctor and du."""

from __future__ import annotations

import argparse

from .. import config, doctor
from ._common import home, human_bytes, print_json
from .basics import machine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="find problems with this installation, each with a fix")
    p.add_argument("--fix", action="store_true", help="apply the safe fixes")
    p.add_argument("--deep", action="store_true", help="hash every model file (slow)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)
    p = sub.add_parser("du", help="disk used per app and model, and what sharing saves")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_du)


def cmd_doctor(args: argparse.Namespace) -> int:
    h = home()
    settings = config.load(h)
    findings = doctor.check(h, settings, machine(None), deep=args.deep)
    fixed = doctor.fix(findings) if args.fix else []
    if args.json:
        print_json(
            {
                "findings": [f.to_dict() for f in findings],
                "fixed": [{"topic": f.topic, "result": r} for f, r in fixed],
            }
        )
    else:
        for f in findings:
            mark = {"ok": "ok", "warning": "!", "error": "X"}[f.level]
            print(f"[{mark}] {f.text}" + (f"\n    fix: {f.fix}" if f.fix else ""))
        for f, result in fixed:
            print(f"{f.topic}: {result}")
    problems = [f for f in findings if f.level == "error"]
    still = len(problems) - sum(1 for f, r in fixed if r == "fixed" and f.level == "error")
    return 1 if still > 0 else 0


def cmd_du(args: argparse.Namespace) -> int:
    use = doctor.disk_use(home())
    if args.json:
        print_json(use.to_dict())
        return 0
    for app, parts in use.apps.items():
        print(
            f"{app:<14} env {human_bytes(parts['env']):>10}   models {human_bytes(parts['models']):>10}"
        )
    env_saved = max(0, use.envs_separate - use.envs_actual)
    model_saved = max(0, use.models_separate - use.models_actual)
    print(
        f"Environments: {human_bytes(use.envs_actual)} on disk; separately they would take "
        f"{human_bytes(use.envs_separate)}, so sharing files saves {human_bytes(env_saved)}."
    )
    print(
        f"Models:       {human_bytes(use.models_actual)} on disk; counted per app "
        f"{human_bytes(use.models_separate)}, so sharing files saves {human_bytes(model_saved)}."
    )
    if use.cache:
        print(
            f"uv's cache:   {human_bytes(use.cache)} more (packages kept to build the next environment fast)."
        )
    if use.models_unused:
        print(
            f"Unused:       {human_bytes(use.models_unused)} of model files no app uses "
            "(`darkroom models gc` frees them)."
        )
    print(f"In all {human_bytes(use.total)} on disk; sharing saves {human_bytes(use.saved)}.")
    return 0
