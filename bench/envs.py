"""Build the same app env three ways in one run and print the ratios.

(a) `python -m venv` + pip, (b) raw `uv venv` + `uv pip install`, (c) Darkroom's env builder
(staged build, import check, lock, swap). Each runs twice: cold (empty cache) and warm (a
second app on the same machine).

Two scenarios, both by default:
- `app`: the bundled generator exactly as its recipe installs it (diffusers, transformers,
  gradio, ... + the local apps package + a CPU torch wheel); Darkroom checks the recipe's
  entry module (`check_import`), as it does on every real install.
- `torch`: only torch + torchvision, and Darkroom's check imports torch itself: the worst
  case for the check, since a fresh env has no bytecode and `import torch` compiles it.

Package sources: the find-links folders pip on this machine is configured with (local CPU
torch wheels), handed to uv and Darkroom as settings; everything else comes from PyPI.
pip uses its own configuration, which names the same folders.

    .venv/bin/python bench/envs.py [--scenario app|torch|both] [--workdir DIR] [--keep]

Goals (issue 4): Darkroom >= 10x faster than venv+pip, within 1.5x of raw uv, a second
torch env <= 2% extra disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from manager import envs, uvtool  # noqa: E402
from manager.bundled import apps_dir, recipes_dir  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.events import Event, Stage  # noqa: E402
from manager.fsutil import dir_size  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.recipe import load_recipe  # noqa: E402
from tests.fixtures.sources import read_pip_config  # noqa: E402
from tests.fixtures.tinymodels import local_cpu_torch  # noqa: E402


@dataclass
class Scenario:
    name: str
    packages: list[str]            # what pip and raw uv install (same as Darkroom's spec)
    spec: envs.EnvSpec             # Darkroom's spec; its app name is replaced per build


def scenarios(find_links: list[str]) -> dict[str, Scenario]:
    pin = local_cpu_torch(find_links)
    if pin is None:
        sys.exit("no local CPU torch wheel in pip's find-links folders; this bench needs one")
    recipe = load_recipe(recipes_dir() / "generator.yaml")
    app_pkgs = [*recipe.packages, pin, str(apps_dir().resolve())]
    torch_pkgs = [pin, "torchvision==0.28.0"]  # the CPU pair in this machine's wheels
    return {
        "app": Scenario("app", app_pkgs, envs.EnvSpec(
            app="x", python=recipe.python, packages=list(recipe.packages), local_packages=[apps_dir()],
            torch_packages=[pin], torch_backend="cpu", check_import=recipe.check_import)),
        "torch": Scenario("torch", torch_pkgs, envs.EnvSpec(
            app="x", python="3.11", torch_packages=torch_pkgs, torch_backend="cpu", check_import="torch")),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")


def pip_build(folder: Path, packages: list[str], cache: Path) -> None:
    run([sys.executable, "-m", "venv", str(folder)])
    env = {**os.environ, "PIP_CACHE_DIR": str(cache)}
    run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *packages], env=env)


def uv_build(home: Home, folder: Path, packages: list[str], settings: Settings) -> None:
    uv = str(uvtool.uv_bin())
    env = uvtool.child_env(home, "hardlink")
    run([uv, "venv", "-q", "--no-config", "--python", "3.11", str(folder)], env=env)
    run([uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python"),
         *uvtool.source_args(settings, "cpu"), *packages], env=env)


def bench(sc: Scenario, settings: Settings, work: Path) -> None:
    work.mkdir()
    t: dict[str, float] = {}
    t["pip cold"] = timed(lambda: pip_build(work / "pip-a", sc.packages, work / "pipcache"))
    t["pip warm"] = timed(lambda: pip_build(work / "pip-b", sc.packages, work / "pipcache"))

    uvhome = Home(work / "uvhome").ensure()
    t["uv cold"] = timed(lambda: uv_build(uvhome, uvhome.envs / "a", sc.packages, settings))
    t["uv warm"] = timed(lambda: uv_build(uvhome, uvhome.envs / "b", sc.packages, settings))

    home = Home(work / "darkroom").ensure()
    stamps: dict[str, dict[str, float]] = {}

    def build(app: str) -> None:
        marks: dict[str, float] = {}
        stamps[app] = marks

        def report(event: Event) -> None:
            if isinstance(event, Stage):
                marks.setdefault(event.stage, time.perf_counter())
        spec = envs.EnvSpec.from_dict({**sc.spec.to_dict(), "app": app})
        envs.build(home, settings, spec, report)

    t["darkroom cold"] = timed(lambda: build("bench-a"))
    t["darkroom warm"] = timed(lambda: build("bench-b"))
    check = {kind: stamps[app]["swapping"] - stamps[app]["checking"]
             for kind, app in (("cold", "bench-a"), ("warm", "bench-b"))}

    print(f"== scenario {sc.name}: {' '.join(Path(p).name if '/' in p else p for p in sc.packages)}")
    print(f"   darkroom checks `import {sc.spec.check_import}`")
    print(f"{'':18}{'seconds':>9}")
    for name, secs in t.items():
        print(f"{name:18}{secs:9.2f}")
    print(f"  (darkroom's import check: cold {check['cold']:.2f} s, warm {check['warm']:.2f} s)")
    for kind in ("cold", "warm"):
        dr = t[f"darkroom {kind}"]
        print(f"{kind}: venv+pip / darkroom = {t[f'pip {kind}'] / dr:5.1f}x   "
              f"darkroom / raw uv = {dr / t[f'uv {kind}']:4.2f}x   "
              f"(without the import check: {(dr - check[kind]) / t[f'uv {kind}']:4.2f}x)")
    one = dir_size(home.env_dir("bench-a"))
    both = dir_size(home.envs)
    pip_one = dir_size(work / "pip-a")
    pip_both = pip_one + dir_size(work / "pip-b")
    print(f"disk: first darkroom env {one / 1e6:.0f} MB; the second adds {(both - one) / 1e6:.1f} MB "
          f"({(both - one) / one:.2%}); venv+pip: {pip_one / 1e6:.0f} MB, the second adds "
          f"{(pip_both - pip_one) / 1e6:.0f} MB")
    print(f"hardlinks from the cache: {uvtool.hardlinks_work(home)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["app", "torch", "both"], default="both")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    src = read_pip_config()
    settings = Settings(find_links=src.find_links)
    work = Path(tempfile.mkdtemp(prefix="darkroom-bench-envs-", dir=args.workdir))
    print(f"sources: find_links={settings.find_links} (+ PyPI)\nscratch: {work}\n")
    chosen = ["app", "torch"] if args.scenario == "both" else [args.scenario]
    try:
        for name, sc in scenarios(settings.find_links).items():
            if name in chosen:
                bench(sc, settings, work / name)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
