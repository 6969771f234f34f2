"""App environments built for real with uv from a local wheel folder: build, swap, rollback,
drift and repair, failures that leave the old env alone, and kill -9 in the middle of a build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from manager import envs, uvtool
from manager.errors import Conflict, DarkroomError, NotFound
from manager.events import Event, Progress, Stage
from manager.home import Home

REPO = Path(__file__).resolve().parent.parent


def spec(app: str = "demo", *packages: str, check: str | None = "dr_alpha") -> envs.EnvSpec:
    return envs.EnvSpec(
        app=app, python="3.11", packages=list(packages) or ["dr-alpha==1.0"], check_import=check
    )


def run_in_env(home: Home, app: str, code: str) -> str:
    out = subprocess.run(
        [str(envs.env_python(home, app)), "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def alpha_version(home: Home, app: str = "demo") -> str:
    return run_in_env(home, app, "import dr_alpha; print(dr_alpha.VERSION)")


def staging_entries(home: Home) -> list[str]:
    return sorted(p.name for p in home.staging.iterdir()) if home.staging.exists() else []


def test_build_records_lock_and_reports_stages(home: Home, wheelhouse) -> None:
    events: list[Event] = []
    info = envs.build(home, wheelhouse.settings(), spec("demo", "dr-beta"), events.append)
    assert info.packages == {"dr-alpha": "==2.0", "dr-beta": "==1.0"}  # newest dr-alpha
    assert info.python_version.startswith("3.11")
    assert info.link_mode == "hardlink"
    assert envs.env_python(home, "demo").exists()
    assert run_in_env(home, "demo", "import dr_beta; print(dr_beta.BETA)") == "True"
    assert "dr-beta==1.0" in (home.env_dir("demo") / envs.LOCK_FILE).read_text()
    stages = [e.stage for e in events if isinstance(e, Stage)]
    for name in ("resolving", "linking", "checking", "swapping"):
        assert name in stages
    assert stages.index("resolving") < stages.index("checking") < stages.index("swapping")
    assert any(isinstance(e, Progress) and e.stage == "resolving" and e.done == 2 for e in events)
    assert staging_entries(home) == []
    # the env's own python is inside the env folder, and the venv is relocatable
    assert "relocatable = true" in (home.env_dir("demo") / "pyvenv.cfg").read_text()
    assert envs.verify(home, "demo").ok


def test_same_spec_is_reused_and_update_keeps_previous_for_rollback(home: Home, wheelhouse) -> None:
    settings = wheelhouse.settings()
    first = envs.build(home, settings, spec())
    again = envs.build(home, settings, spec())
    assert again.reused and again.built_at == first.built_at

    updated = envs.build(home, settings, spec("demo", "dr-alpha==2.0"))
    assert not updated.reused and updated.packages["dr-alpha"] == "==2.0"
    assert alpha_version(home) == "2.0"
    assert envs.previous_dir(home, "demo").is_dir()

    back = envs.rollback(home, "demo")
    assert back.packages["dr-alpha"] == "==1.0" and alpha_version(home) == "1.0"
    forward = envs.rollback(home, "demo")  # a second rollback undoes the first
    assert forward.packages["dr-alpha"] == "==2.0" and alpha_version(home) == "2.0"
    assert staging_entries(home) == []


@pytest.mark.parametrize(
    "bad, words",
    [
        (spec("demo", "dr-missing-package"), "'dr-missing-package'"),
        (spec("demo", "dr-alpha==9.9"), "dr-alpha (==9.9)"),
        (spec("demo", "dr-broken", check="dr_broken"), "import dr_broken"),
    ],
)
def test_failed_build_leaves_old_env_working(home: Home, wheelhouse, bad, words) -> None:
    settings = wheelhouse.settings()
    envs.build(home, settings, spec())
    with pytest.raises(DarkroomError) as caught:
        envs.build(home, settings, bad, force=True)
    assert words in caught.value.message
    assert "unchanged" in caught.value.hint
    assert "Traceback" not in str(caught.value)
    assert alpha_version(home) == "1.0"
    assert envs.verify(home, "demo").ok
    assert not envs.previous_dir(home, "demo").exists()
    assert staging_entries(home) == []


def test_offline_without_cache_says_so(home: Home, wheelhouse) -> None:
    # An index (not find-links) package never fetched before cannot be had offline.
    settings = wheelhouse.settings(offline=True)
    settings.index_url = "https://pypi.org/simple"
    settings.find_links = []
    with pytest.raises(DarkroomError) as caught:
        envs.build(home, settings, spec("demo", "six", check=None))
    assert "Offline mode" in caught.value.message


def test_unreachable_index_is_a_network_sentence(home: Home, wheelhouse, monkeypatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # fail now rather than after uv's backoff
    settings = wheelhouse.settings()
    settings.index_url = "http://127.0.0.1:9/simple"
    settings.find_links = []
    with pytest.raises(DarkroomError) as caught:
        envs.build(home, settings, spec("demo", "dr-nothing-here", check=None))
    assert "could not be reached" in caught.value.message


def test_verify_detects_drift_and_repair_resyncs_only_that(home: Home, wheelhouse) -> None:
    settings = wheelhouse.settings()
    envs.build(home, settings, spec("demo", "dr-alpha==1.0"))
    envs.build(
        home, settings, spec("demo", "dr-alpha==1.0", "dr-beta", check="dr_beta")
    )  # previous: alpha only
    subprocess.run(
        [
            str(uvtool.uv_bin()),
            "pip",
            "uninstall",
            "--python",
            str(envs.env_python(home, "demo")),
            "dr-alpha",
        ],
        check=True,
        capture_output=True,
        env=uvtool.child_env(home, "hardlink"),
    )
    result = envs.verify(home, "demo")
    assert not result.ok
    assert result.missing == ["dr-alpha"]
    assert result.import_ok is False  # dr_beta imports dr_alpha

    events: list[Event] = []
    repaired = envs.repair(home, settings, "demo", events.append)
    assert repaired.packages == {"dr-alpha": "==1.0", "dr-beta": "==1.0"}
    assert envs.verify(home, "demo").ok
    assert any(isinstance(e, Progress) and e.stage == "linking" and e.done == 1 for e in events), (
        "repair should reinstall just the one missing package"
    )
    # the rollback copy from before the update is still the one kept
    prev = envs.previous_dir(home, "demo") / envs.LOCK_FILE
    assert "dr-beta" not in prev.read_text()


def test_repair_rebuilds_an_env_whose_python_is_gone(home: Home, wheelhouse) -> None:
    settings = wheelhouse.settings()
    envs.build(home, settings, spec())
    envs.env_python(home, "demo").unlink()
    assert not envs.verify(home, "demo").python_ok
    envs.repair(home, settings, "demo")
    assert alpha_version(home) == "1.0" and envs.verify(home, "demo").ok


def test_interrupted_swap_is_undone_on_next_run(home: Home, wheelhouse) -> None:
    """The state a kill leaves between the two renames of a (non-exchange) swap."""
    settings = wheelhouse.settings()
    envs.build(home, settings, spec())
    os.rename(home.env_dir("demo"), envs.previous_dir(home, "demo"))
    half = home.staging / "env-demo-0123abcd"
    (half / "bin").mkdir(parents=True)
    envs.build(home, settings, spec())  # recovers, sees the same spec, reuses it
    assert alpha_version(home) == "1.0"
    assert not half.exists()


_CHILD = """
import json, sys
from pathlib import Path
from manager import envs
from manager.config import Settings
from manager.home import Home
home = Home(Path(sys.argv[1]))
settings = Settings.model_validate_json(sys.argv[2])
def report(event):
    print(json.dumps(event.to_dict()), flush=True)
