"""App environments: one isolated uv environment per app, staged, checked, swapped in.

A build never touches the app's working environment until its replacement is proven:
uv builds a relocatable venv under staging/, the app's module is imported with the new
Python, the installed set is frozen into a lock, and only then is the folder renamed
into envs/<app> (an atomic exchange where the OS has one). The env that was there
before is kept as envs/.<app>.previous for `rollback`. A kill -9 at any moment leaves
the old env in place; whatever a dead build left behind is cleaned by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import uvtool, validate
from .config import Settings
from .errors import Conflict, DarkroomError, DiskFull, NotFound
from .events import Message, Reporter, Stage, ignore
from .fsutil import atomic_write_json, atomic_write_text, dir_size, locked, read_json
from .home import Home

SOURCE = uvtool.SOURCE
META_FILE = "darkroom-env.json"
LOCK_FILE = "darkroom-lock.txt"
_APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_CHECK_TIMEOUT_S = 600


@dataclass
class EnvSpec:
    """What to put in one app's env; pure data, made by the planner/installer (or the CLI)."""

    app: str
    python: str = "3.11"
    packages: list[str] = field(default_factory=list)
    local_packages: list[Path] = field(default_factory=list)
    requirement_files: list[Path] = field(default_factory=list)
    torch_packages: list[str] = field(default_factory=list)
    torch_backend: str = "cpu"
    check_import: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["local_packages"] = [str(p) for p in self.local_packages]
        data["requirement_files"] = [str(p) for p in self.requirement_files]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["local_packages"] = [Path(p) for p in known.get("local_packages", [])]
        known["requirement_files"] = [Path(p) for p in known.get("requirement_files", [])]
        return cls(**known)

    def fingerprint(self) -> str:
        """Changes when anything that goes into the env changes, local sources included."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        for folder in self.local_packages:
            digest.update(_tree_digest(folder).encode())
        for req in self.requirement_files:
            with contextlib.suppress(OSError):
                digest.update(req.read_bytes())
        return digest.hexdigest()[:16]


@dataclass
class EnvInfo:
    """A built env as recorded in its folder."""

    app: str
    path: Path
    python: Path
    python_version: str
    spec_hash: str
    torch_backend: str
    link_mode: str
    built_at: float
    packages: dict[str, str]
    reused: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"], data["python"] = str(self.path), str(self.python)
        return data


@dataclass
class VerifyResult:
    """How a live env differs from its lock; `ok` only when nothing does."""

    app: str
    ok: bool
    python_ok: bool
    import_ok: bool | None = None
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # name, recorded, found
    extra: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PruneResult:
    before_bytes: int
    after_bytes: int
    leftovers_removed: int

    @property
    def freed_bytes(self) -> int:
        return max(0, self.before_bytes - self.after_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes}


# ---------------------------------------------------------------- paths


def _check_app(app: str) -> None:
    if not _APP_RE.match(app):
        raise NotFound(
            f"'{app}' is not a valid app name.", "App names are lowercase letters, digits and '-'."
        )


def env_dir(home: Home, app: str) -> Path:
    return home.env_dir(app)


def previous_dir(home: Home, app: str) -> Path:
    return home.env_previous(app)


def _python_in(folder: Path) -> Path:
    return folder / "Scripts" / "python.exe" if os.name == "nt" else folder / "bin" / "python"


def env_python(home: Home, app: str) -> Path:
    """The Python of an app's env, as the supervisor launches it."""
    return _python_in(home.env_dir(app))


def _leftovers(home: Home, app: str | None = None) -> Iterator[tuple[str, Path]]:
    """(app, path) of every staged build or trash a process left in staging/."""
    return home.scratch_left(("env", "trash", "swap"), app)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _discard(home: Home, app: str, path: Path) -> None:
    """Move out of the way atomically (so no one sees half a tree), then delete."""
    if not path.exists():
        return
    trash = home.scratch("trash", app)
    os.rename(path, trash)
    _rmtree(trash)


