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

    .venv/bin/python bench/envs.py [--scenario app|torch|both] [--rounds 3] [--no-pip]
                                   [--workdir DIR] [--keep] [--smoke] [--strict]

The cold builds run once each (a cold cache can only be cold once per scratch folder); the
warm builds of raw uv and Darkroom are repeated `--rounds` times, alternating, and their
ratio is shown per round with its spread. Every env built must import what its scenario
checks (pip's and raw uv's envs are asked with their own Python); a build that fails ends
the bench with exit 1 and the tool's own error.

Goals (issue 4): Darkroom >= 10x faster than venv+pip, within 1.5x of raw uv, a second
torch env <= 2% extra disk.

`--smoke`: the `tiny` scenario (one small package from PyPI, `import packaging`), no pip
baseline, one round; it checks that the bench still builds and verifies envs, nothing more.
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

from bench._stats import Report, Spread, add_args, against, load  # noqa: E402
from manager import envs, uvtool  # noqa: E402
from manager.bundled import apps_dir, recipes_dir  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.errors import DarkroomError  # noqa: E402
from manager.events import Event, Stage  # noqa: E402
from manager.fsutil import dir_size  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.recipe import load_recipe  # noqa: E402
from tests.fixtures.sources import read_pip_config  # noqa: E402
from tests.fixtures.tinymodels import local_cpu_torch  # noqa: E402


@dataclass
class Scenario:
    name: str
    packages: list[str]  # what pip and raw uv install (same as Darkroom's spec)
    spec: envs.EnvSpec  # Darkroom's spec; its app name is replaced per build


def scenarios(find_links: list[str], report: Report, chosen: list[str]) -> dict[str, Scenario]:
    out = {
        "tiny": Scenario(
            "tiny",
            ["packaging"],
            envs.EnvSpec(app="x", python="3.11", packages=["packaging"], check_import="packaging"),
        )
    }
    if chosen == ["tiny"]:
        return out
    pin = local_cpu_torch(find_links)
    report.require(
        pin, "no local CPU torch wheel in pip's find-links folders; this bench needs one"
    )
    recipe = load_recipe(recipes_dir() / "generator.yaml")
    app_pkgs = [*recipe.packages, pin, str(apps_dir().resolve())]
    torch_pkgs = [pin, "torchvision==0.28.0"]  # the CPU pair in this machine's wheels
    return {
        **out,
        "app": Scenario(
            "app",
            app_pkgs,
            envs.EnvSpec(
                app="x",
                python=recipe.python,
                packages=list(recipe.packages),
                local_packages=[apps_dir()],
                torch_packages=[pin],
                torch_backend="cpu",
                check_import=recipe.check_import,
            ),
        ),
        "torch": Scenario(
            "torch",
            torch_pkgs,
            envs.EnvSpec(
                app="x",
                python="3.11",
                torch_packages=torch_pkgs,
                torch_backend="cpu",
                check_import="torch",
            ),
        ),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def disk_of(*folders: Path) -> int:
    """Bytes used by `folders` together, each hardlinked inode once (as `dir_size` does for one)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def run(cmd: list[str], report: Report, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    report.require(
        done.returncode == 0, f"{' '.join(cmd[:4])} ... failed: {done.stderr.strip()[-2000:]}"
    )


def imports(python: Path, module: str, report: Report, who: str) -> None:
    """The env built must import what the scenario checks, or its time means nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, text=True, env=env
    )
    report.require(
        done.returncode == 0, f"{who}'s env cannot import {module}: {done.stderr.strip()[-1500:]}"
    )


def pip_build(folder: Path, packages: list[str], cache: Path, report: Report) -> None:
    run([sys.executable, "-m", "venv", str(folder)], report)
    env = {**os.environ, "PIP_CACHE_DIR": str(cache)}
    run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *packages], report, env=env)


def uv_build(
    home: Home, folder: Path, packages: list[str], settings: Settings, report: Report
) -> None:
    uv = str(uvtool.uv_bin())
    env = uvtool.child_env(home, "hardlink")
    run([uv, "venv", "-q", "--no-config", "--python", "3.11", str(folder)], report, env=env)
    run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(folder / "bin" / "python"),
            *uvtool.source_args(settings, "cpu"),
            *packages,
        ],
        report,
        env=env,
    )


