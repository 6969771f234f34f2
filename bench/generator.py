"""Generator app vs raw diffusers: the same tiny and mid-size FLUX pipelines (fp32, CPU),
one image at a time, through the app's HTTP API (?wait=true) and through a plain diffusers
script, each in its own process in the generator's env. Prints speed and peak-memory ratios.

    .venv/bin/python bench/generator.py [--rounds 3] [--runs 7] [--sizes tiny,mid] [--no-page]
                                         [--env-home DIR] [--models DIR] [--smoke] [--strict]

Both processes are loaded side by side and images alternate between them (raw, app, app,
raw, ...), so a burst of load from elsewhere on a shared machine hits both; the speed ratio
is the median of the per-pair ratios over every round. Peak memory is each process's peak RSS while generating
(reset after warm-up with /proc/<pid>/clear_refs, Linux), the median over rounds of fresh
processes: glibc's heap makes single peaks wander by +-20 MB at the mid size. The app is measured twice: driven
through /api only (Gradio never imported: the page is built on the first visit to /), and
again after the web page was opened (Gradio imported, page built, its assets fetched).
Goal: app speed >= 0.97x raw; peak while generating <= raw + 5%.

Every image must be written (the app's job lists its files and they exist; the baseline's
PNG exists), or the bench fails with exit 1. Times are shown as medians with spread and
sample count; the speed ratio's spread is shown beside it, and a ratio whose spread holds
1.0 is said to show no difference. The env and the tiny models are the tests' own
(.pytest_cache/d/darkroom-generator-env and darkroom-tinymodels, built by the same fixtures
code), so the bench measures what the tests check. `--smoke`: tiny, one round, one pair,
no web page.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, against, load, ratios  # noqa: E402
from manager import envs  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.errors import DarkroomError  # noqa: E402
from manager.home import Home  # noqa: E402
from tests.fixtures.sources import read_pip_config  # noqa: E402
from tests.fixtures.tinymodels import (  # noqa: E402
    AppEnv,
    build_tiny,
    choice_from_folder,
    generator_spec,
    local_cpu_torch,
    models_json,
    start_app,
)

WORK = ROOT / ".darkroom-test" / "bench-generator"
SHARED = ROOT / ".pytest_cache" / "d"  # where the tests' fixtures keep the env and the models
CASES = {"tiny": (64, 64, 4), "mid": (512, 512, 4)}


def status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def env(report: Report, root: Path) -> AppEnv:
    sources = read_pip_config()
    pin = local_cpu_torch(sources.find_links)
    report.require(pin, "no local CPU torch wheel in the configured find-links folders")
    home = Home(root.resolve()).ensure()
    try:
        info = envs.build(home, Settings(find_links=sources.find_links), generator_spec(pin))
    except DarkroomError as exc:
        report.fail(f"the generator env could not be built: {exc.message} {exc.hint or ''}")
    return AppEnv(home=home, python=envs.env_python(home, "generator"), packages=info.packages)


class Raw:
    """bench/generator_raw.py as a child process that makes one image per command."""

    def __init__(self, app_env: AppEnv, pipeline: Path, size: str, report: Report) -> None:
        self.report = report
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = open(WORK / f"raw-{size}.log", "w")  # noqa: SIM115 (closed in stop)
        self.out = WORK / f"raw-{size}"
        self.proc = subprocess.Popen(
            [
                str(app_env.python),
                str(ROOT / "bench" / "generator_raw.py"),
                str(pipeline),
                str(self.out),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**env, "HF_HUB_OFFLINE": "1"},
        )
        self.ask_line()  # {"ready": true}

    def ask_line(self, req: dict | None = None) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if req is not None:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.report.fail(
                f"the raw baseline exited with {self.proc.wait()}: "
                f"{Path(self.log.name).read_text(errors='replace')[-1500:]}"
            )
        answer = json.loads(line)
        if req is not None and "seed" in req:
            png = self.out / f"{req['seed']}.png"
            self.report.require(
                png.is_file() and png.stat().st_size > 0, f"the raw baseline wrote no {png}"
            )
            png.unlink()
        return answer

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def app_image(app, body: dict, report: Report) -> float:
    start = time.perf_counter()
    code, job, _ = app.post("/api/generate?wait=true", body)
    took = time.perf_counter() - start
    report.require(
        code == 200 and job and job.get("status") == "done",
        f"the app's image failed (HTTP {code}): {job}\n{app.log_tail(1500)}",
    )
    files = [app.outputs / f for f in job.get("result", {}).get("files", [])]
    report.require(
        files and all(f.is_file() and f.stat().st_size > 0 for f in files),
        f"the app said done but wrote no image: {job.get('result')}",
    )
    return took


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def pairs(
    raw: Raw, app, case: dict, runs: int, first_seed: int, report: Report
) -> tuple[list[float], list[float]]:
    """`runs` images each, alternating which process goes first; seeds are the same for both."""
    raw_times, app_times = [], []
    for i in range(runs):
        body = {**case, "seed": first_seed + i}
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for who in order:
            time.sleep(0.2)  # let the other process's worker threads go to sleep
            if who == 0:
                raw_times.append(raw.ask_line(body)["time"])
            else:
                app_times.append(
                    app_image(
                        app, {"prompt": "a lighthouse at dusk", "guidance": 0.0, **body}, report
                    )
                )
    return raw_times, app_times


def measure(app_env: AppEnv, tiny, size: str, runs: int, page: bool, report: Report) -> dict:
    w, h, steps = CASES[size]
    case = {"width": w, "height": h, "steps": steps}
    app = start_app(
        app_env,
        "generator",
        WORK / f"app-{size}",
        models_json({"flux-schnell": choice_from_folder(tiny, "fp32")}),
    )
    raw = Raw(app_env, tiny.pipeline, size, report)
    try:
        try:
            app.wait_ready()
        except RuntimeError as exc:
            report.fail(f"the generator app did not become ready: {exc}")
        raw.ask_line({**case, "seed": 0})  # warm-up, both
        app_image(
            app, {"prompt": "a lighthouse at dusk", "guidance": 0.0, **case, "seed": 0}, report
        )
        rss_app_idle = status_bytes(app.proc.pid, "VmRSS")
        raw.ask_line({"cmd": "reset"})
        reset_peak(app.proc.pid)
        raw_t, app_t = pairs(raw, app, case, runs, 1, report)
        raw_peak = raw.ask_line({"cmd": "peak"})
        api_peak = status_bytes(app.proc.pid, "VmHWM")
        out = {
            "raw_t": raw_t,
            "app_t": app_t,
            "raw_peak": raw_peak["peak"],
            "api_peak": api_peak,
            "app_idle": rss_app_idle,
        }
        if page:  # open the web page: Gradio is imported and the page built now
            for path in ("/", "/config", "/theme.css"):
                code, _, _ = app.get(path, timeout=120)
                report.require(code == 200, f"the web page's {path} answered HTTP {code}")
            out["page_idle"] = status_bytes(app.proc.pid, "VmRSS")
            raw.ask_line({"cmd": "reset"})
            reset_peak(app.proc.pid)
            out["raw_t2"], out["page_t"] = pairs(raw, app, case, runs, 1 + runs, report)
            out["raw_peak"] = max(raw_peak["peak"], raw.ask_line({"cmd": "peak"})["peak"])
            out["page_peak"] = status_bytes(app.proc.pid, "VmHWM")
    finally:
        raw.stop()
        app.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="images per process and phase")
    parser.add_argument("--sizes", default=",".join(CASES))
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="fresh raw + app processes per size; peaks are the median over rounds",
    )
    parser.add_argument(
        "--no-page", action="store_true", help="skip the phase after the web page is opened"
    )
    parser.add_argument("--env-home", type=Path, default=SHARED / "darkroom-generator-env")
    parser.add_argument("--models", type=Path, default=SHARED / "darkroom-tinymodels")
    args = add_args(parser).parse_args()
    if args.smoke:
        args.sizes, args.rounds, args.runs, args.no_page = "tiny", 1, 1, True
    report = Report.from_args("generator", args)
    app_env = env(report, args.env_home)
    page = not args.no_page
    print(
        f"torch {app_env.packages.get('torch')}, diffusers {app_env.packages.get('diffusers')}, CPU, fp32, "
        f"{args.rounds} rounds x {args.runs} image pairs per phase, load {load()}"
    )
    for size in args.sizes.split(","):
        try:
            tiny = build_tiny(app_env, args.models, size=size)
        except RuntimeError as exc:
            report.fail(str(exc))
        rounds = [measure(app_env, tiny, size, args.runs, page, report) for _ in range(args.rounds)]
        report.done(f"{size}: {2 * args.rounds * (args.runs * (1 + page) + 1)} images written")
        t = {
            k: [x for r in rounds for x in r[k]]
            for k in rounds[0]
            if isinstance(rounds[0][k], list)
        }
        mem = {
            k: Spread.of(r[k] for r in rounds)
            for k in rounds[0]
            if not isinstance(rounds[0][k], list)
        }
        w, h, steps = CASES[size]
        raw_peak = mem["raw_peak"].median
        print(
            f"{size} ({tiny.meta['params'] / 1e6:.2f} M transformer params, {w}x{h}, {steps} steps), load {load()}:"
        )
        print(f"  time per image, raw  {Spread.of(t['raw_t']).text(1000, ' ms', 0)}")
        print(f"  time per image, app  {Spread.of(t['app_t']).text(1000, ' ms', 0)} (API only)")
        speed = ratios(t["raw_t"], t["app_t"])
        print(
            f"  speed raw/app per pair, API only: {speed.text(unit='x', digits=3)}{against(speed, 1.0)}  "
            f"goal >= 0.97x: {report.goal(f'{size}: speed >= 0.97x raw', speed.median >= 0.97, speed, 0.97)}"
        )
        api = mem["api_peak"].median / raw_peak
        print(
            f"  median peak RSS while generating: raw {mem['raw_peak'].text(1e-6, ' MB', 0)} | app API only "
            f"{mem['api_peak'].text(1e-6, ' MB', 0)} ({api:.3f}x)  goal <= 1.05x: "
            f"{report.goal(f'{size}: peak <= raw + 5%', api <= 1.05)}"
        )
        if page:
            t_page = ratios(t["raw_t2"], t["page_t"])
            print(
                f"  time per image, app after the page was opened {Spread.of(t['page_t']).text(1000, ' ms', 0)}; "
                f"speed raw/app per pair {t_page.text(unit='x', digits=3)}{against(t_page, 1.0)}"
            )
            print(
                f"  peak after the page was opened {mem['page_peak'].text(1e-6, ' MB', 0)} "
                f"({mem['page_peak'].median / raw_peak:.3f}x); app RSS at rest "
                f"{mem['app_idle'].median / 1e6:.0f} MB before the page, {mem['page_idle'].median / 1e6:.0f} MB after"
            )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