@contextlib.contextmanager
def _app_lock(home: Home, app: str) -> Iterator[None]:
    """One builder per app at a time; an OS lock, so kill -9 releases it."""
    with locked(home.env_lock(app), timeout=30, what=f"the environment of {app}"):
        yield


def _recover(home: Home, app: str, report: Reporter) -> None:
    """Undo what a killed run left: half builds, trash, a swap cut in the middle."""
    for _app, path in _leftovers(home, app):
        _rmtree(path)
    live, prev = env_dir(home, app), previous_dir(home, app)
    if not live.exists() and prev.exists() and (prev / META_FILE).exists():
        os.rename(prev, live)
        report(Message(SOURCE, f"Restored the environment of {app} after an interrupted update."))


# ---------------------------------------------------------------- atomic swaps


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _swap_in(home: Home, app: str, staged: Path, keep_previous: bool) -> None:
    """Put `staged` at envs/<app>; the old env becomes .previous (or is discarded)."""
    live, prev = env_dir(home, app), previous_dir(home, app)
    home.envs.mkdir(parents=True, exist_ok=True)
    if not live.exists():
        os.rename(staged, live)
        return
    if keep_previous:
        _discard(home, app, prev)
    if _exchange(staged, live):
        # staged now holds the old env; a kill here loses only the rollback copy.
        if keep_previous:
            os.rename(staged, prev)
        else:
            _discard(home, app, staged)
        return
    if keep_previous:
        os.rename(live, prev)  # a kill between these two renames is undone by _recover
    else:
        hold = home.scratch("trash", app)
        os.rename(live, hold)
    os.rename(staged, live)
    if not keep_previous:
        _rmtree(hold)


# ---------------------------------------------------------------- building


def _tree_digest(folder: Path) -> str:
    """Cheap fingerprint of a local source tree: names, sizes and times of its files."""
    if not folder.is_dir():
        raise DarkroomError(
            f"The local package folder {folder} does not exist.",
            "Reinstall Darkroom, or fix the app's source folder.",
        )
    parts = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in ("__pycache__", ".git", "build", "dist") and not d.endswith(".egg-info")
        )
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            st = os.stat(os.path.join(root, name))
            parts.append(
                f"{os.path.relpath(os.path.join(root, name), folder)}:{st.st_size}:{st.st_mtime_ns}"
            )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }


_CHECK_CODE = (
    "import importlib, json, platform, sys\n"
    "mod = sys.argv[1] if len(sys.argv) > 1 else ''\n"
    "mod and importlib.import_module(mod)\n"
    "print(json.dumps({'version': platform.python_version()}))\n"
)


