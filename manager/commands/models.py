"""darkroom models list|pull|verify|import|gc — the weight store from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import catalogue, config, library, planner, state, validate, weights
from ..errors import DarkroomError, NotFound
from ..recipe import ModelFile
from ..weights.store import sha256_file
from ._common import (
    ConsoleReporter,
    app_arg,
    app_or_recipe_arg,
    exists,
    home,
    human_bytes,
    print_json,
)
from .basics import machine, parse_choices


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the shared store of model weights")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    c = msub.add_parser("list", help="the files in the store and the apps that use them")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_list)

    c = msub.add_parser("pull", help="download the weights an app's plan needs")
    c.add_argument("app", type=app_or_recipe_arg, help="an app id, or a recipe file")
    c.add_argument("--variant", action="append", default=[], metavar="[MODEL=]VARIANT")
    c.add_argument("--models", metavar="M1,M2", help="which models (default: the app's defaults)")
    c.add_argument(
        "--hardware", metavar="PROFILE", help="plan for a hardware profile instead of this machine"
    )
    c.add_argument("--cpu", action="store_true", help="plan for the CPU even if there is a GPU")
    c.add_argument("--dry-run", action="store_true", help="only say what would be downloaded")
    c.add_argument("--json", action="store_true", help="events and the result as JSON")
    c.set_defaults(handler=cmd_pull)

    c = msub.add_parser("verify", help="check every byte of the weights installed apps use")
    c.add_argument(
        "apps",
        nargs="*",
        type=app_arg,
        help="only these apps (default: all installed, else the whole store)",
    )
    c.add_argument(
        "--fix",
        action="store_true",
        help="delete damaged files so the next pull fetches them again",
    )
    c.add_argument("--quick", action="store_true", help="only check the files are there")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_verify)

    c = msub.add_parser("import", help="adopt a weight file you already have (hash checked)")
    c.add_argument("path", type=Path)
    c.add_argument("--app", required=True, type=app_or_recipe_arg)
    c.add_argument("--model", required=True)
    c.add_argument(
        "--variant", help="the variant the file belongs to (default: the installed or first one)"
    )
    c.add_argument(
        "--file",
        dest="repo_path",
        metavar="REPO_PATH",
        help="which file of the variant this is, when the name does not say",
    )
    c.set_defaults(handler=cmd_import)

    c = msub.add_parser("gc", help="remove weights no installed app uses (shows what first)")
    c.add_argument("--yes", action="store_true", help="really delete them")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_gc)


# ---------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    h = home()
    entries = weights.list_store(h, state.load(h))
    if args.json:
        print_json([e.__dict__ for e in entries])
        return 0
    if not entries:
        print(f"The model store is empty ({h.models}).")
        return 0
    seen: set[str] = set()
    total = 0
    for e in entries:
        if e.blob not in seen:
            seen.add(e.blob)
            total += e.size
        used = ", ".join(e.apps) if e.apps else "unused"
        print(f"{e.repo}/{e.path}  {human_bytes(e.size)}  @{e.commit[:8]}  [{used}]")
    print(f"{len(entries)} file(s), {human_bytes(total)} on disk in {h.models}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    h = home()
    settings = config.load(h)
    recipe = catalogue.app_or_file(home(), args.app)
    installed = state.load(h).apps.get(recipe.id)
    if installed is not None and not (args.variant or args.models or args.hardware or args.cpu):
        # An installed app: exactly the files it uses (this repairs damaged or missing ones).
        files = weights.specs_of([f for m in installed.models for f in m.files])
    else:
        hw = machine(getattr(args, "hardware", None))
        choices = parse_choices(args.variant, args.models, args.cpu)
        files = planner.plan(recipe, hw, choices).files
    if not files:
        print(f"{recipe.name} needs no model files.")
        return 0
    if args.dry_run:
        plan = weights.plan_download(h, files, settings)
        rows = [
            {
                "repo": f.remote.spec.repo,
                "path": f.remote.path,
                "size": f.remote.size,
                "present": f.present,
                "partial_bytes": f.partial_bytes,
            }
            for f in plan.files
        ]
        if args.json:
            print_json(
                {
                    "files": rows,
                    "download_bytes": plan.download_bytes,
                    "free_bytes": plan.free_bytes,
                }
            )
            return 0
        for r in rows:
            print(
                f"{'have' if r['present'] else 'get '}  {r['repo']}/{r['path']}  {human_bytes(r['size'])}"
            )
        print(
            f"To download: {human_bytes(plan.download_bytes)}; free: {human_bytes(plan.free_bytes)}"
        )
        return 0
    local = weights.pull(h, settings, files, ConsoleReporter(as_json=args.json))
    if installed is not None and not (args.variant or args.models or args.hardware or args.cpu):
        library.link(h, recipe, installed)
    else:
        library.link_local(h, recipe, local)
    if args.json:
        print_json(
            [
                {
                    "repo": f.spec.repo,
                    "path": f.path,
                    "commit": f.commit,
                    "local_path": str(f.local_path),
                    "sha256": f.sha256,
                    "size": f.size,
                }
                for f in local
            ]
        )
        return 0
    size = sum(f.size for f in local)
    print(f"{recipe.name}: {len(local)} model file(s), {human_bytes(size)}, ready in {h.models}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    h = home()
    st = state.load(h)
    names = args.apps or sorted(st.apps)
    unknown = [a for a in names if a not in st.apps]
    if unknown:
        raise NotFound(
            f"{', '.join(unknown)} is not installed.", "`darkroom list` shows the installed apps."
        )
    specs = weights.verify_targets(h, st, names)
    problems = weights.verify(h, specs, full=not args.quick, remove_bad=args.fix)
    if args.json:
        print_json(
            [
                {"repo": p.repo, "path": p.path, "kind": p.kind, "message": p.message}
                for p in problems
            ]
        )
        return 1 if problems else 0
    for p in problems:
        print(f"{p.kind}: {p.message}")
    if problems:
        # pull checks every stored file's hash itself, so no --fix is needed before it.
        app = names[0] if len(names) == 1 else "<app>"
        hint = "They were deleted; " if args.fix else ""
        print(f"{len(problems)} problem(s). {hint}`darkroom models pull {app}` fetches them again.")
        return 1
    print(f"All {len(specs)} file(s) are present{'' if args.quick else ' and intact'}.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    h = home()
    recipe = catalogue.app_or_file(home(), args.app)
    model = recipe.model(args.model)
    installed = state.load(h).apps.get(recipe.id)
    variant_id = args.variant
    if variant_id is None and installed:
        variant_id = next((m.variant for m in installed.models if m.model == model.id), None)
    variant = model.variant(variant_id) if variant_id else model.variants[0]
    candidates = [*variant.files, *model.common_files]
    src = args.path.expanduser()
    if not exists(src, "file"):
        raise NotFound(
            f"There is no file at {validate.shown(src, 200)}.",
            "Give the path of the weight file to import.",
        )
    sha = sha256_file(src)
    spec, repo_path = _pick_spec(candidates, src, sha, args.repo_path, model.id, variant.id)
    local = weights.import_file(h, src, spec, config.load(h), repo_path=repo_path, sha256=sha)
    library.link_local(h, recipe, [local], {model.id: variant.id})
    print(
        f"Imported {src.name} as {spec.repo}/{local.path} ({human_bytes(local.size)}); "
        f"it will not be downloaded again."
    )
    return 0


def _pick_spec(
    candidates: list[ModelFile],
    src: Path,
    sha: str,
    repo_path: str | None,
    model: str,
    variant: str,
) -> tuple[ModelFile, str | None]:
    from ..weights.store import match_pattern

    if repo_path:
        for c in candidates:
            if c.path == repo_path or (c.is_pattern and match_pattern(c.path, [repo_path])):
                return c, repo_path
        raise DarkroomError(
            f"{model} ({variant}) has no file '{repo_path}'.",
            "Files of this variant: " + ", ".join(c.path for c in candidates) + ".",
        )
    for c in candidates:
        if c.sha256 == sha:
            return c, None
    by_name = [c for c in candidates if not c.is_pattern and Path(c.path).name == src.name]
    if len(by_name) == 1:
        return by_name[0], None
    raise DarkroomError(
        f"Darkroom cannot tell which file of {model} ({variant}) {src.name} is.",
        "Name it with --file <path in the repo>; files of this variant: "
        + ", ".join(c.path for c in candidates)
        + ".",
    )


def cmd_gc(args: argparse.Namespace) -> int:
    h = home()
    result = weights.gc(h, state.load(h), dry_run=not args.yes)
    if result.deleted:
        library.unlink_unused(h)  # a library link must not outlive its file in the store
    if args.json:
        print_json(
            {
                "deleted": result.deleted,
                "freed_bytes": result.freed_bytes,
                "items": [i.__dict__ for i in result.items],
            }
        )
        return 0
    if not result.items:
        print("Nothing to remove: every file in the store is used by an installed app.")
        return 0
    for i in result.items:
        what = "partial download" if i.partial else ", ".join(i.paths) or i.name
        print(f"{i.repo}: {what}  {human_bytes(i.size)}")
    if result.deleted:
        print(f"Removed {len(result.items)} file(s), freed {human_bytes(result.freed_bytes)}.")
    else:
        print(
            f"{len(result.items)} file(s), {human_bytes(result.freed_bytes)} can be freed. "
            "Run `darkroom models gc --yes` to remove them."
        )
    return 0