envs.build(home, settings, envs.EnvSpec(app="demo", packages=["dr-alpha==2.0", "dr-slow"],
           check_import="dr_slow"), report, force=True)
"""


@pytest.mark.parametrize("kill_at", ["downloading", "checking"])
def test_kill_9_mid_build_keeps_old_env_and_next_run_cleans(
    home: Home, wheelhouse, kill_at
) -> None:
    settings = wheelhouse.settings()
    envs.build(home, settings, spec())
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home.root), settings.model_dump_json()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        event = json.loads(line)
        seen.append(event.get("stage"))
        if event.get("type") == "Stage" and event["stage"] == kill_at:
            break
    else:
        pytest.fail(f"the build ended before '{kill_at}': {seen} {child.stderr.read()}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    # uv and the import check die with their parent: nothing keeps working on the dead build
    def workers() -> list[str]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if str(home.staging) in line:
                found.append(line)
        return found

    deadline = time.time() + 10
    while time.time() < deadline and workers():
        time.sleep(0.1)
    assert workers() == []

    assert alpha_version(home) == "1.0"  # the old env still works
    assert envs.verify(home, "demo", check_import=False).ok
    assert any(name.startswith("env-demo-") for name in staging_entries(home))

    envs.build(home, settings, spec())  # the next run cleans up
    assert staging_entries(home) == []
    assert alpha_version(home) == "1.0"


def test_remove_and_errors_for_unknown_apps(home: Home, wheelhouse) -> None:
    settings = wheelhouse.settings()
    with pytest.raises(NotFound):
        envs.verify(home, "ghost")
    with pytest.raises(NotFound):
        envs.remove(home, "ghost")
    with pytest.raises(NotFound):
        envs.repair(home, settings, "ghost")
    with pytest.raises(NotFound):
        envs.build(home, settings, spec("../escape"))
    envs.build(home, settings, spec())
    with pytest.raises(Conflict):
        envs.rollback(home, "demo")  # nothing to go back to yet
    envs.build(home, settings, spec("demo", "dr-alpha==2.0"))
    assert envs.list_envs(home) == ["demo"]
    envs.remove(home, "demo")
    assert not home.env_dir("demo").exists() and not envs.previous_dir(home, "demo").exists()
    assert envs.list_envs(home) == [] and staging_entries(home) == []


def test_local_package_and_requirements_file(home: Home, wheelhouse, tmp_path: Path) -> None:
    """A local project folder installed non-editable; uv's own build backend, from the cache
    folder of wheels, keeps this offline."""
    project = tmp_path / "proj"
    (project / "dr_local").mkdir(parents=True)
    (project / "dr_local" / "__init__.py").write_text("NAME = 'local'\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["dr-flatbuild"]\nbuild-backend = "dr_flatbuild"\n'
        '[project]\nname = "dr-local"\nversion = "0.1"\n'
    )
    from tests.fixtures.wheels import make_wheel

    make_wheel(tmp_path / "backend", "dr-flatbuild", "1.0", {"dr_flatbuild.py": _FLAT_BACKEND})
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("dr-alpha==2.0\n")
    settings = wheelhouse.settings()
    settings.find_links = [*settings.find_links, str(tmp_path / "backend")]
    built = envs.build(
        home,
        settings,
        envs.EnvSpec(
            app="local",
            packages=[],
            local_packages=[project],
            requirement_files=[reqs],
            check_import="dr_local",
        ),
    )
    assert built.packages["dr-alpha"] == "==2.0" and "dr-local" in built.packages
    site = run_in_env(home, "local", "import dr_local; print(dr_local.__file__)")
    assert str(home.env_dir("local")) in site  # copied into the env, not an editable link


# A minimal PEP 517 backend: packs the project's one package folder into a wheel.
_FLAT_BACKEND = """
import base64, hashlib, os, zipfile
def _meta():
    return "Metadata-Version: 2.1\\nName: dr-local\\nVersion: 0.1\\n"
