"""Workflow runner throughput: images/s run locally (one at a time) vs as Ray tasks on N
local workers (each with its own replica of the app), and the cost of resuming a batch.

    .venv/bin/python bench/workflow.py [--images 40] [--work-ms 200] [--workers 2] [--mode cpu|device]
                                        [--rounds 2] [--smoke] [--strict]

The app is a small app-kit app whose task burns `work-ms` of CPU per image (single-threaded,
like one model on one core), so N workers can only scale if the runner keeps them all busy;
with --mode device it waits instead (a model on a GPU), which shows the runner's own limit
where the cores are few or shared.
Rates are steady-state (first to last finished image, Ray start-up excluded; shown apart).
Goal: Ray on N workers >= 0.8 x N x one worker. Resume: the remaining half of a batch killed
(-9) half-way vs the same number of images fresh, and a rerun of a finished batch.

Every batch must complete: its summary must count every image done and none failed, and the
output folder must hold one image per input, or the bench fails (exit 1) with the batch's
error. Local and Ray-N batches alternate for `--rounds` rounds; the speed-up is per round,
shown as median with spread and count (bench/_stats.py). `--smoke`: 6 images of 20 ms on one
replica, local batches and the resume only (`--no-ray`: starting Ray costs ~30 s on a loaded
2-core machine, more than the rest of the smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, against, load  # noqa: E402
from manager import envs  # noqa: E402
from manager.bundled import apps_dir, recipes_dir  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.errors import DarkroomError  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.recipe import load_recipe  # noqa: E402
from tests.fixtures.sources import read_pip_config  # noqa: E402
from tests.fixtures.tinymodels import AppEnv, AppProcess, start_app  # noqa: E402

WORK = ROOT / ".darkroom-test" / "bench-workflow"
SHARED_HOME = ROOT / ".pytest_cache" / "d" / "darkroom-generator-env"  # the tests' env, if built

TOOL = """
import io, base64, sys, time
from pydantic import BaseModel
from appkit.outputs import save_png
from appkit.runtime import AppDef, Task, TaskResult
from appkit.server import serve

class Req(BaseModel):
    image: str
    work_ms: float = 100
    busy: bool = True

def run(runtime, _loaded, req, job):
    from PIL import Image, ImageOps
    img = Image.open(io.BytesIO(base64.b64decode(req.image))).convert("RGB")
    if req.busy:   # CPU work, as a model on one core would do
        end = time.thread_time() + req.work_ms / 1000
        while time.thread_time() < end:
            sum(range(2000))
    else:          # waiting, as for a model on a GPU
        time.sleep(req.work_ms / 1000)
    path = save_png(ImageOps.invert(img), runtime.settings.outputs, job.id, {}, "benchtool")
    return TaskResult(files=[path.relative_to(runtime.settings.outputs).as_posix()])

APP = AppDef(name="benchtool", version="0.1", load=lambda *_: object(), tasks=[Task("work", Req, run)])
if __name__ == "__main__":
    sys.exit(serve(APP))
