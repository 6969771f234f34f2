"""Running the `uv` binary that ships in the `uv` Python package, never a system one.

One place knows how to call uv: which binary, which cache and link mode, which package
sources (from Darkroom's settings, not uv's or pip's config files), how to turn uv's
stderr into progress events, and how to turn its failures into one sentence for a user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .errors import DarkroomError, DiskFull, Offline
from .events import Message, Progress, Reporter, Stage, checkpoint, ignore, on_cancel
from .home import Home

SOURCE = "env"

# Environment that would make uv (or the env's Python) behave differently from run to run.
_DROP_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
# uv settings about how patient to be with a slow network, not about what gets installed.
_KEEP_UV_VARS = ("UV_HTTP_RETRIES", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS")


class UvMissing(DarkroomError):
    """The uv binary that comes with Darkroom cannot be found."""


@dataclass
class UvFailure(Exception):
    """uv exited non-zero; `stderr` holds its words for `explain`."""

    returncode: int
    stderr: str


def uv_bin() -> Path:
    """The uv binary from the `uv` package installed beside Darkroom."""
    try:
        from uv import find_uv_bin

        path = Path(find_uv_bin())
    except (ImportError, FileNotFoundError, OSError):
        raise UvMissing(
            "The uv tool that Darkroom uses to build app environments is missing.",
            "Reinstall Darkroom (its installer brings uv with it), then try again.",
        ) from None
    if not path.is_file():
        raise UvMissing(
            f"The uv tool at {path} is missing.",
            "Reinstall Darkroom (its installer brings uv with it), then try again.",
        )
    return path


def uv_version() -> str:
    out = subprocess.run([str(uv_bin()), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip().removeprefix("uv ").split(" ")[0]


def hardlinks_work(home: Home) -> bool:
    """Whether files in the uv cache can be hardlinked into envs/ (same filesystem, and allowed).

    When they cannot, uv copies every file and each env costs its full size on disk;
    `doctor` says so.
    """
    home.uv_cache.mkdir(parents=True, exist_ok=True)
    home.envs.mkdir(parents=True, exist_ok=True)
    probe, target = home.link_probes()
    try:
        probe.write_bytes(b"darkroom")
        os.link(probe, target)
        return os.stat(target).st_ino == os.stat(probe).st_ino
    except OSError:
        return False
    finally:
        for path in (probe, target):
            with contextlib.suppress(OSError):
                path.unlink()


def link_mode(home: Home) -> str:
    return "hardlink" if hardlinks_work(home) else "copy"


def child_env(home: Home, mode: str) -> dict[str, str]:
    """The environment uv runs in: our cache and link mode, none of the caller's UV_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("UV_") or k in _KEEP_UV_VARS) and k not in _DROP_VARS
    }
    env["UV_CACHE_DIR"] = str(home.uv_cache)
    env["UV_LINK_MODE"] = mode
    env["NO_COLOR"] = "1"
    return env


def has_user_sources(settings: Settings) -> bool:
    return bool(settings.index_url or settings.extra_index_urls or settings.find_links)


TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


def local_torch_wheels(settings: Settings, flavour: str) -> dict[str, str]:
    """{package: 'X+flavour'} for the newest torch-family wheels of that build lying in the
    user's local find-links folders (an offline wheelhouse)."""
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    pattern = re.compile(
        r"^(torch|torchvision|torchaudio)-([0-9][0-9.]*)\+" + re.escape(flavour) + r"-"
    )
    for link in settings.find_links:
        folder = Path(link.removeprefix("file://"))
        if not folder.is_dir():
            continue
        for wheel in folder.glob(f"*+{flavour}-*.whl"):
            m = pattern.match(wheel.name)
            if m:
                key = tuple(int(x) for x in m.group(2).split(".") if x)
                if m.group(1) not in found or key > found[m.group(1)][0]:
                    found[m.group(1)] = (key, f"{m.group(2)}+{flavour}")
    return {name: version for name, (_, version) in found.items()}


def torch_source(settings: Settings, flavour: str | None) -> str:
    """Where torch of this build comes from with these settings.

    "pytorch": PyTorch's own index for the build (uv's --torch-backend). "index": the index
    the user named for that build (`torch_index_urls`). "wheels": a CPU/CUDA torch in the
    user's wheel folder, pinned to it. "user": whatever the user's sources hold (GPU builds on a
    mirror, offline mode, macOS), with a warning where that may be the wrong build. A CPU
    machine never lands on "user" while online: PyPI's Linux torch is the CUDA build, 5.7 GB
    of nvidia-* wheels that a machine without a GPU cannot use.
    """
    if not flavour or flavour == "mps":
        return "user"
    if flavour in settings.torch_index_urls:
        return "index"
    if not has_user_sources(settings):
        return "pytorch"
    if "torch" in local_torch_wheels(settings, flavour):
        return "wheels"
    if flavour == "cpu" and not settings.offline:
        return "pytorch"
    return "user"


