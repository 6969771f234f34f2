"""TUI responsiveness, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/tui.py [--rounds N] [--mb SIZE] [--smoke] [--strict]

1. Time to first paint: a fresh process runs the Darkroom app headless and reports when the
   first frame is drawn, (a) from process start (imports included) and (b) from `App.run`
   (the app's own start-up). Baseline: a bare Textual app with one label, same measure.
   Goal for (b): at most 0.6 s. Also shown: until the app cards are on screen.
2. Event-loop stall while an install runs: the tiny app is installed through the Install
   screen (a real git clone, uv env from the local wheel folders, a weight file of SIZE MB
   from the local test hub paced at 50 MB/s) while a probe task measures how late the
   event loop wakes it. Baseline: the same probe with the app idle. Goal: longest stall at
   most 100 ms. The install must end installed (state recorded, weight file in the store with
   its sha256); if it does not, the bench fails (exit 1) with the install's own error rather
   than print the stall of an idle screen. The app is the installer tests' own fixture
   (tests/fixtures/tinygit.py).

Figures are medians with their spread and sample count (bench/_stats.py). `--smoke`: one
round, a 1 MB weight file, goals not judged (the test suite runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, load, ratios  # noqa: E402

PROBE_S = 0.005


# ---------------------------------------------------------------- 1. first paint (child side)


def child_paint(kind: str, home: str) -> None:
    """Run one app headless; print JSON with the times of its first frame and of the cards."""
    began = time.perf_counter()
    from textual.app import App
    from textual.widgets import Label

    from manager.home import Home

    marks: dict[str, float] = {}

    if kind == "bare":

        class Bare(App):
            def compose(self):
                yield Label("hello")

            def on_mount(self) -> None:
                self.call_after_refresh(self._painted)

            def _painted(self) -> None:
                marks["paint"] = time.perf_counter()
                marks["cards"] = marks["paint"]
                self.exit()

        app: App = Bare()
    else:
        from manager.hardware import load_profile
        from manager.tui.app import DarkroomApp
        from manager.tui.widgets.app_card import AppCard

        class Timed(DarkroomApp):
            def on_mount(self) -> None:
                super().on_mount()
                self.call_after_refresh(lambda: marks.setdefault("paint", time.perf_counter()))
                self.set_interval(0.01, self._check)

            def _check(self) -> None:
                if self.screen.query(AppCard):
                    marks["cards"] = time.perf_counter()
                    self.exit()

        app = Timed(Home(Path(home)), load_profile("rtx3060-12gb"))
    imported = time.perf_counter()
    app.run(headless=True, size=(80, 24))
    print(
        json.dumps(
            {
                "imports": imported - began,
                "paint_from_run": marks["paint"] - imported,
                "cards_from_run": marks["cards"] - imported,
                "wall_paint": time.time() - (time.perf_counter() - marks["paint"]),
            }
        )
    )


def first_paint(kind: str, home: Path, report: Report) -> dict[str, float]:
    start = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, "DARKROOM_HOME": str(home)},
    )
    report.require(
        out.returncode == 0 and out.stdout.strip(),
        f"the {kind} app did not paint (exit {out.returncode}): {out.stderr.strip()[-1500:]}",
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["paint_from_exec"] = data.pop("wall_paint") - start
    return data


# ---------------------------------------------------------------- 2. stall during an install


async def probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        lags.append(time.perf_counter() - t - PROBE_S)


@dataclass
class Install:
    """What one install through the Install screen did: probe lags, outcome, its words."""

    idle: list[float]
    busy: list[float]
    took: float
    phase: str
    errors: list[str]
    log: list[str]


async def install_stall(tmp: Path, mb: int, idle_s: float) -> tuple[Install, bytes, Path]:
    from manager import config
    from manager.config import Settings
    from manager.hardware import load_profile
    from manager.home import Home
    from manager.tui.app import DarkroomApp
    from manager.tui.screens.install import InstallScreen
    from manager.tui.widgets.app_card import AppCard
    from tests.fixtures.hub import LocalHub, pointed_at
    from tests.fixtures.sources import read_pip_config
    from tests.fixtures.tinyapp import free_port
    from tests.fixtures.tinygit import WEIGHTS_REPO, build_tiny_repo, recipe_text

    class Watched(DarkroomApp):
        """The real app, keeping the error notifications (the reason an install failed)."""

        errors: list[str] = []

        def notify(self, message, *a, severity="information", **kw):  # type: ignore[override]
            if severity == "error":
                self.errors.append(str(message))
            return super().notify(message, *a, severity=severity, **kw)

    home = Home(tmp / "home").ensure()
    os.environ["DARKROOM_HOME"] = str(home.root)
    data = os.urandom(mb * 1_000_000)
    sources = read_pip_config()
    with LocalHub() as hub, pointed_at(hub.url):
        hub.add_file(WEIGHTS_REPO, "weights.bin", data)
        hub.faults.rate_bps = 50_000_000
        config.save(
            home,
            Settings(
                extra_index_urls=sources.extra_index_urls,
                find_links=sources.find_links,
                hf_endpoint=hub.url,
                port_start=20000,
                port_end=20100,
            ),
        )
        (tmp / "git").mkdir(parents=True)
        text = recipe_text(build_tiny_repo(tmp / "git"), "v0.1.0", free_port(), weights=data)
        recipe = tmp / "tiny.yaml"
        recipe.write_text(text)

        app = Watched(home, load_profile("cpu-only-16gb"))
        app.errors = []
        async with app.run_test(size=(80, 24)) as pilot:
            while not isinstance(app.focused, AppCard):
                await pilot.pause(0.05)
            idle: list[float] = []
            stop = asyncio.Event()
            task = asyncio.create_task(probe(stop, idle))
            await asyncio.sleep(idle_s)
            stop.set()
            await task

            screen = InstallScreen(str(recipe))
            app.push_screen(screen)
            while screen.pv is None and screen.phase != "failed":
                await pilot.pause(0.05)
            if screen.pv is None:
                return Install(idle, [], 0.0, "not planned", list(app.errors), []), data, home.root
            screen.query_one("#trust").value = True
            screen.query_one("#accept").value = True
            await pilot.pause()
            busy: list[float] = []
            stop = asyncio.Event()
            task = asyncio.create_task(probe(stop, busy))
            began = time.perf_counter()
            screen.action_install()
            while screen.phase not in ("done", "failed", "cancelled"):
                await asyncio.sleep(0.05)
            took = time.perf_counter() - began
            stop.set()
            await task
            result = Install(
                idle,
                busy,
                took,
                screen.phase,
                list(app.errors),
                list(screen.query_one("#install-log").lines),
            )
        from manager.supervisor import control

        with contextlib.suppress(Exception):
            control.stop(home, "tiny")
    return result, data, home.root


def check_installed(report: Report, inst: Install, data: bytes, root: Path) -> None:
    """The install must have finished, been recorded, and left the right bytes in the store."""
    from manager import state
    from manager.home import Home

    why = " / ".join(inst.errors) or "\n".join(inst.log[-8:]) or "no message"
    report.require(inst.phase == "done", f"the install ended '{inst.phase}', not 'done': {why}")
    app = state.load(Home(root)).apps.get("tiny")
    report.require(app is not None, "the install said done but the state has no 'tiny'")
    files = [f for m in app.models for f in m.files]
    want = hashlib.sha256(data).hexdigest()
    report.require(
        [f.sha256 for f in files] == [want],
        f"the state records {files}, not one file of sha256 {want}",
    )
    stored = [p for p in (root / "models").rglob("weights.bin") if p.is_file()]
    report.require(
        stored and all(hashlib.sha256(p.read_bytes()).hexdigest() == want for p in stored),
        f"the weight file in the store is missing or has other bytes ({stored})",
    )
    report.done(f"install done in {inst.took:.1f} s, {len(data) / 1e6:.0f} MB verified")


def summary(lags: list[float]) -> str:
    ms = sorted(x * 1000 for x in lags)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"max {ms[-1]:6.1f} ms, p99 {p99:5.1f} ms, median {statistics.median(ms):4.1f} ms ({len(ms)} wakes)"


def paint(report: Report, tmp: Path, rounds: int) -> None:
    print(
        f"1. Time to first paint, {rounds} fresh processes each, interleaved (80x24, headless), "
        f"load {load()}"
    )
    results: dict[str, list[dict]] = {"bare": [], "darkroom": []}
    first_paint("darkroom", tmp / "warm", report)  # compile bytecode once, untimed
    for _ in range(rounds):
        for kind in results:
            results[kind].append(first_paint(kind, tmp / "paint", report))
    report.done(f"{2 * rounds} first paints")
    sp = {k: {m: Spread.of(r[m] for r in rs) for m in rs[0]} for k, rs in results.items()}
    b, d = sp["bare"], sp["darkroom"]
    run_ratio = ratios(
        [r["paint_from_run"] for r in results["darkroom"]],
        [r["paint_from_run"] for r in results["bare"]],
    )
    print(
        f"   imports            bare textual {b['imports'].text(1000, ' ms', 0)}   "
        f"darkroom {d['imports'].text(1000, ' ms', 0)}"
    )
    verdict = report.goal(
        "first paint <= 0.6 s", d["paint_from_run"].median <= 0.6, d["paint_from_run"], 0.6
    )
    print(
        f"   from App.run       bare textual {b['paint_from_run'].text(1000, ' ms', 0)}   darkroom "
        f"{d['paint_from_run'].text(1000, ' ms', 0)}   per-round ratio {run_ratio.text(unit='x', digits=2)}"
        f"   goal <= 0.6 s: {verdict}"
    )
    exec_ratio = ratios(
        [r["paint_from_exec"] for r in results["darkroom"]],
        [r["paint_from_exec"] for r in results["bare"]],
    )
    print(
        f"   from process start bare textual {b['paint_from_exec'].text(1000, ' ms', 0)}   darkroom "
        f"{d['paint_from_exec'].text(1000, ' ms', 0)}   per-round ratio {exec_ratio.text(unit='x', digits=2)}"
    )
    print(f"   app cards on screen, from App.run: {d['cards_from_run'].text(1000, ' ms', 0)}")


def stall(report: Report, tmp: Path, mb: int, smoke: bool) -> None:
    print(
        f"2. Event-loop stall while installing the tiny app ({mb} MB of weights at 50 MB/s), "
        f"load {load()}"
    )
    inst, data, root = asyncio.run(install_stall(tmp / "install", mb, 0.5 if smoke else 2.0))
    check_installed(report, inst, data, root)
    print(f"   idle app (baseline)  {summary(inst.idle)}")
    print(
        f"   during install       {summary(inst.busy)}   install {inst.phase} in {inst.took:.1f} s"
    )
    worst = max(inst.busy) * 1000
    print(
        f"   longest stall {worst:.1f} ms vs idle {max(inst.idle) * 1000:.1f} ms "
        f"(ratio {max(inst.busy) / max(max(inst.idle), 1e-4):.1f}x); goal <= 100 ms: "
        f"{report.goal('longest stall <= 100 ms', worst <= 100)}   load {load()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--part", choices=["paint", "install", "both"], default="both")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "HOME"), help=argparse.SUPPRESS)
    args = add_args(parser).parse_args()
    if args.child:
        child_paint(*args.child)
        return 0
    if args.smoke:
        args.rounds, args.mb = 1, 1
    report = Report.from_args("tui", args)

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-tui-") as tmp_name:
        tmp = Path(tmp_name)
        if args.part != "install":
            paint(report, tmp, args.rounds)
        if args.part != "paint":
            stall(report, tmp, args.mb, args.smoke)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
