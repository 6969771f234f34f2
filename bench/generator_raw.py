"""Raw diffusers baseline for bench/generator.py; runs inside the generator's env.

argv: pipeline_dir out_dir. Loads the FLUX pipeline as a plain script would, then serves
one JSON command per stdin line, answering one JSON line each, so the bench can alternate
images between this process and the app (both loaded, one working at a time):
    {"seed", "width", "height", "steps"} -> {"time"}   one image, saved as PNG
    {"cmd": "reset"}                      -> {"rss"}    reset the peak RSS (Linux clear_refs)
    {"cmd": "peak"}                       -> {"rss", "peak"}
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
    folder, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    pipe = FluxPipeline.from_pretrained(
        folder, torch_dtype=torch.float32, local_files_only=True
    ).to("cpu")
    pipe.set_progress_bar_config(disable=True)

    def once(seed: int, width: int, height: int, steps: int) -> None:
        with torch.inference_mode():
            image = pipe(
                prompt="a lighthouse at dusk",
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=0.0,
                max_sequence_length=256,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
        image.save(out / f"{seed}.png")

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "reset":
            Path("/proc/self/clear_refs").write_text("5")
            answer = {"rss": rss("VmRSS")}
        elif req.get("cmd") == "peak":
            answer = {"rss": rss("VmRSS"), "peak": rss("VmHWM")}
        else:
            start = time.perf_counter()
            once(req["seed"], req["width"], req["height"], req["steps"])
            answer = {"time": time.perf_counter() - start}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