"""


def workflow_env(report: Report, root: Path | None) -> AppEnv:
    """The workflow recipe's env, in the tests' generator data folder when there is one (as
    tests/test_workflow.py builds it: both link from one uv cache)."""
    sources = read_pip_config()
    home = Home(
        (root or (SHARED_HOME if SHARED_HOME.is_dir() else WORK / "home")).resolve()
    ).ensure()
    recipe = load_recipe(recipes_dir() / "workflow.yaml")
    spec = envs.EnvSpec(
        app="workflow",
        python=recipe.python,
        packages=list(recipe.packages),
        local_packages=[apps_dir()],
        check_import=recipe.check_import,
    )
    try:
        info = envs.build(home, Settings(find_links=sources.find_links), spec)
    except DarkroomError as exc:
        report.fail(f"the workflow env could not be built: {exc.message} {exc.hint or ''}")
    return AppEnv(home=home, python=envs.env_python(home, "workflow"), packages=info.packages)


def images(env: AppEnv, folder: Path, n: int) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    code = (
        "import sys; from PIL import Image\n"
        "for i in range(int(sys.argv[2])):\n"
        "    Image.new('RGB', (64, 48), (i % 256, 90, 200)).save(f'{sys.argv[1]}/im{i:04d}.png')\n"
    )
    subprocess.run([str(env.python), "-c", code, str(folder), str(n)], check=True)
    return folder


def batch(
    env: AppEnv,
    preset: Path,
    src: Path,
    out: Path,
    urls: list[str],
    *extra: str,
    report: Report,
    kill_after: int = 0,
) -> dict:
    """Run one batch; times taken when each event line arrives. Unless killed on purpose, it
    must finish every image (summary and output files), or the bench fails."""
    argv = [
        str(env.python),
        "-m",
        "workflow.cli",
        "run",
        str(preset),
        str(src),
        "--out",
        str(out),
        "--json",
        *extra,
        *[x for u in urls for x in ("--url", f"benchtool={u}")],
    ]
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean["RAY_USAGE_STATS_ENABLED"] = "0"
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=clean)
    finished: list[float] = []
    summary: dict = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "item":
            finished.append(time.monotonic() - t0)
            if kill_after and len(finished) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
        elif event["type"] == "summary":
            summary = event
        elif event["type"] == "error":
            report.fail(f"the batch failed: {event['message']}")
    proc.wait()
    wall = time.monotonic() - t0
    if not kill_after:
        total = len(list(src.glob("*.png")))
        report.require(
            proc.returncode == 0 and summary,
            f"the batch exited {proc.returncode} without a summary",
        )
        report.require(
            summary["done"] == summary["total"] == total and not summary["failed"],
            f"the batch did not finish every image: {summary}",
        )
        written = [
            p for p in out.rglob("*.png") if ".workflow" not in p.parts and p.stat().st_size > 0
        ]
        report.require(
            len(written) >= total,
            f"the batch wrote {len(written)} images for {total} inputs in {out}",
        )
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 2 else 0.0
    return {
        "wall_s": wall,
        "steady_rate": steady,
        "first_s": finished[0] if finished else None,
        "n": len(finished),
        "summary": summary,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--work-ms", type=float, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="local and Ray-N batches, alternating")
    ap.add_argument(
        "--mode",
        choices=["cpu", "device"],
        default="cpu",
        help="cpu: each image burns work-ms of CPU; device: it waits work-ms (a GPU model)",
    )
    ap.add_argument("--no-ray", action="store_true", help="local batches and the resume only")
    ap.add_argument(
        "--env-home",
        type=Path,
        default=None,
        help=f"data folder for the env (default {SHARED_HOME})",
    )
    args = add_args(ap).parse_args()
    if args.smoke:
        args.images, args.work_ms, args.rounds, args.workers, args.no_ray = 6, 20, 1, 1, True
    report = Report.from_args("workflow", args)
    env = workflow_env(report, args.env_home)
    WORK.mkdir(parents=True, exist_ok=True)
    tool = WORK / "tool"
    tool.mkdir(exist_ok=True)
    (tool / "benchtool.py").write_text(textwrap.dedent(TOOL))
    preset = WORK / "bench.yaml"
    preset.write_text(
        json.dumps(
            {
                "name": "bench",
                "steps": [
                    {
                        "name": "work",
                        "app": "benchtool",
                        "task": "work",
                        "params": {"work_ms": args.work_ms, "busy": args.mode == "cpu"},
                    }
                ],
            }
        )
    )
    src = images(env, WORK / "in", args.images)
    # one replica per worker, each app's torch-free CPU work on one thread
    apps: list[AppProcess] = []
    try:
        for i in range(args.workers):
            app = start_app(
                env,
                "benchtool",
                WORK / f"replica{i}",
                "",
                {"PYTHONPATH": str(tool), "OMP_NUM_THREADS": "1"},
            )
            apps.append(app)
            try:
                app.wait_ready(60)
            except RuntimeError as exc:
                report.fail(f"the bench app did not start: {exc}")
        urls = [a.url for a in apps]
        n = args.workers
        rates: dict[str, list[float]] = {"local": [], f"ray-{n}": [], "ray-1": []}

        def fresh(name: str, *extra: str, use: list[str]) -> dict:
            out = WORK / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            r = batch(env, preset, src, out, use, *extra, report=report)
            rates[name].append(r["steady_rate"])
            print(
                f"{name:>10}: {r['steady_rate']:.2f} images/s steady, {r['wall_s']:.1f} s wall "
                f"(first image after {r['first_s']:.1f} s), {r['n']} images, load {load()}",
                flush=True,
            )
            return r

        for i in range(args.rounds):
            runs = [("local", (), urls[:1])]
            if not args.no_ray:
                runs.append((f"ray-{n}", ("--ray", "local", "--workers", str(n)), urls))
            for name, extra, use in runs if i % 2 == 0 else runs[::-1]:
                fresh(name, *extra, use=use)
        if not args.no_ray:
            fresh("ray-1", "--ray", "local", "--workers", "1", use=urls[:1])
        report.done(f"{sum(map(len, rates.values()))} batches of {args.images} complete")
        if rates[f"ray-{n}"]:
            speedup = Spread.of(
                r / lo for r, lo in zip(rates[f"ray-{n}"], rates["local"], strict=True)
            )
            print(
                f"\nRay {n} workers vs local, per round: {speedup.text(unit='x', digits=2)}{against(speedup, 1.0)}"
                f"  goal >= {0.8 * n:.1f}x: "
                f"{report.goal(f'ray-{n} >= {0.8 * n:.1f}x local', speedup.median >= 0.8 * n, speedup, 0.8 * n)}"
            )
        if rates["ray-1"]:
            print(
                f"Ray 1 worker vs local (one batch): {rates['ray-1'][0] / Spread.of(rates['local']).median:.2f}x"
            )

        # resume: kill -9 after half, rerun; vs the same number fresh
        half = args.images // 2
        out = WORK / "out-resume"
        shutil.rmtree(out, ignore_errors=True)
        batch(env, preset, src, out, urls[:1], report=report, kill_after=half)
        resumed = batch(env, preset, src, out, urls[:1], report=report)
        left = resumed["summary"]["processed"]
        report.require(
            0 < left < args.images, f"the resumed batch redid {left} of {args.images} images"
        )
        small = images(env, WORK / "in-half", args.images - resumed["summary"]["skipped"])
        shutil.rmtree(WORK / "out-half", ignore_errors=True)
        fresh_half = batch(env, preset, small, WORK / "out-half", urls[:1], report=report)
        noop = batch(env, preset, src, out, urls[:1], report=report)
        report.require(
            noop["summary"]["processed"] == 0,
            f"a rerun of a finished batch redid {noop['summary']}",
        )
        report.done(f"resume after kill -9 redid {left} of {args.images}")
        print(
            f"\nresume after kill -9 at {half}/{args.images}: {resumed['wall_s']:.2f} s for "
            f"{left} left vs {fresh_half['wall_s']:.2f} s fresh "
            f"({resumed['wall_s'] / fresh_half['wall_s']:.2f}x, single runs), load {load()}"
        )
        print(
            f"rerun of a finished batch of {args.images}: {noop['wall_s']:.2f} s "
            f"(processed {noop['summary']['processed']})"
        )
    finally:
        for app in apps:
            app.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
