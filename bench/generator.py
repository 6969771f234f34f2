"""Generator app vs raw diffusers: the same tiny and mid-size FLUX pipelines (fp32, CPU),
one image at a time, through the app's HTTP API (?wait=true) and through a plain diffusers
script, each in its own process in the generator's env. Prints speed and peak-memory ratios.

    .venv/bin/python bench/generator.py [--rounds 3] [--runs 7] [--sizes tiny,mid]

Both processes are loaded side by side and images alternate between them (raw, app, app,
raw, ...), so a burst of load from elsewhere on a shared machine hits both; the speed ratio
is the median of the per-pair ratios over every round. Peak memory is each process's peak RSS while generating
(reset after warm-up with /proc/<pid>/clear_refs, Linux), the median over rounds of fresh
processes: glibc's heap makes single peaks wander by +-20 MB at the mid size. The app is measured twice: driven
through /api only (Gradio never imported: the page is built on the first visit to /), and
again after the web page was opened (Gradio imported, page built, its assets fetched).
Goal: app speed >= 0.97x raw; peak while generating <= raw + 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from manager import envs  # noqa: E402
from manager.config import Settings  # noqa: E402
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
CASES = {"tiny": (64, 64, 4), "mid": (512, 512, 4)}


def status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def env() -> AppEnv:
    sources = read_pip_config()
    pin = local_cpu_torch(sources.find_links)
    if pin is None:
        sys.exit("no local CPU torch wheel in the configured find-links folders")
    home = Home(WORK / "home").ensure()
    info = envs.build(home, Settings(find_links=sources.find_links), generator_spec(pin))
    return AppEnv(home=home, python=envs.env_python(home, "generator"), packages=info.packages)


class Raw:
    """bench/generator_raw.py as a child process that makes one image per command."""

    def __init__(self, app_env: AppEnv, pipeline: Path, size: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = open(WORK / f"raw-{size}.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(app_env.python), str(ROOT / "bench" / "generator_raw.py"), str(pipeline), str(WORK / f"raw-{size}")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**env, "HF_HUB_OFFLINE": "1"})
        self.ask_line()  # {"ready": true}

    def ask_line(self, req: dict | None = None) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if req is not None:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"the raw baseline exited with {self.proc.wait()}; see {self.log.name}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def app_image(app, body: dict) -> float:
    start = time.perf_counter()
    code, job, _ = app.post("/api/generate?wait=true", body)
    assert code == 200, job
    return time.perf_counter() - start


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def pairs(raw: Raw, app, case: dict, runs: int, first_seed: int) -> tuple[list[float], list[float]]:
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
                app_times.append(app_image(app, {"prompt": "a lighthouse at dusk", "guidance": 0.0, **body}))
    return raw_times, app_times


def measure(app_env: AppEnv, tiny, size: str, runs: int) -> dict:
    w, h, steps = CASES[size]
    case = {"width": w, "height": h, "steps": steps}
    app = start_app(app_env, "generator", WORK / f"app-{size}",
                    models_json({"flux-schnell": choice_from_folder(tiny, "fp32")}))
    raw = Raw(app_env, tiny.pipeline, size)
    try:
        app.wait_ready()
        raw.ask_line({**case, "seed": 0})  # warm-up, both
        app_image(app, {"prompt": "a lighthouse at dusk", "guidance": 0.0, **case, "seed": 0})
        rss_app_idle = status_bytes(app.proc.pid, "VmRSS")
        raw.ask_line({"cmd": "reset"})
        reset_peak(app.proc.pid)
        raw_t, app_t = pairs(raw, app, case, runs, 1)
        raw_peak = raw.ask_line({"cmd": "peak"})
        api_peak = status_bytes(app.proc.pid, "VmHWM")
        # open the web page: Gradio is imported and the page built now
        for path in ("/", "/config", "/theme.css"):
            code, _, _ = app.get(path, timeout=120)
            assert code == 200, (path, code)
        rss_page_idle = status_bytes(app.proc.pid, "VmRSS")
        raw.ask_line({"cmd": "reset"})
        reset_peak(app.proc.pid)
        raw_t2, page_t = pairs(raw, app, case, runs, 1 + runs)
        raw_peak2 = raw.ask_line({"cmd": "peak"})
        page_peak = status_bytes(app.proc.pid, "VmHWM")
    finally:
        raw.stop()
        app.stop()
    return {"raw_t": raw_t, "app_t": app_t, "raw_t2": raw_t2, "page_t": page_t,
            "raw_peak": max(raw_peak["peak"], raw_peak2["peak"]), "api_peak": api_peak, "page_peak": page_peak,
            "app_idle": rss_app_idle, "page_idle": rss_page_idle}


def ratio(raw_t: list[float], app_t: list[float]) -> float:
    return statistics.median(r / a for r, a in zip(raw_t, app_t, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7, help="images per process and phase")
    parser.add_argument("--sizes", default=",".join(CASES))
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh raw + app processes per size; peaks are the median over rounds")
    args = parser.parse_args()
    app_env = env()
    print(f"torch {app_env.packages.get('torch')}, diffusers {app_env.packages.get('diffusers')}, CPU, fp32, "
          f"{args.rounds} rounds x {args.runs} image pairs per phase")
    for size in args.sizes.split(","):
        tiny = build_tiny(app_env, WORK / "models", size=size)
        rounds = [measure(app_env, tiny, size, args.runs) for _ in range(args.rounds)]
        m = {k: ([t for r in rounds for t in r[k]] if isinstance(rounds[0][k], list)
                 else statistics.median(r[k] for r in rounds))
             for k in rounds[0]}
        w, h, steps = CASES[size]
        raw_peak = m["raw_peak"]
        spread = ", ".join(f"{r['raw_peak'] / 1e6:.0f}/{r['api_peak'] / 1e6:.0f}/{r['page_peak'] / 1e6:.0f}"
                           for r in rounds)
        print(f"{size} ({tiny.meta['params'] / 1e6:.2f} M transformer params, {w}x{h}, {steps} steps):")
        print(f"  speed, median of per-pair ratios: API only {ratio(m['raw_t'], m['app_t']):.3f}x "
              f"(median raw {statistics.median(m['raw_t']) * 1000:.0f} ms, app "
              f"{statistics.median(m['app_t']) * 1000:.0f} ms); after the page was opened "
              f"{ratio(m['raw_t2'], m['page_t']):.3f}x")
        print(f"  median peak RSS while generating: raw {raw_peak / 1e6:.0f} MB | app API only "
              f"{m['api_peak'] / 1e6:.0f} MB ({m['api_peak'] / raw_peak:.3f}x) | app after the page was opened "
              f"{m['page_peak'] / 1e6:.0f} MB ({m['page_peak'] / raw_peak:.3f}x)")
        print(f"  app RSS at rest: {m['app_idle'] / 1e6:.0f} MB before the page, {m['page_idle'] / 1e6:.0f} MB after")
        print(f"  peaks per round (raw/API only/page opened, MB): {spread}")


if __name__ == "__main__":
    main()
