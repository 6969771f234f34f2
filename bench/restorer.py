"""Restorer benchmark: the app's upscale step vs a raw spandrel call on the same model and
image, in one run; and peak memory of the tiled upscale at two tile sizes on a large image.

    .venv/bin/python bench/restorer.py [--size 512] [--large 2048] [--repeat 5]

Builds (or reuses) the restorer env and the random-weight checkpoints of the test factory
(Real-ESRGAN-shaped ESRGAN x4), then runs everything inside the app's env. Ratio = raw time
/ app time (goal >= 0.95). Peak memory: each tile size in a fresh process (ru_maxrss on the
CPU; torch.cuda.max_memory_allocated on a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEED = r"""
import json, sys, time
import numpy as np, torch, spandrel
from restorer.tiling import run_tiled, to_tensor, to_uint8
torch.set_num_threads(max(1, torch.get_num_threads()))
path, size, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dev = "cuda" if torch.cuda.is_available() else "cpu"
d = spandrel.ModelLoader().load_from_file(path).to(dev).eval()
rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
def raw():
    with torch.inference_mode():
        return to_uint8(d(to_tensor(rgb, dev, torch.float32)))
def app():
    return run_tiled(lambda x, _m: d(x), rgb, d.scale, 0, 16, dev, torch.float32)
def app_tiled():
    return run_tiled(lambda x, _m: d(x), rgb, d.scale, 256, 16, dev, torch.float32)
out = {}
for name, fn in (("raw", raw), ("app", app), ("app_tiled", app_tiled)):
    fn()
for name, fn in (("raw", raw), ("app", app), ("app_tiled", app_tiled)) * repeat:
    if dev == "cuda": torch.cuda.synchronize()
    t = time.perf_counter(); fn()
    if dev == "cuda": torch.cuda.synchronize()
    out.setdefault(name, []).append(time.perf_counter() - t)
print(json.dumps({k: min(v) for k, v in out.items()} | {"device": dev}))
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
gpu = torch.cuda.max_memory_allocated() if dev == "cuda" else 0
print(json.dumps({"tile": tile, "rss_peak_mb": peak / 1024, "rss_before_mb": base / 1024,
                  "output_mb": out.nbytes / 2**20, "gpu_peak_mb": gpu / 2**20, "device": dev}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--large", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from manager import envs
    from manager.config import Settings
    from manager.home import Home
    from tests.fixtures.sources import read_pip_config
    from tests.fixtures.tinymodels import AppEnv
    from tests.fixtures.tinyrestore import app_spec, build_restore_models, torch_vision_sources

    sources = read_pip_config()
    pair = torch_vision_sources(sources.extra_index_urls)
    if pair is None:
        print("no torch + torchvision pair in a local extra index; cannot run", file=sys.stderr)
        return 2
    links, pins = pair
    cache = ROOT / ".pytest_cache" / "d"
    home = Home(cache / "darkroom-restorer-env").ensure()
    info = envs.build(home, Settings(find_links=[*sources.find_links, *links]), app_spec("restorer", pins))
    env = AppEnv(home=home, python=envs.env_python(home, "restorer"), packages=info.packages)
    built = build_restore_models(env, cache / "darkroom-tinymodels")
    model = built["esrgan-x4"]["path"]

    def run(code: str, *argv: object) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            proc = env.run(["-c", code, *map(str, argv)], cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])

    speed = run(SPEED, model, args.size, args.repeat)
    print(f"ESRGAN x4 (test factory weights), {args.size}x{args.size} input, device {speed['device']}, "
          f"best of {args.repeat}:")
    print(f"  raw spandrel call      {speed['raw'] * 1000:8.1f} ms")
    print(f"  app upscale (1 tile)   {speed['app'] * 1000:8.1f} ms   ratio raw/app = {speed['raw'] / speed['app']:.3f}")
    print(f"  app upscale (256 tile) {speed['app_tiled'] * 1000:8.1f} ms   ratio raw/app = "
          f"{speed['raw'] / speed['app_tiled']:.3f}")
    print(f"Peak memory, {args.large}x{args.large} input -> x4 (each in a fresh process):")
    for tile in (128, 512):
        m = run(MEMORY, model, args.large, tile)
        gpu = f", GPU peak {m['gpu_peak_mb']:.0f} MiB" if m["device"] == "cuda" else ""
        print(f"  tile {tile:4d}: process RSS peak {m['rss_peak_mb']:7.0f} MiB (before {m['rss_before_mb']:.0f}, "
              f"output array {m['output_mb']:.0f} MiB){gpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