def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "dr_local-0.1-py3-none-any.whl"
    entries = {}
    for root, _dirs, files in os.walk("dr_local"):
        for f in files:
            if not f.endswith(".pyc"):
                p = os.path.join(root, f)
                entries[p.replace(os.sep, "/")] = open(p, "rb").read()
    info = "dr_local-0.1.dist-info"
    entries[info + "/METADATA"] = _meta().encode()
    entries[info + "/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = [f"{p},{_digest(d)},{len(d)}" for p, d in entries.items()] + [info + "/RECORD,,"]
    entries[info + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for p, d in entries.items():
            zf.writestr(p, d)
    return name
"""


def test_hardlinks_and_prune(home: Home, wheelhouse) -> None:
    assert uvtool.hardlinks_work(home)
    envs.build(home, wheelhouse.settings(), spec())
    (home.staging / "trash-demo-deadbeef").mkdir(parents=True)
    result = envs.prune_cache(home, wheelhouse.settings())
    assert result.leftovers_removed == 1 and staging_entries(home) == []
    assert result.after_bytes <= result.before_bytes
    assert alpha_version(home) == "1.0"


def test_source_args_follow_settings(wheelhouse) -> None:
    plain = uvtool.source_args(
        wheelhouse.settings().model_copy(update={"index_url": None, "find_links": []}), "cu128"
    )
    assert plain[-2:] == ["--torch-backend", "cu128"]
    mirrored = uvtool.source_args(wheelhouse.settings(offline=True), "cu128")
    assert "--torch-backend" not in mirrored  # the user's sources serve torch
    assert "--offline" in mirrored and "--find-links" in mirrored and "--index-url" in mirrored


def test_uv_is_the_packaged_one() -> None:
    from uv import find_uv_bin

    assert uvtool.uv_bin() == Path(find_uv_bin())


@pytest.fixture
def http_index(wheelhouse, tmp_path: Path):
    """The wheelhouse as a PEP 503 simple index served over HTTP on 127.0.0.1."""
    import functools
    import http.server
    import shutil
    import threading

    root = tmp_path / "served"
    (root / "files").mkdir(parents=True)
    names: dict[str, list[str]] = {}
    for wheel in wheelhouse.folder.glob("*.whl"):
        shutil.copy(wheel, root / "files" / wheel.name)
        names.setdefault(wheel.name.split("-")[0].replace("_", "-"), []).append(wheel.name)
    for name, files in names.items():
        (root / "simple" / name).mkdir(parents=True)
        links = "".join(f'<a href="../../files/{f}">{f}</a>\n' for f in files)
        (root / "simple" / name / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()


def test_offline_builds_from_the_cache(home: Home, wheelhouse, http_index, monkeypatch) -> None:
    server, url = http_index
    online = wheelhouse.settings()
    online.index_url, online.find_links = url, []
    envs.build(home, online, spec("first", "dr-beta", check="dr_beta"))
    server.shutdown()  # the index is gone: only the cache can serve the second app
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    offline = online.model_copy(update={"offline": True})
    built = envs.build(home, offline, spec("second", "dr-beta", check="dr_beta"))
    assert built.packages == {"dr-alpha": "==2.0", "dr-beta": "==1.0"}
    assert envs.verify(home, "second").ok


def test_uv_lines_become_typed_events() -> None:
    """The lines uv prints when it downloads from an index (captured from uv 0.13)."""
    events: list[Event] = []
    parser = uvtool._Progress(events.append)
    for line in [
        "Resolved 2 packages in 170ms",
        "Downloading numpy (15.6MiB)",
        "Downloading pillow (6.8MiB)",
        " Downloaded pillow",
        " Downloaded numpy",
        "Prepared 2 packages in 1.18s",
        "Installed 2 packages in 114ms",
        " + numpy==2.1.3",
        "warning: something odd",
    ]:
        parser.line(line)
    downloads = [
        (e.done, e.total, e.item)
        for e in events
        if isinstance(e, Progress) and e.stage == "downloading"
    ]
    assert downloads == [(0, 1, "numpy"), (0, 2, "pillow"), (1, 2, "pillow"), (2, 2, "numpy")]
    assert [e.stage for e in events if isinstance(e, Stage)] == ["downloading", "linking"]
    assert events[-1].level == "warning"


def test_disk_full_mid_build_is_a_sentence_and_keeps_the_old_env(
    wheelhouse, small_disk, tmp_path: Path
) -> None:
    """A real small filesystem (tmpfs) fills up while uv unpacks a big wheel."""
    from tests.fixtures.wheels import make_wheel

    home = Home(small_disk(16) / "home").ensure()
    settings = wheelhouse.settings()
    envs.build(home, settings, spec())
    big = tmp_path / "big-wheels"
    # 24 MB that compresses to about half: more than the filesystem has left once unpacked.
    make_wheel(
        big,
        "dr-huge",
        "1.0",
        {"dr_huge/__init__.py": "", "dr_huge/blob.txt": os.urandom(12 * 1024 * 1024).hex()},
    )
    settings.find_links.append(str(big))
    with pytest.raises(DarkroomError) as caught:
        envs.build(home, settings, spec("demo", "dr-alpha==1.0", "dr-huge==1.0"), force=True)
    assert "disk is full" in caught.value.message, caught.value
    assert "unchanged" in caught.value.hint and "Traceback" not in str(caught.value)
    assert alpha_version(home) == "1.0" and envs.verify(home, "demo").ok
    assert staging_entries(home) == []


def _simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in a folder (file:// URL), as a partial mirror would serve it."""
    for wheel in wheels:
        project = root / wheel.name.split("-")[0].replace("_", "-")
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).write_bytes(wheel.read_bytes())
        links = "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(project.glob("*.whl")))
        (project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    (root / "index.html").write_text("<!DOCTYPE html><html><body></body></html>\n")
    return root.as_uri()


def test_partial_mirror_needs_the_index_strategy_setting(
    home: Home, wheelhouse, tmp_path: Path
) -> None:
    """A mirror holding only dr-alpha 1.0 hides 2.0 on the next index until the user allows it."""
    from manager.config import Settings

    alphas = sorted(wheelhouse.folder.glob("dr_alpha-*.whl"))
    mirror = _simple_index(tmp_path / "mirror", [w for w in alphas if "-1.0-" in w.name])
    full = _simple_index(tmp_path / "full", alphas)
    settings = Settings(index_url=full, extra_index_urls=[mirror])
    with pytest.raises(DarkroomError) as caught:
        envs.build(home, settings, spec("demo", "dr-alpha==2.0"))
    assert "index_strategy unsafe-best-match" in caught.value.hint, caught.value
    assert "--index-strategy" not in uvtool.source_args(settings)

    settings.index_strategy = "unsafe-best-match"
    assert uvtool.source_args(settings)[-2:] == ["--index-strategy", "unsafe-best-match"]
    assert envs.build(home, settings, spec("demo", "dr-alpha==2.0")).packages["dr-alpha"] == "==2.0"
