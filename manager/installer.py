"""install / update / rollback / remove: the plan, the env builder and the weight store tied
into the actions a person uses, each safe to interrupt.

Every action writes a small journal in staging/ before it touches anything and deletes it
when state.json says the new truth. A journal found later means the action died half-way:
`recover` puts things back to what state.json says (the old app, or cleanly nothing), so a
kill -9 or a power cut leaves either the old state or the new, never half of one.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from . import appsource, bundled, envs, launching, library, suggest, uvtool, validate, weights
from . import state as state_mod
from .config import Settings
from .errors import Conflict, DarkroomError, DiskFull, NotFound
from .events import (
    Cancellable,
    CancelToken,
    Message,
    Reporter,
    Stage,
    checkpoint,
    ignore,
    on_cancel,
)
from .fsutil import (
    atomic_write_json,
    atomic_write_text,
    disk_full_error,
    is_disk_full,
    locked,
    read_json,
)
from .hardware import Hardware
from .home import Home
from .planner import ENV_DISK_GB, Choices, Plan, plan
from .recipe import (
    MAX_RECIPE_BYTES,
    Recipe,
    RecipeError,
    bundled_recipes,
    find_recipe,
    load_recipe,
    parse_recipe,
)
from .state import InstalledApp, InstalledModel
from .supervisor import control
from .weights_remote import endpoint_of
from .weights_store import RepoStore

SOURCE = "install"


# ---------------------------------------------------------------- what will happen


@dataclass
class Licence:
    model: str
    name: str
    licence: str
    url: str | None
    commercial: bool
    gated: bool

    def sentence(self) -> str:
        parts = []
        if not self.commercial:
            parts.append(f"licensed for non-commercial use only ({self.licence})")
        if self.gated:
            parts.append(
                "gated on Hugging Face: you must accept its terms on the model page and "
                "set a token (`darkroom config set hf_token ...`)"
            )
        return f"{self.name} is " + " and ".join(parts) + (f": {self.url}" if self.url else ".")


@dataclass
class Manifest:
    """What a recipe that is not bundled would do, shown before anything runs: every command,
    environment variable, package, package source, download and file it writes."""

    origin: str  # "bundled", or the file / URL the recipe came from
    source: str
    commands: list[list[str]]
    packages: list[str]
    downloads: list[str]
    ports: list[int]
    templates: list[str]
    env: dict[str, str] = field(default_factory=dict)
    backend_args: dict[str, list[str]] = field(default_factory=dict)
    package_sources: list[str] = field(default_factory=list)
    template_contents: dict[str, str] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)

    @property
    def heading(self) -> str:
        """A bundled recipe is Darkroom's own; only the code it fetches comes from elsewhere."""
        if self.origin == "bundled":
            return "Darkroom's recipe fetches this app's code from its authors. It will:"
        return "This recipe is not part of Darkroom. It will:"

    def lines(self) -> list[str]:
        origin = "Darkroom (a bundled recipe)" if self.origin == "bundled" else self.origin
        out = [f"Recipe from: {origin}", f"Code from:   {self.source}"]
        out += [f"Runs:        {' '.join(cmd)}" for cmd in self.commands]
        out += [f"  with env:  {key}={value}" for key, value in self.env.items()]
        out += [
            f"  on {backend}:{' ' * max(1, 6 - len(backend))}adds {' '.join(args)}"
            for backend, args in self.backend_args.items()
        ]
        if self.needs:
            out.append(f"Starts too:  {', '.join(self.needs)}")
        out.append(f"Installs:    {', '.join(self.packages) or 'nothing extra'}")
        out += [f"  from:      {src}" for src in self.package_sources]
        out += [f"Downloads:   {d}" for d in self.downloads] or ["Downloads:   no model files"]
        out.append(
            f"Listens on:  port {', '.join(map(str, self.ports))} (127.0.0.1 unless you share it)"
        )
        for dest in self.templates:
            out.append(f"Writes:      {dest}")
            out += [f"  | {line}" for line in self.template_contents.get(dest, "").splitlines()]
        return out


@dataclass
class Preview:
    recipe: Recipe
    plan: Plan
    origin: str  # "bundled", or the file / URL the recipe came from
    recipe_text: str | None
    manifest: Manifest | None
    licences: list[Licence]
    choices: Choices = field(default_factory=Choices)

    @property
    def bundled(self) -> bool:
        return self.origin == "bundled"


