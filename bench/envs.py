"""Build the same torch app three ways in one run and print the ratios.

(a) `python -m venv` + pip, (b) raw `uv venv` + `uv pip install`, (c) Darkroom's env builder
(staged build, import check, lock, swap). Each runs twice: cold (empty cache) and warm (a
second app on the same machine). Package sources are the ones pip on this machine is
configured with, handed to uv and Darkroom as settings, so all three install the same files.

    .venv/bin/python bench/envs.py [--packages torch==2.13.0 torchvision==0.28.0] [--workdir DIR]

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from manager import envs, uvtool  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.events import Event, Stage  # noqa: E402
from manager.fsutil import dir_size  # noqa: E402
from manager.home import Home  # noqa: E402
from tests.fixtures.sources import read_pip_config  # noqa: E402

DEFAULT_PACKAGES = ["torch==2.13.0", "torchvision==0.28.0"]  # the CPU pair in this machine's wheels


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
         *uvtool.source_args(settings), *packages], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=DEFAULT_PACKAGES)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    src = read_pip_config()
    settings = Settings(index_url=src.index_url, extra_index_urls=src.extra_index_urls, find_links=src.find_links)
    work = Path(tempfile.mkdtemp(prefix="darkroom-bench-envs-", dir=args.workdir))
    print(f"packages: {' '.join(args.packages)}")
    print(f"sources:  find_links={settings.find_links} extra_index_urls={settings.extra_index_urls} "
          f"index_url={settings.index_url}")
    print(f"scratch:  {work}\n")
    try:
        t: dict[str, float] = {}
        t["pip cold"] = timed(lambda: pip_build(work / "pip-a", args.packages, work / "pipcache"))
        t["pip warm"] = timed(lambda: pip_build(work / "pip-b", args.packages, work / "pipcache"))

        uvhome = Home(work / "uvhome").ensure()
        t["uv cold"] = timed(lambda: uv_build(uvhome, uvhome.envs / "a", args.packages, settings))
        t["uv warm"] = timed(lambda: uv_build(uvhome, uvhome.envs / "b", args.packages, settings))

        home = Home(work / "darkroom").ensure()
        stamps: dict[str, dict[str, float]] = {}

        def build(app: str) -> None:
            marks: dict[str, float] = {}
            stamps[app] = marks

            def report(event: Event) -> None:
                if isinstance(event, Stage):
                    marks.setdefault(event.stage, time.perf_counter())
            spec = envs.EnvSpec(app=app, python="3.11", torch_packages=args.packages,
                                torch_backend="cpu", check_import="torch")
            envs.build(home, settings, spec, report)

        t["darkroom cold"] = timed(lambda: build("bench-a"))
        t["darkroom warm"] = timed(lambda: build("bench-b"))
        check = {app: m["swapping"] - m["checking"] for app, m in stamps.items()}

        print(f"{'':18}{'seconds':>9}")
        for name, secs in t.items():
            print(f"{name:18}{secs:9.2f}")
        print(f"  (darkroom's import check of torch: cold {check['bench-a']:.2f} s, warm {check['bench-b']:.2f} s)\n")

        for kind in ("cold", "warm"):
            dr = t[f"darkroom {kind}"]
            print(f"{kind}: venv+pip / darkroom = {t[f'pip {kind}'] / dr:5.1f}x   "
                  f"darkroom / raw uv = {dr / t[f'uv {kind}']:4.2f}x   "
                  f"(without the import check: {(dr - check['bench-a' if kind == 'cold' else 'bench-b']) / t[f'uv {kind}']:4.2f}x)")

        one = dir_size(home.env_dir("bench-a"))
        both = dir_size(home.envs)
        pip_one = dir_size(work / "pip-a")
        pip_both = pip_one + dir_size(work / "pip-b")
        print(f"\ndisk: first darkroom env {one / 1e6:.0f} MB; the second adds {(both - one) / 1e6:.1f} MB "
              f"({(both - one) / one:.2%}); venv+pip: {pip_one / 1e6:.0f} MB, the second adds "
              f"{(pip_both - pip_one) / 1e6:.0f} MB")
        print(f"hardlinks from the cache: {uvtool.hardlinks_work(home)}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
