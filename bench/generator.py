"""Generator app vs raw diffusers: the same tiny and mid-size FLUX pipelines (fp32, CPU),
one image at a time, through the app's HTTP API (?wait=true) and through a plain diffusers
script, each in its own process in the generator's env. Prints speed and peak-memory ratios.

    .venv/bin/python bench/generator.py [--runs 5]

Peak memory is the process's peak RSS while generating (reset after warm-up with
/proc/<pid>/clear_refs, Linux), so the app's fixed cost (Gradio, FastAPI) is reported apart.
Goal: app speed >= 0.97x raw; peak while generating <= raw + 5%.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def raw(app_env: AppEnv, pipeline: Path, size: str, runs: int) -> dict:
    w, h, steps = CASES[size]
    proc = app_env.run([str(ROOT / "bench" / "generator_raw.py"), str(pipeline), str(w), str(h), str(steps),
                        str(runs), str(WORK / f"raw-{size}")], env={"HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        sys.exit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def through_app(app_env: AppEnv, tiny, size: str, runs: int) -> dict:
    w, h, steps = CASES[size]
    app = start_app(app_env, "generator", WORK / f"app-{size}",
                    models_json({"flux-schnell": choice_from_folder(tiny, "fp32")}))
    try:
        app.wait_ready()
        body = {"prompt": "a lighthouse at dusk", "width": w, "height": h, "steps": steps, "guidance": 0.0}
        code, job, _ = app.post("/api/generate?wait=true", {**body, "seed": 0})  # warm-up
        assert code == 200, job
        Path(f"/proc/{app.proc.pid}/clear_refs").write_text("5")
        base = status_bytes(app.proc.pid, "VmRSS")
        times = []
        for i in range(runs):
            start = time.perf_counter()
            code, job, _ = app.post("/api/generate?wait=true", {**body, "seed": i + 1})
            times.append(time.perf_counter() - start)
            assert code == 200, job
        return {"times": times, "rss_before": base, "peak": status_bytes(app.proc.pid, "VmHWM")}
    finally:
        app.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    app_env = env()
    print(f"torch {app_env.packages.get('torch')}, diffusers {app_env.packages.get('diffusers')}, CPU, fp32")
    for size in CASES:
        tiny = build_tiny(app_env, WORK / "models", size=size)
        r = raw(app_env, tiny.pipeline, size, args.runs)
        a = through_app(app_env, tiny, size, args.runs)
        rt, at = statistics.median(r["times"]), statistics.median(a["times"])
        r_gen, a_gen = r["peak"] - r["rss_before"], a["peak"] - a["rss_before"]
        w, h, steps = CASES[size]
        print(f"{size:4} ({tiny.meta['params'] / 1e6:.2f} M transformer params, {w}x{h}, {steps} steps, "
              f"median of {args.runs}): raw {rt * 1000:.0f} ms, app {at * 1000:.0f} ms -> speed ratio "
              f"{rt / at:.3f}x | peak RSS raw {r['peak'] / 1e6:.0f} MB, app {a['peak'] / 1e6:.0f} MB "
              f"({a['peak'] / r['peak']:.3f}x) | growth while generating raw {r_gen / 1e6:.1f} MB, "
              f"app {a_gen / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