def torch_requirements(
    settings: Settings, flavour: str | None, packages: Sequence[str]
) -> list[str]:
    """The torch requirements, with bare names pinned to the user's wheels when they are the source."""
    if not flavour or torch_source(settings, flavour) != "wheels":
        return list(packages)
    wheels = local_torch_wheels(settings, flavour)
    return [f"{p}=={wheels[p]}" if p in wheels else p for p in packages]


def source_args(settings: Settings, torch_backend: str | None = None) -> list[str]:
    """uv options for package sources.

    The user's own sources (a mirror, an offline wheelhouse) are used for everything; torch
    comes from where `torch_source` says: an index the user named for that build goes first
    (uv takes each package from the first index that has it), PyTorch's index goes through
    --torch-backend. On macOS (mps) PyPI's wheels are the right ones.
    """
    args = ["--no-config"]
    where = torch_source(settings, torch_backend)
    if where == "index" and torch_backend:
        args += ["--extra-index-url", settings.torch_index_urls[torch_backend]]
    if settings.index_url:
        args += ["--index-url", settings.index_url]
    for url in settings.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in settings.find_links:
        args += ["--find-links", link]
    if where == "pytorch" and torch_backend:
        args += ["--torch-backend", torch_backend]
    if settings.index_strategy != "first-index":
        args += ["--index-strategy", settings.index_strategy]
    if settings.offline:
        args.append("--offline")
    return args


# Linux: children (uv, the import check) die with Darkroom, so a kill -9 leaves nothing
# working on a dead build. This is set by a tiny trampoline that execs the real program,
# not by Popen's preexec_fn: a preexec_fn makes the forked child run every at-fork hook,
# and huggingface_hub's hook (closing its HTTP session) deadlocks there when a download
# thread holds the pool's lock, as it does while an install builds and downloads at once.
_TRAMPOLINE = (
    "import ctypes,os,signal,sys\n"
    "try:\n ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))\n"
    "except Exception:\n pass\n"
    "if os.getppid() != int(sys.argv[1]):\n sys.exit(137)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(cmd: list[str]) -> list[str]:
    """`cmd`, wrapped so that on Linux it is killed when this process dies."""
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *cmd]


_RESOLVED = re.compile(r"^Resolved (\d+) packages?")
_DOWNLOADING = re.compile(r"^\s*Downloading (\S+)(?: \(([\d.]+)(\w+)\))?")
_DOWNLOADED = re.compile(r"^\s*Downloaded (\S+)")
_PREPARED = re.compile(r"^Prepared (\d+) packages?")
_INSTALLED = re.compile(r"^Installed (\d+) packages?")
_CHANGE = re.compile(r"^ ([+-~]) (\S+)")


class _Progress:
    """Turns uv's stderr lines into typed events as they arrive."""

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.resolved = 0
        self.downloads: list[str] = []
        self.downloaded = 0

    def line(self, text: str) -> None:
        if m := _RESOLVED.match(text):
            self.resolved = int(m.group(1))
            self.report(
                Progress(SOURCE, "resolving", self.resolved, self.resolved, unit="packages")
            )
            self.report(Stage(SOURCE, "downloading", f"{self.resolved} packages needed"))
        elif m := _DOWNLOADING.match(text):
            self.downloads.append(m.group(1))
            self.report(
                Progress(
                    SOURCE,
                    "downloading",
                    self.downloaded,
                    len(self.downloads),
                    unit="packages",
                    item=m.group(1),
                )
            )
        elif m := _DOWNLOADED.match(text):
            self.downloaded += 1
            self.report(
                Progress(
                    SOURCE,
                    "downloading",
                    self.downloaded,
                    max(len(self.downloads), self.downloaded),
                    unit="packages",
                    item=m.group(1),
                )
            )
        elif m := _PREPARED.match(text):
            self.report(Stage(SOURCE, "linking", f"{m.group(1)} packages into the environment"))
        elif m := _INSTALLED.match(text):
            n = int(m.group(1))
            self.report(Progress(SOURCE, "linking", n, n, unit="packages"))
        elif text.startswith("warning:"):
            self.report(Message(SOURCE, text.removeprefix("warning:").strip(), "warning"))


def run(
    home: Home,
    args: Sequence[str],
    *,
    mode: str,
    report: Reporter = ignore,
    timeout: float | None = None,
) -> str:
    """Run `uv <args>`, streaming stderr into events; returns stdout; raises UvFailure.

    A cancel carried by `report` kills uv at once (it leaves only the staged folder the
    caller discards) and raises Cancelled."""
    checkpoint(report)
    cmd = die_with_parent([str(uv_bin()), *args])
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=child_env(home, mode),
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise UvMissing(
            f"The uv tool could not be started ({exc.strerror or exc}).",
            "Reinstall Darkroom, then try again.",
        ) from None
    progress = _Progress(report)
    lines: list[str] = []
    out_chunks: list[str] = []
    try:

        def _drain() -> None:
            assert proc.stdout is not None
            out_chunks.append(proc.stdout.read())

        reader = threading.Thread(target=_drain, daemon=True)
        reader.start()
        assert proc.stderr is not None
        with on_cancel(report, proc.kill):
            for raw in proc.stderr:
                text = raw.rstrip("\n")
                lines.append(text)
                progress.line(text)
            proc.wait(timeout=timeout)
        reader.join(timeout=10)
        checkpoint(report)  # killed by a cancel: say so, not "uv failed"
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise UvFailure(proc.returncode, "\n".join(lines))
    return "".join(out_chunks)


