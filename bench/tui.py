"""TUI responsiveness, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/tui.py [--rounds N] [--mb SIZE]

1. Time to first paint: a fresh process runs the Darkroom app headless and reports when the
   first frame is drawn, (a) from process start (imports included) and (b) from `App.run`
   (the app's own start-up). Baseline: a bare Textual app with one label, same measure.
   Goal for (b): at most 0.6 s. Also shown: until the app cards are on screen.
2. Event-loop stall while an install runs: the tiny app is installed through the Install
   screen (a real git clone, uv env from the local wheel folders, a weight file of SIZE MB
   from the local test hub paced at 50 MB/s) while a probe task measures how late the
   event loop wakes it. Baseline: the same probe with the app idle. Goal: longest stall at
   most 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    print(json.dumps({"imports": imported - began, "paint_from_run": marks["paint"] - imported,
                      "cards_from_run": marks["cards"] - imported,
                      "wall_paint": time.time() - (time.perf_counter() - marks["paint"])}))


def first_paint(kind: str, home: Path) -> dict[str, float]:
    start = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(home)], capture_output=True,
                         text=True, check=True, env={**os.environ, "DARKROOM_HOME": str(home)})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["paint_from_exec"] = data.pop("wall_paint") - start
    return data


# ---------------------------------------------------------------- 2. stall during an install


async def probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        lags.append(time.perf_counter() - t - PROBE_S)


def tiny_git_repo(where: Path) -> Path:
    from tests.fixtures.tinyapp import TINYAPP_DIR

    repo = where / "tinyapp"
    shutil.copytree(TINYAPP_DIR, repo, ignore=shutil.ignore_patterns("__pycache__", "recipe.yaml"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "v1"], ["tag", "v0.1.0"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


async def install_stall(tmp: Path, mb: int) -> tuple[list[float], list[float], float, str]:
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
    from tests.test_installer import SHA, WEIGHTS, recipe_text

    home = Home(tmp / "home").ensure()
    os.environ["DARKROOM_HOME"] = str(home.root)
    data = os.urandom(mb * 1_000_000)
    sources = read_pip_config()
    with LocalHub() as hub, pointed_at(hub.url):
        hub.add_file("tests/tiny-weights", "weights.bin", data)
        hub.faults.rate_bps = 50_000_000
        config.save(home, Settings(extra_index_urls=sources.extra_index_urls, find_links=sources.find_links,
                                   hf_endpoint=hub.url, port_start=20000, port_end=20100))
        text = recipe_text(tiny_git_repo(tmp), "v0.1.0", free_port())
        text = text.replace(f"size: {len(WEIGHTS)}", f"size: {len(data)}").replace(
            SHA, hashlib.sha256(data).hexdigest())
        recipe = tmp / "tiny.yaml"
        recipe.write_text(text)

        app = DarkroomApp(home, load_profile("cpu-only-16gb"))
        async with app.run_test(size=(80, 24)) as pilot:
            while not isinstance(app.focused, AppCard):
                await pilot.pause(0.05)
            idle: list[float] = []
            stop = asyncio.Event()
            task = asyncio.create_task(probe(stop, idle))
            await asyncio.sleep(2.0)
            stop.set()
            await task

            screen = InstallScreen(str(recipe))
            app.push_screen(screen)
            while screen.pv is None:
                await pilot.pause(0.05)
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
            phase = screen.phase
        from manager.supervisor import control

        control.stop(home, "tiny")
    return idle, busy, took, phase


def summary(lags: list[float]) -> str:
    ms = sorted(x * 1000 for x in lags)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"max {ms[-1]:6.1f} ms, p99 {p99:5.1f} ms, median {statistics.median(ms):4.1f} ms ({len(ms)} wakes)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_paint(*args.child)
        return

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-tui-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"1. Time to first paint, best of {args.rounds} fresh processes (80x24, headless)")
        results: dict[str, list[dict]] = {"bare": [], "darkroom": []}
        first_paint("darkroom", tmp / "warm")          # compile bytecode once, untimed
        for _ in range(args.rounds):
            for kind in results:
                results[kind].append(first_paint(kind, tmp / "paint"))
        best = {k: {m: min(r[m] for r in rs) for m in rs[0]} for k, rs in results.items()}
        b, d = best["bare"], best["darkroom"]
        print(f"   imports            bare textual {b['imports']:.3f} s   darkroom {d['imports']:.3f} s")
        print(f"   from App.run       bare textual {b['paint_from_run']:.3f} s   darkroom "
              f"{d['paint_from_run']:.3f} s   ratio {d['paint_from_run'] / b['paint_from_run']:.2f}x"
              f"   goal <= 0.6 s: {'met' if d['paint_from_run'] <= 0.6 else 'NOT met'}")
        print(f"   from process start bare textual {b['paint_from_exec']:.3f} s   darkroom "
              f"{d['paint_from_exec']:.3f} s   ratio {d['paint_from_exec'] / b['paint_from_exec']:.2f}x")
        print(f"   app cards on screen, from App.run: {d['cards_from_run']:.3f} s")

        print(f"2. Event-loop stall while installing the tiny app ({args.mb} MB of weights at 50 MB/s)")
        idle, busy, took, phase = asyncio.run(install_stall(tmp / "install", args.mb))
        print(f"   idle app (baseline)  {summary(idle)}")
        print(f"   during install       {summary(busy)}   install {phase} in {took:.1f} s")
        worst = max(busy) * 1000
        print(f"   longest stall {worst:.1f} ms vs idle {max(idle) * 1000:.1f} ms "
              f"(ratio {max(busy) / max(max(idle), 1e-4):.1f}x); goal <= 100 ms: "
              f"{'met' if worst <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