def read_target(target: str) -> tuple[Recipe, str, str | None]:
    """An app id (bundled), a recipe file, or an https URL -> (recipe, origin, text)."""
    if target.startswith(("https://", "http://")):
        try:
            resp = httpx.get(target, timeout=30, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise DarkroomError(
                f"The recipe at {target} could not be downloaded ({type(exc).__name__}).",
                "Check the address and your network, then try again.",
            ) from None
        if resp.status_code != 200:
            raise DarkroomError(
                f"The recipe at {target} could not be downloaded (HTTP {resp.status_code}).",
                "Check the address, then try again.",
            )
        data = resp.content[: MAX_RECIPE_BYTES + 1]
        recipe = parse_recipe(data, target)
        return recipe, target, data.decode("utf-8")
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or _exists(path):
        recipe = load_recipe(path)
        if recipe.id in bundled_recipes():
            raise DarkroomError(
                f"{path} uses the id '{recipe.id}' of a bundled app.",
                "Give the recipe another id, then try again.",
            )
        return recipe, str(path.resolve()), path.read_text("utf-8")
    return find_recipe(target), "bundled", None


def _exists(path: Path) -> bool:
    """Like Path.exists, but a name too long or otherwise unusable is simply not a file."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def manifest_of(
    recipe: Recipe,
    origin: str,
    p: Plan,
    settings: Settings | None = None,
    home: Home | None = None,
) -> Manifest:
    """What the recipe will do, in the words and paths it will use: with `home`, placeholders
    are shown filled ({models_dir} as the real folder), as the app will get them."""
    values = placeholder_values(home, settings or Settings(), recipe) if home else {}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    source = (
        f"git {recipe.source.git} at {recipe.source.revision}"
        if recipe.source.git
        else f"Darkroom's bundled {recipe.source.bundled}"
    )
    source += "".join(f"; git {e.git} at {e.commit[:12]} into {e.dest}" for e in recipe.extra_repos)
    host = (
        urlsplit(endpoint_of(settings.hf_endpoint if settings else None)).netloc or "huggingface.co"
    )
    downloads = [
        f"{f.repo}/{f.path} at {f.revision} from {host} ({f.size / 1e9:.2f} GB)"
        for m in p.models
        for f in m.files
    ]
    command = [*recipe.launch.command, *recipe.launch.backend_args.get(p.backend, [])]
    return Manifest(
        origin=origin,
        source=source,
        commands=[[fill(a) for a in command]],
        packages=[*p.packages, *p.torch_packages, *recipe.requirements],
        downloads=downloads,
        ports=[recipe.launch.port],
        templates=[t.dest for t in recipe.templates],
        env={k: fill(v) for k, v in recipe.launch.env.items()},
        backend_args={b: [fill(x) for x in a] for b, a in recipe.launch.backend_args.items()},
        package_sources=_package_sources(settings, p.torch_backend if p.torch_packages else None),
        template_contents={t.dest: fill(t.content) for t in recipe.templates},
        needs=list(recipe.needs),
    )


def _package_sources(settings: Settings | None, torch_backend: str | None) -> list[str]:
    """Where uv will fetch packages from, in words (the recipe itself cannot name an index)."""
    if settings is not None and uvtool.has_user_sources(settings):
        return (
            ([f"index {settings.index_url}"] if settings.index_url else [])
            + [f"extra index {u}" for u in settings.extra_index_urls]
            + [f"wheel folder {f}" for f in settings.find_links]
        )
    out = ["PyPI (pypi.org)"]
    if torch_backend and torch_backend != "mps":
        out.append(f"PyTorch's {torch_backend} index (download.pytorch.org), for torch packages")
    return out


def preview(
    home: Home, settings: Settings, target: str, hw: Hardware, choices: Choices | None = None
) -> Preview:
    """Everything to show the user before an install: plan, manifest, licences. No I/O beyond
    reading the recipe."""
    recipe, origin, text = read_target(target)
    choices = choices or Choices()
    p = plan(recipe, hw, choices)
    licences = [
        Licence(m.model, m.name, m.license, m.license_url, m.commercial, m.gated)
        for m in p.models
        if not m.commercial or m.gated
    ]
    # Code Darkroom does not ship (a git source, or a recipe from elsewhere) is shown first.
    manifest = (
        None
        if origin == "bundled" and recipe.bundled
        else manifest_of(recipe, origin, p, settings, home)
    )
    return Preview(recipe, p, origin, text, manifest, licences, choices)


# ---------------------------------------------------------------- journal


def _journal(home: Home, app: str) -> Path:
    return home.staging / f"journal-{app}.json"


def _app_lock(home: Home, app: str, timeout: float = 5.0):
    validate.app_id_or_fail(app)  # before the id becomes a lock file's name
    return locked(home.run / f"{app}.install.lock", timeout=timeout, what=f"installing {app}")


def recover(home: Home, report: Reporter = ignore) -> list[str]:
    """Finish or undo actions that died half-way; returns a line per app put right."""
    fixed = []
    for path in sorted(home.staging.glob("journal-*.json")):
        app = path.stem.removeprefix("journal-")
        if not validate.APP_ID_RE.fullmatch(app):
            continue  # not one of ours: never turned into a path
        try:
            with _app_lock(home, app, timeout=0.1):
                fixed.append(_recover_one(home, app, path, report))
        except Conflict:
            continue  # someone is working on it right now
    return [f for f in fixed if f]


def _recover_one(home: Home, app: str, path: Path, report: Reporter) -> str:
    journal = read_json(path, default={}) or {}
    installed = state_mod.load(home).apps.get(app)
    done = installed is not None and installed.updated_at >= journal.get("started", 0)
    line = ""
    if not done:
        with contextlib.suppress(DarkroomError):
            control.stop(home, app)
        if journal.get("action") == "install" and installed is None:
            with contextlib.suppress(DarkroomError, OSError):
                envs.remove(home, app)
            appsource.remove(home, app)
            line = f"An interrupted install of {app} was cleaned up; {app} is not installed."
        else:
            info = envs.info(home, app)
            if info and journal.get("env_hash") and info.spec_hash != journal["env_hash"]:
                with contextlib.suppress(DarkroomError, OSError):
                    envs.rollback(home, app)
            if journal.get("source_swapped"):
                appsource.rollback(home, app)
            line = f"An interrupted change to {app} was undone; the previous version is in place."
    appsource.clean_staging(home, app)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if line:
        report(Message(SOURCE, line, "warning"))
    return line


# ---------------------------------------------------------------- install and update


def env_spec(recipe: Recipe, p: Plan, source: appsource.AppSource) -> envs.EnvSpec:
    return envs.EnvSpec(
        app=recipe.id,
        python=recipe.python,
        packages=list(p.packages),
        local_packages=list(source.local_packages),
        requirement_files=list(source.requirement_files),
        torch_packages=list(p.torch_packages),
        torch_backend=p.torch_backend or "cpu",
        check_import=recipe.check_import,
    )


def _precheck_disk(home: Home, settings: Settings, pv: Preview, report: Reporter) -> list:
    files = [f for m in pv.plan.models for f in m.files]
    dplan = weights.plan_download(home, files, settings) if files else None
    need = dplan.needed_bytes if dplan else 0
    has_env = envs.info(home, pv.recipe.id) is not None
    warm = home.uv_cache.exists() and any(home.uv_cache.iterdir())
    env_gb = 0.0 if has_env else (0.5 if warm else ENV_DISK_GB.get(pv.plan.backend, 1.0))
    free = shutil.disk_usage(home.root).free
    if free < need + env_gb * 1e9:
        raise DiskFull(
            f"Not enough disk space to install {pv.recipe.name}: it needs about "
            f"{(need + env_gb * 1e9) / 1e9:.1f} GB and {free / 1e9:.1f} GB is free.",
            "Free some space (`darkroom models gc`, `darkroom cache prune`) or pick a smaller variant, "
            "then try again.",
        )
    report(Stage(SOURCE, "disk", f"{need / 1e9:.2f} GB to download, {free / 1e9:.1f} GB free"))
    return files


def _build_and_pull(
    home: Home, settings: Settings, spec: envs.EnvSpec, files: list, report: Reporter
) -> list[weights.LocalFile]:
    """Env and weights at once, one stream of progress; the first error wins, and a failed
    download (or a cancel, or Ctrl-C) stops the build at once instead of waiting for it."""
    errors: list[BaseException] = []
    stop_build = CancelToken()
    build_report = Cancellable(report, stop_build)

    def build() -> None:
        try:
            envs.build(home, settings, spec, build_report)
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=build, name=f"env-{spec.app}", daemon=True)
    local: list[weights.LocalFile] = []
    with on_cancel(report, stop_build.cancel):
        thread.start()
        try:
            if files:
                local = weights.pull(home, settings, files, report)
            thread.join()
        except BaseException:  # a failed pull, or Ctrl-C even while waiting for the build
            stop_build.cancel()
            thread.join()
            raise
    if errors:
        raise errors[0]
    return local


def placeholder_values(
    home: Home, settings: Settings, recipe: Recipe, app_dir: Path | None = None
) -> dict[str, str]:
    """What each placeholder becomes for this app: in templates at install, and in the
    manifest shown before it. {port} is the recipe's (a start may move it)."""
    if app_dir is None:
        app_dir = (
            home.app_dir(recipe.id)
            if recipe.source.git
            else bundled.apps_dir() / (recipe.source.bundled or "")
        )
    return {
        "port": str(recipe.launch.port),
        "host": settings.bind_host,
        "models_dir": str(home.models),
        "app_dir": str(app_dir),
        "outputs_dir": str(home.output_dir(recipe.id)),
        "env_python": str(envs.env_python(home, recipe.id)),
    }


def render_templates(
    home: Home, settings: Settings, recipe: Recipe, source: appsource.AppSource
) -> list[Path]:
    """Write the recipe's config files into the app folder, placeholders filled.

    {port} and {host} take the recipe's port and the bind address; the supervisor may move
    the port at start if it is taken, so templates should prefer command-line arguments.
    """
    values = placeholder_values(home, settings, recipe, source.app_dir)
    written: list[Path] = []
    if recipe.bundled:  # bundled apps take their settings from the environment, not files
        return written
    if recipe.templates:
        library.ensure(home)
    for template in recipe.templates:
        text = template.content
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        dest = source.app_dir / template.dest
        if not dest.resolve().is_relative_to(source.app_dir.resolve()):
            raise DarkroomError(
                f"The recipe of {recipe.name} writes outside its folder ({template.dest}).",
                "Fix the recipe's templates.",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest, text)
        written.append(dest)
    return written


def _check_start(home: Home, settings: Settings, installed: InstalledApp, report: Reporter) -> None:
    """Start the app, wait for its health check, stop it: 'installed' means it really runs."""
    spec = launching.launch_spec(home, settings, installed.app, installed)
    report(Stage(SOURCE, "checking", f"starting {installed.app} once to see that it answers"))
    try:
        control.start(home, settings, spec, report)
    finally:
        with contextlib.suppress(DarkroomError):
            control.stop(home, installed.app)


def _installed_record(
    pv: Preview, local: list[weights.LocalFile], revision: str | None, previous: InstalledApp | None
) -> InstalledApp:
    by_spec: dict[tuple, list] = {}
    for lf in local:
        by_spec.setdefault((lf.spec.repo, lf.spec.path, lf.spec.revision), []).append(
            lf.installed()
        )
    models = []
    for m in pv.plan.models:
        files = [
            f for spec in m.files for f in by_spec.get((spec.repo, spec.path, spec.revision), [])
        ]
        models.append(
            InstalledModel(
                model=m.model,
                variant=m.variant,
                precision=m.precision,
                offload=m.offload,
                files=files,
            )
        )
    now = time.time()
    return InstalledApp(
        app=pv.recipe.id,
        version=pv.recipe.version,
        recipe_source=pv.origin,
        recipe_text=pv.recipe_text,
        backend=pv.plan.backend,
        device=pv.plan.device,
        models=models,
        vram_gb=pv.plan.vram_gb,
        variants=dict(pv.choices.variants),
        chosen_models=list(pv.choices.models) if pv.choices.models else None,
        source_revision=revision,
        accepted_licences=[lic.model for lic in pv.licences],
        installed_at=previous.installed_at if previous else now,
        updated_at=now,
        previous=previous.model_copy(update={"previous": None}) if previous else None,
    )


def install(
    home: Home,
    settings: Settings,
    pv: Preview,
    report: Reporter = ignore,
    *,
    accepted: bool = False,
    check_start: bool = True,
) -> InstalledApp:
    """Install (or, when already installed, update) the app the preview describes.

    `accepted` means the user saw the plan, the manifest and the licences and said yes;
    without it nothing happens. On any failure the app is left as it was before.
    """
    if (pv.licences or pv.manifest) and not accepted:
        raise DarkroomError(
            f"Installing {pv.recipe.name} needs your consent first.",
            "Read the plan and licences, then confirm (in the CLI: --yes --accept-licences).",
        )
    home.ensure()
    recover(home, report)
    app = pv.recipe.id
    with _app_lock(home, app):
        previous = state_mod.load(home).apps.get(app)
        info = envs.info(home, app)
        action = "update" if previous else "install"
        journal = {
            "action": action,
            "app": app,
            "started": time.time(),
            "env_hash": info.spec_hash if info else None,
            "source_swapped": False,
        }
        # Nothing is touched yet: a full disk here ends in fsutil's sentence, state unchanged.
        atomic_write_json(_journal(home, app), journal)
        was_running = False
        try:
            files = _precheck_disk(home, settings, pv, report)
            source, staged = appsource.stage(home, pv.recipe, report)
            if staged is not None:
                source = appsource.swap_in(home, pv.recipe, staged)
                journal["source_swapped"] = True
                atomic_write_json(_journal(home, app), journal)
            spec = env_spec(pv.recipe, pv.plan, source)
            run = control.app_status(home, app)
            was_running = bool(run and run.active)
            local = _build_and_pull(home, settings, spec, files, report)
            record = _installed_record(pv, local, source.revision, previous)
            record.env_spec, record.env_hash = spec.to_dict(), spec.fingerprint()
            library.link(home, pv.recipe, record)
            render_templates(home, settings, pv.recipe, source)
            if was_running:
                control.stop(home, app)
            if check_start:
                _check_start(home, settings, record, report)
            checkpoint(report)  # the last moment a cancel undoes the install
            with state_mod.transaction(home) as st:
                st.apps[app] = record
            _journal(home, app).unlink()
        except BaseException as exc:
            _recover_one(home, app, _journal(home, app), ignore)
            error = disk_full_error(home.root) if is_disk_full(exc) else exc
            if isinstance(error, DarkroomError) and previous is not None:
                error.hint = (
                    error.hint + " " if error.hint else ""
                ) + f"The previous version of {app} was put back and still works."
            if was_running and previous is not None:
                with contextlib.suppress(DarkroomError):
                    control.start(
                        home, settings, launching.launch_spec(home, settings, app, previous), report
                    )
            if error is not exc:
                raise error from None
            raise
        if was_running:
            control.start(
                home, settings, launching.launch_spec(home, settings, app, record), report
            )
    verb = "updated" if previous else "installed"
    after = "It is running again." if was_running else f"Start it with `darkroom start {app}`."
    report(Message(SOURCE, f"{pv.recipe.name} is {verb}. {after}"))
    return record


def update_preview(home: Home, settings: Settings, app: str, hw: Hardware) -> Preview:
    """Re-plan an installed app with the choices it was installed with (recipe may be newer)."""
    installed = state_mod.load(home).apps.get(app)
    if installed is None:
        raise suggest.not_installed(home, app)
    choices = Choices(
        variants=dict(installed.variants),
        models=tuple(installed.chosen_models) if installed.chosen_models else None,
    )
    if installed.recipe_source == "bundled":
        pv = preview(home, settings, app, hw, choices)
    else:
        target = installed.recipe_source
        try:
            pv = preview(home, settings, target, hw, choices)
        except (RecipeError, DarkroomError):
            recipe = launching.recipe_of(home, installed, app)
            p = plan(recipe, hw, choices)
            pv = Preview(
                recipe,
                p,
                installed.recipe_source,
                installed.recipe_text,
                manifest_of(recipe, installed.recipe_source, p, settings, home),
                [],
                choices,
            )
    # Licences already accepted need no second yes.
    pv.licences = [lic for lic in pv.licences if lic.model not in installed.accepted_licences]
    return pv


def up_to_date(home: Home, pv: Preview) -> bool:
    """True when updating would change nothing: the same recipe and version, the same models and
    variants, the same environment, and every model file still in the store.

    (A git source that follows a branch is judged by its recipe alone: no network is asked.)
    """
    installed = state_mod.load(home).apps.get(pv.recipe.id)
    if (
        installed is None
        or installed.version != pv.recipe.version
        or installed.backend != pv.plan.backend
    ):
        return False
    if not pv.bundled and installed.recipe_text != pv.recipe_text:
        return False
    planned = sorted((m.model, m.variant, m.precision, m.offload) for m in pv.plan.models)
    if planned != sorted((m.model, m.variant, m.precision, m.offload) for m in installed.models):
        return False
    if envs.info(home, pv.recipe.id) is None or installed.env_hash is None:
        return False
    try:
        source = appsource.current(home, pv.recipe)
    except DarkroomError:
        return False
    if env_spec(pv.recipe, pv.plan, source).fingerprint() != installed.env_hash:
        return False
    return all(
        RepoStore(home.models, f.repo, f.repo_type).pointer(f.revision, f.path).exists()
        for m in installed.models
        for f in m.files
    )


def rollback(home: Home, settings: Settings, app: str, report: Reporter = ignore) -> InstalledApp:
    """Return to the version before the last update: env, code and recorded models."""
    recover(home, report)
    with _app_lock(home, app):
        installed = state_mod.load(home).apps.get(app)
        if installed is None:
            raise suggest.not_installed(home, app)
        if installed.previous is None:
            raise DarkroomError(
                f"There is no earlier version of {app} to go back to.",
                "Rollback works after an update.",
            )
        run = control.app_status(home, app)
        was_running = bool(run and run.active)
        if was_running:
            control.stop(home, app)
        _restore(home, settings, app, installed.previous, report)
        back = installed.previous.model_copy(
            update={
                "previous": installed.model_copy(update={"previous": None}),
                "updated_at": time.time(),
            }
        )
        with state_mod.transaction(home) as st:
            st.apps[app] = back
        if was_running:
            control.start(home, settings, launching.launch_spec(home, settings, app, back), report)
    report(Message(SOURCE, f"{app} is back to version {back.version}."))
    return back


def _restore(
    home: Home, settings: Settings, app: str, prev: InstalledApp, report: Reporter
) -> None:
    """Put back the code and env `prev` ran with: swapped back when kept, rebuilt otherwise."""
    if prev.source_revision:
        appsource.restore(home, launching.recipe_of(home, prev, app), prev.source_revision, report)
    kept = read_json(envs.previous_dir(home, app) / envs.META_FILE, default={}) or {}
    if prev.env_hash and kept.get("spec_hash") == prev.env_hash:
        envs.rollback(home, app, report)
    elif prev.env_spec:
        report(Stage(SOURCE, "rebuilding", f"the environment {app} had before"))
        envs.build(home, settings, envs.EnvSpec.from_dict(prev.env_spec), report, force=True)
    else:
        envs.rollback(home, app, report)


@dataclass
class Removed:
    app: str
    freed_bytes: int
    models_kept: bool
    data_kept: Path | None = None  # the app's user-data folder, when it was kept


def data_folder(home: Home, app: str) -> Path | None:
    """The app's user-data folder (saved workflows, custom nodes ...), if it has one: what a
    front end names when it asks whether `remove` should keep it."""
    folder = appsource.data_dir(home, app)
    return folder if folder.is_dir() else None


def remove(
    home: Home,
    settings: Settings,
    app: str,
    keep_models: bool = False,
    report: Reporter = ignore,
    *,
    keep_data: bool = True,
) -> Removed:
    """Remove env, code, logs, run file and state; models only when no other app uses them.

    The app's user data (appdata/<id>/) is kept unless `keep_data` is False: deleting a
    person's saved work is something a front end asks about first, never a default."""
    recover(home, report)
    with _app_lock(home, app):
        st = state_mod.load(home)
        if app not in st.apps and envs.info(home, app) is None:
            raise suggest.not_installed(home, app, "Nothing was changed.")
        with contextlib.suppress(DarkroomError):
            control.stop(home, app, report)
        report(Stage(SOURCE, "removing", app))
        with state_mod.transaction(home) as st:
            st.apps.pop(app, None)
            remaining = st.model_copy(deep=True)
        with contextlib.suppress(NotFound):
            envs.remove(home, app, report)
        data_kept = appsource.remove(home, app, keep_data=keep_data)
        shutil.rmtree(home.log_dir(app), ignore_errors=True)
        for leftover in home.run.glob(f"{app}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        freed = 0
        if not keep_models:
            result = weights.gc(home, remaining, dry_run=False)
            freed = result.freed_bytes
            library.unlink_unused(home, set())
    report(
        Message(
            SOURCE,
            f"{app} was removed"
            + (f"; {freed / 1e9:.2f} GB of model files freed." if freed else "."),
        )
    )
    if data_kept is not None:
        report(
            Message(
                SOURCE,
                f"Its saved work is kept in {data_kept}; installing {app} again uses it, "
                "or delete that folder if you no longer need it.",
            )
        )
    return Removed(app, freed, keep_models, data_kept)
