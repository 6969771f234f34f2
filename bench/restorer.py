"""Restorer benchmark: the app's upscale step vs a raw spandrel call on the same model and
image, in one run; and peak memory of the tiled upscale at two tile sizes on a large image.

    .venv/bin/python bench/restorer.py [--size 256] [--large 2048] [--repeat 9] [--full-size] [--speed-only]
                                        [--env-home DIR] [--models DIR] [--smoke] [--strict]

Builds (or reuses) the restorer env and the random-weight checkpoints of the test factory
(an ESRGAN x4 with 16 filters and 2 blocks; --full-size: Real-ESRGAN x4plus's own size, 64
filters and 23 blocks, random weights), then runs everything inside the app's env.

- raw: a plain script's call - ModelLoader, uint8 HWC -> float NCHW, the model, back to a
  contiguous uint8 HWC array - with no app code; run on a worker thread like the app's, and
  also on the main thread ("raw, main thread"): on this machine torch ran the same call ~10%
  faster on a second thread than on the main one, so only same-thread figures are compared.
- app: the restorer's own `restore.process` (scratches, inpaint and faces off, upscale on),
  on a net loaded by the app's loader, on one worker thread as the app's job queue runs it.
  "whole" = tile 0; "tiled" = tile size/2 (4 tiles + 16 px overlap: the price of bounded memory).
Each round runs the three in a rotating order; the figures are medians (and minimums) over
the rounds. Ratio = raw time / app time (goal >= 0.95). The machine's load average is printed:
on a shared machine, compare the ratio, not the times.
Peak memory: each tile size in a fresh process (ru_maxrss on the CPU; torch.cuda.max_memory_allocated
on a GPU); and the scratch U-Net's, at two image sizes (it works at a fixed size).

The work is checked: the app's output must equal the raw call's (within 2 levels) and have
the upscaled shape, every memory run must produce its full-size output, or the bench fails
(exit 1) with the child's error. Ratios are per round (raw and app timed in the same round),
shown as median with spread and count (bench/_stats.py). The env and checkpoints are the
tests' own (.pytest_cache/d, built by tests/fixtures/tinyrestore.py's code).
`--smoke`: 64x64, one round, speed only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, against, load, ratios  # noqa: E402

SPEED = r"""
import json, os, statistics, sys, tempfile, time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
import numpy as np, torch, spandrel
from restorer import loading, restore
path, size, repeat, full = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
dev = "cuda" if torch.cuda.is_available() else "cpu"
if full:
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.manual_seed(0)
    path = os.path.join(tempfile.mkdtemp(), "RealESRGAN_x4plus.pth")
    torch.save({"params_ema": ESRGAN(num_filters=64, num_blocks=23, scale=4).state_dict()}, path)

# the app's way: its loader and device placement, its request, its pipeline function
desc, _ = loading.load_spandrel(Path(path))
dtype_name = loading.place(desc, dev)
box = loading.Toolbox(device=dev, nets={"up": loading.Net(
    model_id="up", arch=desc.architecture.name, purpose=desc.purpose, scale=int(desc.scale), descriptor=desc,
    dtype=dtype_name, path=Path(path))})
def request(tile):
    return restore.RestoreRequest(image="-", scratches=False, inpaint=False, faces=False, upscale=True,
                                  scale=int(desc.scale), tile=tile, tile_overlap=16)