def _build_reason(text: str) -> str:
    """The build backend's own error line (setuptools: "Multiple top-level packages
    discovered ..."), else uv's deepest `cause:`; not the generic hint uv ends with."""
    lines = [ln.strip() for ln in text.splitlines()]
    if "[stderr]" in lines:
        tail = lines[lines.index("[stderr]") + 1 :]
        errors = [ln for ln in tail if re.match(r"^(\w+Error|error)\b", ln, re.I)]
        if errors:
            return errors[-1].removeprefix("error:").strip()
    causes = [ln.removeprefix("cause:").strip() for ln in lines if ln.startswith("cause:")]
    return (
        causes[-1]
        if causes
        else next((ln for ln in reversed(lines) if ln and not ln.startswith("hint:")), "no details")
    )


def explain(failure: UvFailure, app: str, settings: Settings) -> DarkroomError:
    """One sentence a user can act on, from uv's words; the old env is always intact."""
    text = failure.stderr
    kept = f"The environment of {app} that was there before is unchanged."
    if "No space left on device" in text or f"os error {errno.ENOSPC}" in text:
        return DiskFull(
            f"The disk is full; the environment for {app} could not be built.",
            f"Free some space (try `darkroom cache prune`), then try again. {kept}",
        )
    if "network was disabled" in text or ("not found in the cache" in text and settings.offline):
        return Offline(
            f"Offline mode is on and some packages {app} needs are not in the local cache.",
            f"Turn offline mode off once (`darkroom config set offline false`) or add a wheel folder "
            f"to find_links. {kept}",
        )
    if "unsafe-best-match" in text and settings.index_strategy == "first-index":
        kept = (
            "If your index or mirror holds only some releases, `darkroom config set index_strategy "
            f"unsafe-best-match` lets uv look in the next index too (trust every index first). {kept}"
        )
    if m := re.search(r"Because (\S+) was not found in the package registry", text):
        return DarkroomError(
            f"The package '{m.group(1)}' that {app} needs was not found in the package index.",
            f"Check the package name, or the index and find_links settings. {kept}",
        )
    if m := re.search(r"Because there is no version of (\S+?) and", text):
        name, _, want = re.match(r"^([A-Za-z0-9._\[\]-]+)(.*)$", m.group(1)).group(1, 0, 2)
        which = f"{name} ({want})" if want else name
        return DarkroomError(
            f"No release of {which} that {app} needs is available from the package sources.",
            f"Check the version pin, or the index and find_links settings. {kept}",
        )
    if "No solution found" in text:
        cause = next(
            (
                ln.strip().removeprefix("cause:").strip()
                for ln in text.splitlines()
                if ln.strip().startswith("cause:")
            ),
            "",
        )
        short = cause.split(", we can conclude")[0] if cause else "the versions conflict"
        return DarkroomError(
            f"The packages {app} needs cannot be installed together: {short}.",
            f"This is a problem in the app's recipe or the package sources. {kept}",
        )
    if m := re.search(
        r"Failed to (?:build|prepare distributions|download and build) `?([^`\n]+?)`?(?:\n|$)", text
    ):
        name = m.group(1).split(" @ ")[0].split("==")[0].strip()
        return DarkroomError(
            f"The package {name} that {app} needs could not be built: {_build_reason(text)}",
            f"This is a problem with that package or with how the app's recipe installs it "
            f"(its `install:` field). {kept}",
        )
    # Before the network check: a Python download that fails also says "Failed to fetch".
    if re.search(
        r"No interpreter found|No download found for request|python-build-standalone|"
        r"Failed to (?:download|install) cpython",
        text,
        re.I,
    ):
        return DarkroomError(
            f"Python could not be found or downloaded for {app}.",
            f"Check the network connection (uv downloads Python from GitHub), or install "
            f"that Python version yourself. {kept}",
        )
    if re.search(
        r"(Failed to fetch|error sending request|dns error|tcp connect error|"
        r"Connection refused|timed out|Could not connect)",
        text,
        re.I,
    ):
        return Offline(
            f"The package index could not be reached while building {app}'s environment.",
            f"Check the network connection, or set a mirror with `darkroom config set index_url URL`. {kept}",
        )
    last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no details")
    return DarkroomError(
        f"Building the environment for {app} failed: {last}",
        f"Run `darkroom env build {app}` again; if it keeps failing, report this line. {kept}",
    )
