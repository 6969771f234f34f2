"""`darkroom run` as a user meets it: the colorizer and the workflow runner installed by
Darkroom's own installer (preview -> install, weights from the local test hub), nothing
running, then the real CLI as a subprocess starts what the preset needs, processes the
folder, writes results and the report. Then the same on a separately started Ray cluster
(by its address, and `--ray auto` finding it), and the errors a user meets on these paths.

The install links from the uv cache the restorer/colorizer tests keep warm under pytest's
cache folder, so it costs seconds. The Hub file behind the colorizer's default variant is
the tiny random-weight DDColor of tests/fixtures/tinyrestore.py (that variant pins no hash).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from manager import config, installer, supervisor
from manager.config import Settings
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from tests.fixtures.hub import LocalHub
from tests.fixtures.tinymodels import AppEnv, free_port
from tests.fixtures.tinyrestore import torch_vision_sources

RUN_TIMEOUT = 300


@dataclass
class Installed:
    home: Home
    env: dict[str, str]  # the environment `darkroom` runs in (DARKROOM_HOME set)

    @property
    def python(self) -> Path:
        return self.home.env_dir("workflow") / "bin" / "python"

    def darkroom(
        self, *argv: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "manager", *argv],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env={**self.env, **(extra_env or {})},
        )


def _clean_env(home: Home) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DARKROOM_", "HF_", "RAY_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**env, "DARKROOM_HOME": str(home.root), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def installed(
    colorizer_env: AppEnv, tiny_restore, pip_sources, tmp_path_factory
) -> Iterator[Installed]:
    pair = torch_vision_sources(pip_sources.extra_index_urls)
    if pair is None:
        pytest.skip("no torch + torchvision pair in a local extra index")
    links, pins = pair
    home = Home(tmp_path_factory.mktemp("darkroom")).ensure()
    # The same filesystem as the warm cache, so uv hardlinks instead of unpacking torch again.
    home.uv_cache.rmdir()
    home.uv_cache.symlink_to(colorizer_env.home.uv_cache.resolve(), target_is_directory=True)
    port = free_port()
    settings = Settings(
        find_links=[
            *pip_sources.find_links,
            *[p for p in links if p not in pip_sources.find_links],
        ],
        port_start=port,
        port_end=min(port + 40, 65535),
    )
    config.save(home, settings)
    hw = load_profile("cpu-only-16gb")
    with LocalHub() as hub:
        hub.add_file(
            "piddnad/DDColor-models",
            "ddcolor_modelscope.pth",
            Path(tiny_restore["ddcolor-tiny"]["path"]).read_bytes(),
        )
        with_hub = settings.model_copy(update={"hf_endpoint": hub.url})
        for app in ("colorizer", "workflow"):
            pv = installer.preview(home, with_hub, app, hw)
            if pv.plan.torch_packages:
                # This machine's package sources hold several torch builds; take the CPU pair
                # that works with torchvision (as tests/fixtures/tinyrestore.py does).
                pv.plan.torch_packages = list(pins)
            # check_start=False: `darkroom run` below is the start this test is about.
            installer.install(home, with_hub, pv, accepted=True, check_start=False)
    try:
        yield Installed(home, _clean_env(home))
    finally:
        for app in ("colorizer", "workflow"):
            with contextlib.suppress(DarkroomError):
                supervisor.stop(home, app)


def make_photos(py: Path, folder: Path, n: int) -> list[str]:
    """n small grey photos, drawn with Pillow in the workflow env."""
    folder.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys; from PIL import Image, ImageDraw\n"
        "for i in range(int(sys.argv[2])):\n"
        "    im = Image.new('L', (40 + 4 * i, 32), 90 + 20 * i)\n"
        "    ImageDraw.Draw(im).ellipse((6, 6, 26, 26), fill=200 - 10 * i)\n"
        "    im.convert('RGB').save(f'{sys.argv[1]}/photo{i}.png')\n"
    )
    done = subprocess.run(
        [str(py), "-c", code, str(folder), str(n)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return sorted(p.name for p in folder.iterdir())


def ledger(out: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(out / ".workflow" / "batch.sqlite") as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, status, attempts FROM items")}


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"type"')]


def colorizer_jobs(installed: Installed) -> int:
    """How many jobs the running colorizer has taken (0 when it is not running yet)."""
    info = supervisor.app_status(installed.home, "colorizer")
    if info is None or info.status != "ready":
        return 0
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        info.url.rstrip("/") + "/api/jobs", timeout=30
    ) as resp:
        return len(json.loads(resp.read())["jobs"])


def assert_sentence(done: subprocess.CompletedProcess, *words: str) -> None:
    """A failure a user can meet: non-zero, no traceback, `darkroom: <sentence>` and what to do."""
    assert done.returncode != 0, done.stdout
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("darkroom: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    for word in words:
        assert word in done.stderr, done.stderr[-3000:]


# ---------------------------------------------------------------- tests


def test_darkroom_run_after_a_real_install_starts_the_app_and_processes_the_folder(
    installed: Installed, tmp_path: Path
) -> None:
    home = installed.home
    assert supervisor.app_status(home, "colorizer") is None  # nothing runs yet
    src, out = tmp_path / "photos", tmp_path / "coloured"
    names = make_photos(installed.python, src, 3)
    done = installed.darkroom(
        "run", "colorize-only", str(src), "--out", str(out), "--set", "colorize.render_size=128"
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Traceback" not in done.stderr
    assert "colorize-only: 3 done, 0 failed of 3" in done.stdout
    assert f"Report:  {out / 'report.html'}" in done.stdout
    assert "starting: colorizer" in done.stderr and "images: 3 / 3 (100%)" in done.stderr
    info = supervisor.app_status(home, "colorizer")
    assert (
        info is not None and info.status == "ready"
    )  # started through the supervisor, left running
    assert sorted(p.name for p in out.glob("*.png")) == names
    assert all(v == ("done", 1) for v in ledger(out).values()) and set(ledger(out)) == set(names)
    # colour from a grey photo, at the photo's own size (the colorizer keeps its luminance)
    check = subprocess.run(
        [
            str(installed.python),
            "-c",
            "import sys; from PIL import Image\n"
            "a, b = Image.open(sys.argv[1]), Image.open(sys.argv[2]).convert('RGB')\n"
            "print(a.size == b.size, any(len(set(p)) > 1 for p in b.getdata()))",
            str(src / "photo1.png"),
            str(out / "photo1.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.stdout.split() == ["True", "True"], check.stderr
    page = (out / "report.html").read_text()
    assert page.count('<tr class="done">') == 3 and "colorize (s)" in page


def test_darkroom_run_on_a_ray_cluster_by_address_and_auto(
    installed: Installed, tmp_path: Path
) -> None:
    """A cluster started apart (`ray start --head` from the workflow env), joined by its
    address, then found by `--ray auto` (RAY_ADDRESS): every image done once, Ray named."""
    src = tmp_path / "photos"
    names = make_photos(installed.python, src, 3)
    jobs_before = colorizer_jobs(installed)
    with ray_head(installed.python.parent / "ray", installed.env) as address:
        # Ray sends its token to a cluster it is given (an address, or RAY_ADDRESS for auto)
        # only when told to; `ray start` turns token auth on where ~/.ray/auth_token exists.
        auth = {"RAY_AUTH_MODE": "token"} if head_uses_token() else {}
        runs = {"address": (address, auth), "auto": ("auto", {**auth, "RAY_ADDRESS": address})}
        for label, (ray, env) in runs.items():
            out = tmp_path / f"out-{label}"
            done = installed.darkroom(
                "run",
                "colorize-only",
                str(src),
                "--out",
                str(out),
                "--ray",
                ray,
                "--workers",
                "2",
                "--set",
                "colorize.render_size=128",
                "--json",
                extra_env=env,
            )
            assert done.returncode == 0, (label, (done.stdout + done.stderr)[-3000:])
            assert (
                "Traceback" not in done.stderr and "gcs_client" not in done.stderr
            )  # Ray's noise: in the log
            events = json_events(done.stdout)
            assert any(
                e["type"] == "Stage" and e["stage"] == "ray" and "2 Ray worker(s)" in e["message"]
                for e in events
            ), events
            summary = json.loads(done.stdout[done.stdout.rindex("\n{") + 1 :])
            assert (summary["total"], summary["done"], summary["failed"], summary["workers"]) == (
                3,
                3,
                0,
                2,
            )
            rows = ledger(out)
            assert set(rows) == set(names) and all(v == ("done", 1) for v in rows.values()), rows
            assert sorted(p.name for p in out.glob("*.png")) == names
    # the colorizer saw each image exactly once per run (no retry, no double dispatch)
    assert colorizer_jobs(installed) == jobs_before + 2 * len(names)


def test_errors_on_the_way_are_one_sentence(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    src = tmp_path / "photos"
    make_photos(installed.python, src, 1)
    # an empty folder: said before any app is started
    done = installed.darkroom("run", "colorize-only", str(tmp_path / "empty"))
    assert_sentence(done, "There are no images", "Check the folder")
    # nothing listens at the Ray address: said in seconds (ray.init alone retries for minutes)
    dead = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    done = installed.darkroom(
        "run", "colorize-only", str(src), "--out", str(tmp_path / "o"), "--ray", dead
    )
    assert_sentence(done, f"Cannot reach the Ray cluster at {dead}", "--ray local")
    assert time.monotonic() - t0 < RUN_TIMEOUT
    assert not (tmp_path / "o").exists()
    # something listens there but never answers (not Ray): Ray would retry for minutes
    with silent_listener() as port:
        done = installed.darkroom(
            "run",
            "colorize-only",
            str(src),
            "--out",
            str(tmp_path / "o2"),
            "--ray",
            f"127.0.0.1:{port}",
            extra_env={"DARKROOM_RAY_CONNECT_TIMEOUT_S": "2"},
        )
    assert_sentence(done, f"127.0.0.1:{port}", "did not answer within 2 s", "ray status")
    assert all(v[0] == "pending" for v in ledger(tmp_path / "o2").values())
    # a preset whose app is not installed
    done = installed.darkroom("run", "upscale-only", str(src))
    assert_sentence(done, "restorer", "darkroom install restorer")
    # a preset that does not exist
    done = installed.darkroom("run", "no-such-preset", str(src))
    assert_sentence(done, "no-such-preset")


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


# ---------------------------------------------------------------- a Ray head of our own


def head_uses_token() -> bool:
    """Whether `ray start --head` here turns token auth on (it does when a token exists)."""
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or (Path.home() / ".ray" / "auth_token").is_file()


class _Head:
    """`ray start --head --block` in its own session: stopping it stops only what it started."""

    def __init__(self, ray: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are long
        argv = [
            str(ray),
            "start",
            "--head",
            "--block",
            f"--port={self.port}",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.temp}",
        ]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.started = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if "Ray runtime started" in line:
                self.started.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # --block: it stops the processes it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of its session left behind
        self.proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


class ray_head:  # noqa: N801 (used as a context manager)
    def __init__(self, ray: Path, env: dict[str, str]) -> None:
        self.head = _Head(ray, env)

    def __enter__(self) -> str:
        deadline = time.monotonic() + 120
        while (
            not self.head.started.wait(0.2)
            and self.head.proc.poll() is None
            and time.monotonic() < deadline
        ):
            pass
        if not self.head.started.is_set():
            self.head.stop()
            raise AssertionError(
                "ray start --head did not start:\n" + "".join(self.head.lines)[-3000:]
            )
        return f"127.0.0.1:{self.head.port}"

    def __exit__(self, *_exc: object) -> None:
        self.head.stop()