whole, tiled = request(0), request(size // 2)
worker = ThreadPoolExecutor(1)  # the job queue's single worker thread
def app(req):
    return worker.submit(lambda: restore.process(box, rgb, req)[0]).result()

# the raw way: spandrel's loader and a plain conversion, same dtype as the app chose
d = spandrel.ModelLoader().load_from_file(path).to(dev).eval()
dt = torch.float16 if dtype_name == "float16" else torch.float32
d.to(dt)
def raw():
    x = torch.from_numpy(rgb).to(dev).permute(2, 0, 1).unsqueeze(0).to(dt).div(255)
    with torch.inference_mode():
        y = d(x)
    return (y[0].float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()

rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
runs = [("raw", lambda: worker.submit(raw).result()), ("raw_main", raw),
        ("app_whole", lambda: app(whole)), ("app_tiled", lambda: app(tiled))]
ref = raw()
assert ref.shape == (size * int(desc.scale), size * int(desc.scale), 3), f"raw output is {ref.shape}"
for name, fn in runs[2:]:
    out = fn()
    assert out.shape == ref.shape, f"{name} output is {out.shape}, not {ref.shape}"
    diff = np.abs(out.astype(int) - ref).max()
    assert diff <= 2, f"{name} differs from raw by {diff}"
times = {name: [] for name, _ in runs}
load = [os.getloadavg()[0]]
for i in range(repeat):
    for name, fn in runs[i % 4:] + runs[:i % 4]:
        if dev == "cuda": torch.cuda.synchronize()
        t = time.perf_counter(); fn()
        if dev == "cuda": torch.cuda.synchronize()
        times[name].append(time.perf_counter() - t)
load.append(os.getloadavg()[0])
threads = [torch.get_num_threads(), worker.submit(torch.get_num_threads).result()]

# The same two paths around a model that costs nothing (nearest x4): what is left is each
# path's own work (conversions, copies, the worker hand-off), free of the model's noise.
class Nearest:
    model = torch.nn.Conv2d(1, 1, 1).to(dev, dt)
    def __call__(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=int(desc.scale), mode="nearest")
null = Nearest()
box.nets["up"].descriptor = null
d = null
for name, fn in runs: fn()
overhead = {name: [] for name, _ in runs}
for i in range(repeat * 5):
    for name, fn in runs[i % 4:] + runs[:i % 4]:
        if dev == "cuda": torch.cuda.synchronize()
        t = time.perf_counter(); fn()
        if dev == "cuda": torch.cuda.synchronize()
        overhead[name].append(time.perf_counter() - t)
print(json.dumps({"times": times, "median": {k: statistics.median(v) for k, v in times.items()},
                  "min": {k: min(v) for k, v in times.items()},
                  "null_median": {k: statistics.median(v) for k, v in overhead.items()},
                  "device": dev, "dtype": dtype_name,
                  "load": load, "threads": threads, "cpus": os.cpu_count()}))
"""

MEMORY = r"""
import json, resource, sys
import numpy as np, torch, spandrel
from restorer.tiling import run_tiled
path, size, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dev = "cuda" if torch.cuda.is_available() else "cpu"
d = spandrel.ModelLoader().load_from_file(path).to(dev).eval()
rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = run_tiled(lambda x, _m: d(x), rgb, d.scale, tile, 16, dev, torch.float32)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert out.shape == (size * d.scale, size * d.scale, 3), f"tiled output is {out.shape}"
gpu = torch.cuda.max_memory_allocated() if dev == "cuda" else 0
print(json.dumps({"tile": tile, "rss_peak_mb": peak / 1024, "rss_before_mb": base / 1024,
                  "output_mb": out.nbytes / 2**20, "gpu_peak_mb": gpu / 2**20, "device": dev}))
"""

SCRATCH_MEMORY = r"""
import json, resource, sys
from pathlib import Path
import numpy as np
from restorer.scratchnet import ScratchDetector, working_size
path, size = sys.argv[1], int(sys.argv[2])
det = ScratchDetector(Path(path), "cpu")
rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mask = det.mask(rgb)
assert mask.shape[:2] == (size, size), f"scratch mask is {mask.shape}"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": size, "work": working_size(size, size), "rss_before_mb": base / 1024,
                  "rss_peak_mb": peak / 1024, "image_mb": rgb.nbytes / 2**20}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--large", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--full-size", action="store_true", help="Real-ESRGAN x4plus's size (random weights)"
    )
    parser.add_argument("--speed-only", action="store_true", help="skip the peak-memory runs")
    shared = ROOT / ".pytest_cache" / "d"  # where the tests' fixtures keep them
    parser.add_argument("--env-home", type=Path, default=shared / "darkroom-restorer-env")
    parser.add_argument("--models", type=Path, default=shared / "darkroom-tinymodels")
    args = add_args(parser).parse_args()
    if args.smoke:
        args.size, args.repeat, args.speed_only = 64, 1, True
    report = Report.from_args("restorer", args)

    from manager import envs
    from manager.config import Settings
    from manager.errors import DarkroomError
    from manager.home import Home
    from tests.fixtures.sources import read_pip_config
    from tests.fixtures.tinymodels import AppEnv
    from tests.fixtures.tinyrestore import app_spec, build_restore_models, torch_vision_sources

    sources = read_pip_config()
    pair = torch_vision_sources(sources.extra_index_urls)
    report.require(pair, "no torch + torchvision pair in a local extra index; cannot run")
    links, pins = pair
    home = Home(args.env_home.resolve()).ensure()
    settings = Settings(
        find_links=[*sources.find_links, *[p for p in links if p not in sources.find_links]]
    )
    try:
        info = envs.build(home, settings, app_spec("restorer", pins))
    except DarkroomError as exc:
        report.fail(f"the restorer env could not be built: {exc.message} {exc.hint or ''}")
    env = AppEnv(home=home, python=envs.env_python(home, "restorer"), packages=info.packages)
    try:
        built = build_restore_models(env, args.models)
    except RuntimeError as exc:
        report.fail(str(exc))
    model = built["esrgan-x4"]["path"]

    def run(code: str, *argv: object) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            proc = env.run(["-c", code, *map(str, argv)], cwd=tmp)
        report.require(
            proc.returncode == 0,
            f"the run in the restorer env failed: {proc.stderr.strip()[-2000:]}",
        )
        return json.loads(proc.stdout.strip().splitlines()[-1])

    speed = run(SPEED, model, args.size, args.repeat, int(args.full_size))
    report.done(f"app output equals raw at {args.size}x{args.size} x{args.repeat} rounds")
    times = {k: Spread.of(v) for k, v in speed["times"].items()}
    what = (
        "Real-ESRGAN x4plus size (64 filters, 23 blocks)"
        if args.full_size
        else "test factory ESRGAN x4"
    )
    print(
        f"{what}, random weights, {args.size}x{args.size} input, device {speed['device']} "
        f"({speed['dtype']}), {speed['cpus']} CPUs, torch threads main/worker {speed['threads']}, "
        f"load average {speed['load'][0]:.1f} -> {speed['load'][1]:.1f}:"
    )
    print(f"  raw spandrel call          {times['raw'].text(1000, ' ms')}")
    print(f"  raw, main thread           {times['raw_main'].text(1000, ' ms')}")
    for key, label in (
        ("app_whole", "app upscale, tile 0     "),
        ("app_tiled", f"app upscale, tile {args.size // 2:<5d}"),
    ):
        per_round = ratios(speed["times"]["raw"], speed["times"][key])
        print(f"  {label}  {times[key].text(1000, ' ms')}")
        verdict = (
            report.goal(f"{key}: raw/app >= 0.95", per_round.median >= 0.95, per_round, 0.95)
            if key == "app_whole"
            else "reported (tiles do more work)"
        )
        print(
            f"    ratio raw/app per round  {per_round.text(unit='x', digits=3)}{against(per_round, 1.0)}  "
            f"goal >= 0.95: {verdict}"
        )
    null = speed["null_median"]
    print(
        f"  the same paths around a free model (nearest x4), median of {args.repeat * 5}: raw "
        f"{null['raw'] * 1000:.1f} ms (main thread {null['raw_main'] * 1000:.1f}), app tile 0 {null['app_whole'] * 1000:.1f} ms, app tile "
        f"{args.size // 2} {null['app_tiled'] * 1000:.1f} ms"
    )
    if args.speed_only:
        return report.finish()
    print(
        f"Peak memory, {args.large}x{args.large} input -> x4 (each in a fresh process), load {load()}:"
    )
    for tile in (128, 512):
        m = run(MEMORY, model, args.large, tile)
        gpu = f", GPU peak {m['gpu_peak_mb']:.0f} MiB" if m["device"] == "cuda" else ""
        print(
            f"  tile {tile:4d}: process RSS peak {m['rss_peak_mb']:7.0f} MiB (before {m['rss_before_mb']:.0f}, "
            f"output array {m['output_mb']:.0f} MiB){gpu}"
        )
    print("Scratch U-Net (full size, random weights) on CPU; the net works at a short side of 256:")
    for size in (args.large // 2, args.large):
        m = run(SCRATCH_MEMORY, built["scratchnet"]["path"], size)
        print(
            f"  {size}x{size}: works at {m['work'][0]}x{m['work'][1]}, process RSS peak {m['rss_peak_mb']:6.0f} MiB "
            f"(before {m['rss_before_mb']:.0f}, image {m['image_mb']:.0f} MiB)"
        )
    report.done("4 memory runs with full-size outputs (single runs: no spread)")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
