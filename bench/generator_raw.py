"""Raw diffusers baseline for bench/generator.py; runs inside the generator's env.

argv: pipeline_dir width height steps runs out_dir -> prints one JSON line.
"""

import json
import sys
import time
from pathlib import Path

import torch
from diffusers import FluxPipeline


def rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    folder, width, height, steps, runs, out = sys.argv[1], *map(int, sys.argv[2:6]), Path(sys.argv[6])
    out.mkdir(parents=True, exist_ok=True)
    pipe = FluxPipeline.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True).to("cpu")
    pipe.set_progress_bar_config(disable=True)

    def once(seed: int) -> None:
        with torch.inference_mode():
            image = pipe(prompt="a lighthouse at dusk", width=width, height=height, num_inference_steps=steps,
                         guidance_scale=0.0, max_sequence_length=256,
                         generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        image.save(out / f"{seed}.png")

    once(0)  # warm-up
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
    base = rss("VmRSS")
    times = []
    for i in range(runs):
        start = time.perf_counter()
        once(i + 1)
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "rss_before": base, "peak": rss("VmHWM")}))


if __name__ == "__main__":
    main()
