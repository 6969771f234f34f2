"""An app's code: the bundled apps/ package, or a pinned git revision cloned into apps/<id>.

Git sources are cloned into staging/, checked out at the pinned revision (with the extra
repositories the recipe pins), and only then renamed into place; the tree that was there
before stays as apps/.<id>.previous for rollback, the same way environments are kept.

The folders a recipe declares as user data (ComfyUI's user/, custom_nodes/ ...) live in
appdata/<id>/, outside the code, and every checkout gets links to them: an update, a
rollback or a failed install swaps code, never the user's work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import bundled, validate
from .errors import DarkroomError
from .events import Reporter, Stage, ignore
from .home import Home
from .recipe import Recipe

SOURCE = "source"
GIT_TIMEOUT_S = 600


@dataclass
class AppSource:
    """Where the app's code lies and what to install from it."""

    app_dir: Path  # the app's folder ({app_dir} in recipes)
    local_packages: list[Path]  # installed into the env, non-editable
    requirement_files: list[Path]
    revision: str | None = None  # the git commit, for git sources


def previous_dir(home: Home, app: str) -> Path:
    return home.app_previous(app)


def data_dir(home: Home, app: str) -> Path:
    """Where an app's declared user-data folders are kept, across versions."""
    return home.app_data(app)


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise DarkroomError(
            "Git is not installed, and this app is installed from a git repository.",
            "Install git (https://git-scm.com/downloads), then try again.",
        )
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        return subprocess.run(
            [git, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=env,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DarkroomError(
            "Git took too long to answer.", "Check your network, then try again."
        ) from None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def clone(url: str, revision: str, dest: Path, report: Reporter = ignore) -> str:
    """Clone `url` at `revision` (tag, branch or commit) into `dest`; returns the commit.

    Shallow where the server allows it; a full clone otherwise. Errors say whether the
    repository or the revision was the problem.
    """
    # The recipe schema checked both already; checked again here because nothing else may
    # turn a revision into a git option (`--upload-pack=...`) or a URL into a transport (ext::).
    try:
        validate.git_url(url)
        validate.revision(revision)
    except ValueError as exc:
        raise DarkroomError(
            f"The git source {validate.shown(url)} at {validate.shown(revision)} "
            f"cannot be used: it {exc}.",
            "Fix the recipe's source, then try again.",
        ) from None
    report(Stage(SOURCE, "cloning", f"{url} at {revision}"))
    dest.mkdir(parents=True)
    if _git(["init", "-q", "--", str(dest)]).returncode != 0:
        raise DarkroomError(
            f"Git could not create a folder at {dest}.", "Check the disk, then try again."
        )
    _git(["remote", "add", "--", "origin", url], cwd=dest)
    # Only the transports validate allows, whatever the user's git config says.
    protocols = [
        "-c",
        "protocol.allow=never",
        "-c",
        "protocol.https.allow=always",
        "-c",
        "protocol.ssh.allow=always",
        "-c",
        "protocol.file.allow=always",
    ]
    shallow = _git([*protocols, "fetch", "-q", "--depth", "1", "--", "origin", revision], cwd=dest)
    if shallow.returncode != 0:
        full = _git([*protocols, "fetch", "-q", "--tags", "--", "origin"], cwd=dest)
        if full.returncode != 0:
            raise DarkroomError(
                f"The git repository {url} could not be reached ({_last_line(full.stderr)}).",
                "Check the address and your network, then try again.",
            )
        target = revision
    else:
        target = "FETCH_HEAD"
    checkout = _git(["-c", "advice.detachedHead=false", "checkout", "-q", target, "--"], cwd=dest)
    if checkout.returncode != 0:
        raise DarkroomError(
            f"The git repository {url} has no revision '{revision}'.",
            "Check the tag or commit in the recipe, then try again.",
        )
    commit = _git(["rev-parse", "HEAD"], cwd=dest).stdout.strip()
    report(Stage(SOURCE, "cloned", f"{revision} = {commit[:12]}"))
    return commit


def stage(home: Home, recipe: Recipe, report: Reporter = ignore) -> tuple[AppSource, Path | None]:
    """Get the app's code ready. For git sources returns (source in staging, staged dir)."""
    if recipe.source.bundled is not None:
        apps = bundled.apps_dir()
        if not (apps / recipe.source.bundled).is_dir() and not (apps / "pyproject.toml").is_file():
            raise DarkroomError(
                f"The bundled code of {recipe.name} is missing from this Darkroom.",
                "Reinstall Darkroom with ./install.sh, then try again.",
            )
        return AppSource(
            app_dir=apps / recipe.source.bundled, local_packages=[apps], requirement_files=[]
        ), None
    assert recipe.source.git is not None and recipe.source.revision is not None
    staged = home.scratch("src", recipe.id)
    try:
        commit = clone(recipe.source.git, recipe.source.revision, staged, report)
        for extra in recipe.extra_repos:
            _clone_extra(extra.git, extra.commit, staged / extra.dest, recipe.name, report)
        source = _described(recipe, staged, commit)
        link_data(home, recipe, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return source, staged


def _clone_extra(url: str, commit: str, dest: Path, name: str, report: Reporter) -> None:
    """A pinned second repository inside the checkout; an empty placeholder folder is replaced."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    elif dest.exists():
        raise DarkroomError(
            f"{name}'s code already has {dest.name}, where the recipe puts the extra "
            f"repository {url}.",
            "Fix the recipe's extra_repos dest, then try again.",
        )
    got = clone(url, commit, dest, report)
    if got != commit:
        raise DarkroomError(
            f"The git repository {url} gave commit {got[:12]}, not the pinned {commit[:12]}.",
            "Check the recipe's extra_repos commit (a full 40-character hash), then try again.",
        )


def install_mode(recipe: Recipe, folder: Path) -> str:
    """How the checkout is installed: the recipe's word, else requirements when the app ships a
    requirements.txt (ComfyUI's and Forge's pyproject.toml are metadata, not packages), else
    the project itself when it has one, else only the recipe's packages."""
    if recipe.install:
        return recipe.install
    if recipe.requirements or (folder / "requirements.txt").is_file():
        return "requirements"
    if (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
        return "project"
    return "packages"


def _described(recipe: Recipe, folder: Path, commit: str | None) -> AppSource:
    mode = install_mode(recipe, folder)
    names = list(recipe.requirements)
    if mode == "requirements" and not names:
        names = ["requirements.txt"]
    elif mode == "packages":
        names = []
    reqs = [folder / r for r in names]
    for req in reqs:
        if not req.is_file():
            raise DarkroomError(
                f"{recipe.name} at this revision has no {req.relative_to(folder)}.",
                "The recipe names a requirements file the repository does not have; "
                "fix the recipe or pick another revision.",
            )
    has_project = (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()
    if mode == "project" and not has_project:
        raise DarkroomError(
            f"{recipe.name} at this revision is not a Python package (no pyproject.toml "
            "or setup.py), but its recipe says `install: project`.",
            "Set `install: requirements` or `install: packages` in the recipe.",
        )
    return AppSource(
        app_dir=folder,
        local_packages=[folder] if mode == "project" else [],
        requirement_files=reqs,
        revision=commit,
    )


# ---------------------------------------------------------------- user data


def link_data(home: Home, recipe: Recipe, folder: Path) -> None:
    """Point each declared data folder of the checkout at appdata/<id>/<folder>.

    What the checkout ships there (ComfyUI's example input, its models/ placeholders) is
    moved in only where the user has nothing of that name; the user's copy always wins. An
    install from before data folders existed has its data moved over the same way, and its
    folder becomes a link too, so the running (or rolled-back) version still sees it.
    """
    if not recipe.data or recipe.source.bundled is not None:
        return
    base = data_dir(home, recipe.id)
    installed = home.app_dir(recipe.id)
    for rel in recipe.data:
        keep = base / rel
        keep.mkdir(parents=True, exist_ok=True)
        for old in (installed / rel, previous_dir(home, recipe.id) / rel):
            if (
                old.is_dir()
                and not old.is_symlink()
                and folder.resolve() not in old.resolve().parents
            ):
                _merge_into(old, keep, keep_both=True)
                shutil.rmtree(old)
                _link_dir(keep, old)
        here = folder / rel
        if here.is_symlink() or here.is_file():
            here.unlink()
        elif here.is_dir():
            _merge_into(here, keep)
            shutil.rmtree(here)
        here.parent.mkdir(parents=True, exist_ok=True)
        _link_dir(keep, here)


def _merge_into(src: Path, dest: Path, keep_both: bool = False) -> None:
    """Move `src`'s entries into `dest` where `dest` has none of that name. A clash drops the
    checkout's default; with `keep_both` (the user's own files) it is kept beside, renamed."""
    for entry in src.iterdir():
        target = dest / entry.name
        if not target.exists() and not target.is_symlink():
            shutil.move(str(entry), str(target))
        elif (
            entry.is_dir()
            and not entry.is_symlink()
            and target.is_dir()
            and not target.is_symlink()
        ):
            _merge_into(entry, target, keep_both)
        elif keep_both:
            n = 1
            while (aside := dest / f"{entry.name}.before-update-{n}").exists():
                n += 1
            shutil.move(str(entry), str(aside))


def _link_dir(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link, target_is_directory=True)
    except OSError as exc:
        if os.name == "nt":  # symlinks need a privilege on Windows; a junction does not
            import _winapi

            _winapi.CreateJunction(str(target), str(link))
            return
        raise DarkroomError(
            f"Darkroom could not link {link} to the app's data in {target} "
            f"({exc.strerror or exc}).",
            "Check the data folder is writable, then try again.",
        ) from None


def swap_in(home: Home, recipe: Recipe, staged: Path | None) -> AppSource:
    """Move a staged git checkout into apps/<id>; the old one becomes .previous."""
    if staged is None:
        return stage(home, recipe)[0]
    final = home.app_dir(recipe.id)
    prev = previous_dir(home, recipe.id)
    home.apps.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(prev, ignore_errors=True)
        os.replace(final, prev)
    os.replace(staged, final)
    commit = _git(["rev-parse", "HEAD"], cwd=final).stdout.strip() or None
    return _described(recipe, final, commit)


def current(home: Home, recipe: Recipe) -> AppSource:
    """The app's code as it is installed now (for launching)."""
    if recipe.source.bundled is not None:
        return stage(home, recipe)[0]
    folder = home.app_dir(recipe.id)
    return _described(recipe, folder, None) if folder.is_dir() else AppSource(folder, [], [])


def revision_of(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None
    out = _git(["rev-parse", "HEAD"], cwd=folder)
    return out.stdout.strip() or None if out.returncode == 0 else None


def restore(home: Home, recipe: Recipe, commit: str, report: Reporter = ignore) -> AppSource:
    """Put revision `commit` of a git app in place: from .previous if it holds it, else cloned."""
    if revision_of(previous_dir(home, recipe.id)) == commit:
        rollback(home, recipe.id)
        return _described(recipe, home.app_dir(recipe.id), commit)
    pinned = recipe.model_copy(
        update={"source": recipe.source.model_copy(update={"revision": commit})}
    )
    _source, staged = stage(home, pinned, report)
    return swap_in(home, pinned, staged)


def rollback(home: Home, app: str) -> bool:
    """Put the previous git checkout back; False when there is none."""
    prev = previous_dir(home, app)
    if not prev.is_dir():
        return False
    final = home.app_dir(app)
    aside = home.scratch("src", app)
    if final.exists():
        os.replace(final, aside)
    os.replace(prev, final)
    if aside.exists():
        os.replace(aside, prev)
    return True


def remove(home: Home, app: str, keep_data: bool = True) -> Path | None:
    """Delete the app's code (links into its data are removed, never followed); its data
    folder too unless `keep_data`. Returns the data folder left in place, if any."""
    for folder in (home.app_dir(app), previous_dir(home, app)):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)
    data = data_dir(home, app)
    if not data.is_dir():
        return None
    if keep_data:
        return data
    shutil.rmtree(data)
    return None


def clean_staging(home: Home, app: str) -> None:
    for _app, leftover in home.scratch_left(("src",), app):
        shutil.rmtree(leftover, ignore_errors=True)