def bench(
    sc: Scenario, settings: Settings, work: Path, report: Report, rounds: int, with_pip: bool
) -> None:
    work.mkdir()
    module = sc.spec.check_import or "sys"
    t: dict[str, list[float]] = {
        "pip cold": [],
        "pip warm": [],
        "uv cold": [],
        "uv warm": [],
        "darkroom cold": [],
        "darkroom warm": [],
    }
    if with_pip:
        t["pip cold"].append(
            timed(lambda: pip_build(work / "pip-a", sc.packages, work / "pipcache", report))
        )
        t["pip warm"].append(
            timed(lambda: pip_build(work / "pip-b", sc.packages, work / "pipcache", report))
        )
        for name in ("pip-a", "pip-b"):
            imports(work / name / "bin" / "python", module, report, "venv+pip")

    uvhome = Home(work / "uvhome").ensure()
    home = Home(work / "darkroom").ensure()
    stamps: dict[str, dict[str, float]] = {}

    def uv(name: str) -> None:
        uv_build(uvhome, uvhome.envs / name, sc.packages, settings, report)

    def build(app: str) -> None:
        marks: dict[str, float] = {}
        stamps[app] = marks

        def seen(event: Event) -> None:
            if isinstance(event, Stage):
                marks.setdefault(event.stage, time.perf_counter())

        spec = envs.EnvSpec.from_dict({**sc.spec.to_dict(), "app": app})
        try:
            info = envs.build(home, settings, spec, seen)
        except DarkroomError as exc:
            report.fail(f"Darkroom's build of {app} failed: {exc.message} {exc.hint or ''}")
        report.require(
            not info.reused and info.python.is_file(), f"Darkroom's build of {app} left no env"
        )

    t["uv cold"].append(timed(lambda: uv("a")))
    t["darkroom cold"].append(timed(lambda: build("bench-a")))
    for i in range(rounds):
        steps = [
            ("uv warm", lambda i=i: uv(f"w{i}")),
            ("darkroom warm", lambda i=i: build(f"bench-w{i}")),
        ]
        for key, fn in steps if i % 2 == 0 else steps[::-1]:
            t[key].append(timed(fn))
    imports(uvhome.envs / "a" / "bin" / "python", module, report, "raw uv")
    imports(envs.env_python(home, "bench-a"), module, report, "Darkroom")
    report.done(f"{sc.name}: {2 + 2 * rounds + 2 * with_pip} envs built and importing {module}")
    check = {
        "cold": [stamps["bench-a"]["swapping"] - stamps["bench-a"]["checking"]],
        "warm": [
            stamps[f"bench-w{i}"]["swapping"] - stamps[f"bench-w{i}"]["checking"]
            for i in range(rounds)
        ],
    }

    print(
        f"== scenario {sc.name}: {' '.join(Path(p).name if '/' in p else p for p in sc.packages)}, load {load()}"
    )
    print(f"   darkroom checks `import {sc.spec.check_import}`")
    for name, secs in t.items():
        if secs:
            print(f"  {name:15} {Spread.of(secs).text(unit=' s', digits=2)}")
    print(
        f"  (darkroom's import check: cold {Spread.of(check['cold']).text(unit=' s', digits=2)}, "
        f"warm {Spread.of(check['warm']).text(unit=' s', digits=2)})"
    )
    for kind in ("cold", "warm"):
        dr, uvt = t[f"darkroom {kind}"], t[f"uv {kind}"]
        vs_uv = Spread.of(d / u for d, u in zip(dr, uvt, strict=True))
        bare = Spread.of((d - c) / u for d, c, u in zip(dr, check[kind], uvt, strict=True))
        line = (
            f"  {kind}: darkroom / raw uv = {vs_uv.text(unit='x', digits=2)}{against(vs_uv, 1.0)}"
        )
        ok = vs_uv.median <= 1.5
        line += f"  goal <= 1.5x: {report.goal(f'{sc.name} {kind}: within 1.5x of raw uv', ok, vs_uv, 1.5)}"
        print(line + f"  (without the import check: {bare.text(unit='x', digits=2)})")
        if t[f"pip {kind}"]:
            vs_pip = t[f"pip {kind}"][0] / Spread.of(dr).median
            verdict = (
                report.goal(f"{sc.name}: 10x faster than pip", vs_pip >= 10)
                if kind == "cold"
                else "reported"
            )
            print(
                f"  {kind}: venv+pip / darkroom = {vs_pip:5.1f}x (one pip build; goal >= 10x cold: {verdict})"
            )
    one = dir_size(home.env_dir("bench-a"))
    second = dir_size(home.env_dir("bench-w0"))
    both = disk_of(home.env_dir("bench-a"), home.env_dir("bench-w0"))
    extra = (both - one) / one
    print(
        f"  disk: first darkroom env {one / 1e6:.0f} MB (the second alone {second / 1e6:.0f} MB); the second "
        f"adds {(both - one) / 1e6:.1f} MB ({extra:.2%}); goal <= 2%: "
        f"{report.goal(f'{sc.name}: second env <= 2% disk', extra <= 0.02)}"
    )
    if with_pip:
        pip_one = dir_size(work / "pip-a")
        print(
            f"  venv+pip: {pip_one / 1e6:.0f} MB, the second adds {dir_size(work / 'pip-b') / 1e6:.0f} MB"
        )
    print(f"  hardlinks from the cache: {uvtool.hardlinks_work(home)}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["app", "torch", "both", "tiny"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="warm builds of raw uv and Darkroom")
    parser.add_argument("--no-pip", action="store_true", help="skip the venv+pip baseline (slow)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = add_args(parser).parse_args()
    if args.smoke:
        args.scenario, args.rounds, args.no_pip = "tiny", 1, True
    report = Report.from_args("envs", args)

    src = read_pip_config()
    settings = Settings(find_links=src.find_links)
    work = Path(tempfile.mkdtemp(prefix="darkroom-bench-envs-", dir=args.workdir))
    print(f"sources: find_links={settings.find_links} (+ PyPI)\nscratch: {work}\n")
    chosen = ["app", "torch"] if args.scenario == "both" else [args.scenario]
    try:
        for name, sc in scenarios(settings.find_links, report, chosen).items():
            if name in chosen:
                bench(sc, settings, work / name, report, args.rounds, not args.no_pip)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