def _run_check(folder: Path, module: str | None) -> tuple[bool, str, str]:
    """(ok, python version, last error line) from importing `module` with the env's Python.

    -I keeps the caller's PYTHONPATH and user site out; -B writes no bytecode, which would
    be unique to this env and cost disk the shared cache cannot save.
    """
    cmd = [str(_python_in(folder)), "-I", "-B", "-c", _CHECK_CODE] + ([module] if module else [])
    try:
        out = subprocess.run(
            uvtool.die_with_parent(cmd),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_CHECK_TIMEOUT_S,
            env=_clean_env(),
            cwd=folder,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, "", str(exc)
    if out.returncode != 0:
        last = next((ln for ln in reversed(out.stderr.splitlines()) if ln.strip()), "no output")
        return False, "", last.strip()
    try:
        return True, json.loads(out.stdout.strip().splitlines()[-1])["version"], ""
    except (ValueError, KeyError, IndexError):
        return False, "", "the Python of the environment printed nothing"


def _freeze(home: Home, folder: Path, mode: str) -> str:
    return uvtool.run(
        home,
        ["pip", "freeze", "--no-config", "--python", str(_python_in(folder))],
        mode=mode,
        timeout=300,
    )


def parse_lock(text: str) -> dict[str, str]:
    """name (normalised) -> the rest of its freeze line (`==1.2`, ` @ file:///...`)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).strip()
    return out


def _install_args(spec: EnvSpec) -> list[str]:
    args = [*spec.packages, *spec.torch_packages]
    for (
        entry
    ) in args:  # never an option such as --index-url or -r/etc/shadow (the schema checks first)
        try:
            validate.requirement(entry)
        except ValueError as exc:
            raise DarkroomError(
                f"The environment of {spec.app} cannot be built: {exc}.",
                "Fix the recipe's packages, then try again.",
            ) from None
    for req in spec.requirement_files:
        if not req.is_file():
            raise DarkroomError(
                f"The requirements file {req} of {spec.app} does not exist.",
                "Reinstall the app so its source is fetched again.",
            )
        args += ["-r", str(req)]
    for folder in spec.local_packages:
        if not folder.is_dir():
            raise DarkroomError(
                f"The local package folder {folder} of {spec.app} does not exist.",
                "Reinstall Darkroom, or fix the app's source folder.",
            )
        args.append(str(folder.resolve()))
    return args


def _make_env(
    home: Home, settings: Settings, spec: EnvSpec, staged: Path, mode: str, report: Reporter
) -> None:
    report(
        Stage(
            SOURCE,
            "resolving",
            f"Python {spec.python} and {len(spec.packages) + len(spec.torch_packages)} packages",
        )
    )
    venv = [
        "venv",
        "--no-config",
        "--no-project",
        "--relocatable",
        "--python",
        spec.python,
        "--prompt",
        spec.app,
        str(staged),
    ]
    if settings.offline:
        venv.append("--offline")
    uvtool.run(home, venv, mode=mode, report=report, timeout=600)
    backend = spec.torch_backend if spec.torch_packages else None
    spec = replace(
        spec, torch_packages=uvtool.torch_requirements(settings, backend, spec.torch_packages)
    )
    reqs = _install_args(spec)
    if not reqs:
        return
    if backend and backend != "mps" and uvtool.torch_source(settings, backend) == "user":
        report(
            Message(
                SOURCE,
                f"torch comes from your configured package sources; make sure they "
                f"carry the {backend} build (or set torch_index_urls.{backend}).",
                "warning",
            )
        )
    uvtool.run(
        home,
        [
            "pip",
            "install",
            "--python",
            str(_python_in(staged)),
            *uvtool.source_args(settings, backend),
            *reqs,
        ],
        mode=mode,
        report=report,
    )


def _finish(home: Home, spec: EnvSpec, staged: Path, mode: str, report: Reporter) -> None:
    """Check the staged env imports, then record its lock and metadata inside it."""
    report(
        Stage(
            SOURCE,
            "checking",
            f"import {spec.check_import}" if spec.check_import else "python runs",
        )
    )
    ok, version, why = _run_check(staged, spec.check_import)
    if not ok:
        what = f"`import {spec.check_import}`" if spec.check_import else "its Python"
        raise DarkroomError(
            f"The new environment for {spec.app} was built but {what} fails: {why}",
            "The environment that was there before is unchanged. Report this to the app's maintainer.",
        )
    lock = _freeze(home, staged, mode)
    atomic_write_text(staged / LOCK_FILE, lock)
    atomic_write_json(
        staged / META_FILE,
        {
            "app": spec.app,
            "spec": spec.to_dict(),
            "spec_hash": spec.fingerprint(),
            "python_version": version,
            "torch_backend": spec.torch_backend,
            "link_mode": mode,
            "built_at": time.time(),
            "uv_version": uvtool.uv_version(),
        },
    )


def _guard(app: str, settings: Settings) -> contextlib.AbstractContextManager:
    return _Guard(app, settings)


class _Guard:
    """Turns uv failures and OS errors into one sentence each; the old env is untouched."""

    def __init__(self, app: str, settings: Settings) -> None:
        self.app, self.settings = app, settings

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, uvtool.UvFailure):
            raise uvtool.explain(exc, self.app, self.settings) from None
        if isinstance(exc, OSError) and not isinstance(exc, DarkroomError):
            kept = f"The environment of {self.app} that was there before is unchanged."
            if exc.errno == errno.ENOSPC:
                raise DiskFull(
                    f"The disk is full; the environment for {self.app} could not be built.",
                    f"Free some space (try `darkroom cache prune`), then try again. {kept}",
                ) from None
            raise DarkroomError(
                f"Building the environment for {self.app} failed: {exc.strerror or exc} "
                f"({exc.filename or 'no file'}).",
                kept,
            ) from None
        return False


def build(
    home: Home,
    settings: Settings,
    spec: EnvSpec,
    report: Reporter = ignore,
    *,
    force: bool = False,
    keep_previous: bool = True,
) -> EnvInfo:
    """Build the app's env in staging, check it, swap it in; the old one becomes .previous.

    Without `force`, an env already built from the same spec and still matching its
    lock is kept as it is (reused=True).
    """
    _check_app(spec.app)
    home.ensure()
    with _app_lock(home, spec.app), _guard(spec.app, settings):
        _recover(home, spec.app, report)
        return _build_locked(home, settings, spec, report, force=force, keep_previous=keep_previous)


def _build_locked(
    home: Home,
    settings: Settings,
    spec: EnvSpec,
    report: Reporter,
    *,
    force: bool,
    keep_previous: bool,
) -> EnvInfo:
    start = time.monotonic()
    if not force:
        current = info(home, spec.app)
        if (
            current
            and current.spec_hash == spec.fingerprint()
            and _verify(home, spec.app, False).ok
        ):
            report(Message(SOURCE, f"The environment of {spec.app} is already up to date."))
            current.reused = True
            return current
    mode = uvtool.link_mode(home)
    if mode == "copy":
        report(
            Message(
                SOURCE,
                "The uv cache cannot be hardlinked into envs/; every file is copied, "
                "so each environment uses its full size on disk.",
                "warning",
            )
        )
    staged = home.scratch("env", spec.app)
    try:
        _make_env(home, settings, spec, staged, mode, report)
        _finish(home, spec, staged, mode, report)
        report(Stage(SOURCE, "swapping", f"into {env_dir(home, spec.app)}"))
        _swap_in(home, spec.app, staged, keep_previous)
    finally:
        _rmtree(staged)
    result = info(home, spec.app)
    assert result is not None
    result.seconds = time.monotonic() - start
    report(Stage(SOURCE, "done", f"{len(result.packages)} packages in {result.seconds:.1f} s"))
    return result


# ---------------------------------------------------------------- reading and checking


def _meta(folder: Path) -> dict[str, Any] | None:
    data = read_json(folder / META_FILE)
    return data if isinstance(data, dict) and "spec" in data else None


def info(home: Home, app: str) -> EnvInfo | None:
    """The live env as recorded, or None when the app has none (or its record is gone)."""
    _check_app(app)
    folder = env_dir(home, app)
    meta = _meta(folder)
    if meta is None:
        return None
    try:
        lock = (folder / LOCK_FILE).read_text("utf-8")
    except OSError:
        lock = ""
    return EnvInfo(
        app=app,
        path=folder,
        python=_python_in(folder),
        python_version=meta.get("python_version", ""),
        spec_hash=meta.get("spec_hash", ""),
        torch_backend=meta.get("torch_backend", ""),
        link_mode=meta.get("link_mode", ""),
        built_at=float(meta.get("built_at", 0)),
        packages=parse_lock(lock),
    )


def recorded_spec(home: Home, app: str) -> EnvSpec | None:
    meta = _meta(env_dir(home, app))
    return EnvSpec.from_dict(meta["spec"]) if meta else None


def verify(home: Home, app: str, check_import: bool = True) -> VerifyResult:
    """Compare the live env with its lock (uv pip freeze vs recorded) and try its import."""
    _check_app(app)
    if not env_dir(home, app).exists():
        raise NotFound(f"{app} has no environment.", f"Build it with `darkroom env build {app}`.")
    return _verify(home, app, check_import)


def _verify(home: Home, app: str, check_import: bool) -> VerifyResult:
    folder = env_dir(home, app)
    meta = _meta(folder)
    result = VerifyResult(app=app, ok=False, python_ok=False)
    if meta is None:
        result.problems.append(
            "The environment's record (darkroom-env.json) is missing or damaged."
        )
    try:
        recorded = parse_lock((folder / LOCK_FILE).read_text("utf-8"))
    except OSError:
        recorded = None
        result.problems.append("The environment's lock (darkroom-lock.txt) is missing.")
    found: dict[str, str] | None = None
    if _python_in(folder).exists():
        try:
            found = parse_lock(_freeze(home, folder, uvtool.link_mode(home)))
            result.python_ok = True
        except uvtool.UvFailure:
            pass
    if not result.python_ok:
        result.problems.append("The environment's Python does not start.")
    if found is not None and recorded is not None:
        result.missing = sorted(set(recorded) - set(found))
        result.extra = sorted(set(found) - set(recorded))
        result.changed = [
            (n, recorded[n], found[n])
            for n in sorted(set(recorded) & set(found))
            if recorded[n] != found[n]
        ]
        for name in result.missing:
            result.problems.append(f"{name} is missing (recorded {recorded[name]}).")
        for name, was, now in result.changed:
            result.problems.append(f"{name} changed: recorded {was}, found {now}.")
        for name in result.extra:
            result.problems.append(f"{name} was added outside Darkroom ({found[name]}).")
    module = meta["spec"].get("check_import") if meta else None
    if check_import and result.python_ok and module:
        ok, _version, why = _run_check(folder, module)
        result.import_ok = ok
        if not ok:
            result.problems.append(f"`import {module}` fails: {why}")
    result.ok = not result.problems
    return result


# ---------------------------------------------------------------- repair, rollback, remove


def repair(
    home: Home, settings: Settings, app: str, report: Reporter = ignore, spec: EnvSpec | None = None
) -> EnvInfo:
    """Bring a drifted or broken env back to its lock, rebuilding only what is broken.

    A hardlink clone of the env is synced to the recorded lock (only changed packages are
    reinstalled), checked, and swapped in; the broken env is dropped, the rollback copy
    kept. If the env's Python or record is gone, the env is rebuilt from its recorded spec
    (or `spec`, when the record is lost).
    """
    _check_app(app)
    home.ensure()
    with _app_lock(home, app), _guard(app, settings):
        _recover(home, app, report)
        live = env_dir(home, app)
        recorded = recorded_spec(home, app) if live.exists() else None
        base = recorded or spec
        if base is None:
            raise NotFound(
                f"{app} has no environment to repair.", f"Build it with `darkroom env build {app}`."
            )
        if recorded is None or not (live / LOCK_FILE).exists():
            report(Message(SOURCE, f"The record of {app}'s environment is gone; rebuilding it."))
            return _build_locked(home, settings, base, report, force=True, keep_previous=False)
        report(Stage(SOURCE, "checking", "comparing with the lock"))
        result = _verify(home, app, check_import=True)
        if result.ok:
            report(Message(SOURCE, f"The environment of {app} is fine; nothing to repair."))
            current = info(home, app)
            assert current is not None
            current.reused = True
            return current
        mode = uvtool.link_mode(home)
        if not result.python_ok or mode != "hardlink":
            report(Message(SOURCE, f"Rebuilding the environment of {app}."))
            return _build_locked(home, settings, base, report, force=True, keep_previous=False)
        for problem in result.problems:
            report(Message(SOURCE, problem, "warning"))
        return _resync(home, settings, base, mode, report)


def _resync(home: Home, settings: Settings, spec: EnvSpec, mode: str, report: Reporter) -> EnvInfo:
    start = time.monotonic()
    live = env_dir(home, spec.app)
    staged = home.scratch("env", spec.app)
    try:
        report(Stage(SOURCE, "linking", "cloning the environment"))
        shutil.copytree(live, staged, symlinks=True, copy_function=os.link)
        backend = spec.torch_backend if spec.torch_packages else None
        report(Stage(SOURCE, "resolving", "reinstalling what differs from the lock"))
        uvtool.run(
            home,
            [
                "pip",
                "sync",
                "--python",
                str(_python_in(staged)),
                *uvtool.source_args(settings, backend),
                str(staged / LOCK_FILE),
            ],
            mode=mode,
            report=report,
        )
        _finish(home, spec, staged, mode, report)
        report(Stage(SOURCE, "swapping", f"into {live}"))
        _swap_in(home, spec.app, staged, keep_previous=False)
    finally:
        _rmtree(staged)
    result = info(home, spec.app)
    assert result is not None
    result.seconds = time.monotonic() - start
    return result


def rollback(home: Home, app: str, report: Reporter = ignore) -> EnvInfo:
    """Go back to the env before the last update; running it again goes forward again."""
    _check_app(app)
    home.ensure()
    with _app_lock(home, app):
        _recover(home, app, report)
        live, prev = env_dir(home, app), previous_dir(home, app)
        if not prev.exists():
            raise Conflict(
                f"There is no earlier environment of {app} to go back to.",
                "Rollback is possible once after each update.",
            )
        report(Stage(SOURCE, "swapping", "back to the previous environment"))
        if not live.exists():
            os.rename(prev, live)
        elif not _exchange(prev, live):
            hold = home.scratch("swap", app)
            os.rename(live, hold)
            os.rename(prev, live)  # a kill here: _recover leaves this rolled-back env in place
            os.rename(hold, prev)
        result = info(home, app)
        if result is None:
            raise DarkroomError(
                f"The earlier environment of {app} has no record and cannot be used.",
                f"Rebuild it with `darkroom env build {app}`.",
            )
        return result


def remove(home: Home, app: str, report: Reporter = ignore) -> None:
    """Delete the app's env and its rollback copy; the uv cache stays for other apps."""
    _check_app(app)
    with _app_lock(home, app):
        _recover(home, app, report)
        live, prev = env_dir(home, app), previous_dir(home, app)
        if not live.exists() and not prev.exists():
            raise NotFound(f"{app} has no environment.", "Nothing was removed.")
        report(Stage(SOURCE, "removing", str(live)))
        _discard(home, app, live)
        _discard(home, app, prev)
    with contextlib.suppress(OSError):
        home.env_lock(app).unlink()


def clean_leftovers(home: Home, report: Reporter = ignore) -> int:
    """Remove what killed builds left in staging/, skipping apps being built right now."""
    removed = 0
    for app in sorted({a for a, _ in _leftovers(home)}):
        try:
            with locked(home.env_lock(app), timeout=0, what=f"the environment of {app}"):
                count = sum(1 for _ in _leftovers(home, app))
                _recover(home, app, report)
                removed += count
        except Conflict:
            continue
    return removed


def prune_cache(home: Home, settings: Settings, report: Reporter = ignore) -> PruneResult:
    """Drop cache entries no env can need again (uv cache prune) and dead builds' leftovers."""
    home.ensure()
    before = dir_size(home.uv_cache)
    leftovers = clean_leftovers(home, report)
    report(Stage(SOURCE, "pruning", str(home.uv_cache)))
    with _guard("the cache", settings):
        uvtool.run(
            home, ["cache", "prune", "--no-config"], mode=uvtool.link_mode(home), report=report
        )
    return PruneResult(before, dir_size(home.uv_cache), leftovers)


def list_envs(home: Home) -> list[str]:
    """Apps that have a live env."""
    if not home.envs.is_dir():
        return []
    return sorted(
        p.name
        for p in home.envs.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _APP_RE.match(p.name)
    )
