"""Benchmark: Darkroom's weight pull against raw httpx, from the local test hub, in one run.

    .venv/bin/python -m bench.weights [--files 3] [--mb 64] [--rounds 3]

Prints, over unpaced loopback and over connections paced like a fast real link, the throughput of raw httpx (sequential and one thread per file), of huggingface_hub's
hf_hub_download, and of darkroom's pull (which also asks the hub which files to fetch,
hashes every byte and links the snapshot), the ratio darkroom / best raw (goal >= 0.9), and
the bytes fetched twice when a connection drops mid-file (darkroom vs huggingface_hub).
Best of N rounds, modes interleaved, so a noisy moment hurts every mode alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from manager import weights
from manager.config import Settings
from manager.home import Home
from manager.recipe import ModelFile
from tests.fixtures.hub import LocalHub, pointed_at

REPO = "bench/weights"


def raw_httpx(hub: LocalHub, names: list[str], out: Path, parallel: bool) -> None:
    """The baseline: stream each file to disk with one httpx client, nothing else."""
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        def one(name: str) -> None:
            with client.stream("GET", f"{hub.url}/{REPO}/resolve/main/{name}") as r, \
                    open(out / name, "wb") as f:
                r.raise_for_status()
                for chunk in r.iter_raw():
                    f.write(chunk)
        if parallel:
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(one, names))
        else:
            for name in names:
                one(name)


def hf_download(hub: LocalHub, names: list[str], out: Path) -> None:
    from huggingface_hub import hf_hub_download

    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda n: hf_hub_download(REPO, n, cache_dir=out, endpoint=hub.url), names))


def darkroom_pull(hub: LocalHub, names: list[str], out: Path) -> None:
    home = Home(out).ensure()
    weights.pull(home, Settings(hf_endpoint=hub.url), [ModelFile(repo=REPO, path=n, size=1) for n in names])


def timed(fn, hub: LocalHub, names: list[str], scratch: Path) -> float:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        start = time.perf_counter()
        fn(hub, names, folder)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refetched_after_drop(hub: LocalHub, name: str, size: int, scratch: Path, cut: int) -> tuple[int, int]:
    """Bytes served beyond the file size when the connection drops at `cut` (darkroom, hf)."""
    out = []
    for fn in (darkroom_pull, hf_download):
        hub.reset_stats()
        hub.faults.drop_after(name, cut)
        timed(fn, hub, [name], scratch)
        out.append(hub.stats(name).bytes_served - size)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--link-mbs", type=int, default=50, help="pace of the second scenario, MB/s per connection")
    args = parser.parse_args()

    size = args.mb * 1024 * 1024
    names = [f"part-{i}.safetensors" for i in range(args.files)]
    total = size * len(names)
    scratch = Path(tempfile.mkdtemp(prefix="darkroom-bench-"))
    modes = {
        "raw httpx, one file at a time": lambda h, n, o: raw_httpx(h, n, o, parallel=False),
        "raw httpx, one thread per file": lambda h, n, o: raw_httpx(h, n, o, parallel=True),
        "huggingface_hub hf_hub_download": hf_download,
        "darkroom weights.pull": darkroom_pull,
    }
    best = dict.fromkeys(modes, float("inf"))
    with LocalHub() as hub, pointed_at(hub.url):
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        hub.add_files(REPO, {n: os.urandom(size) for n in names})
        timed(modes["raw httpx, one file at a time"], hub, names, scratch)   # warm-up
        for _ in range(args.rounds):
            for label, fn in modes.items():
                best[label] = min(best[label], timed(fn, hub, names, scratch))
        # the same with each connection paced like a fast real link
        hub.faults.rate_bps = args.link_mbs * 1_000_000
        paced = dict.fromkeys(("raw httpx, one thread per file", "darkroom weights.pull"), float("inf"))
        for _ in range(max(1, args.rounds // 2)):
            for label in paced:
                paced[label] = min(paced[label], timed(modes[label], hub, names, scratch))
        hub.faults.rate_bps = 0
        cut = size // 3 + 12345
        dark_extra, hf_extra = refetched_after_drop(hub, names[0], size, scratch, cut)
    shutil.rmtree(scratch, ignore_errors=True)

    print(f"{len(names)} x {args.mb} MiB from the local test hub over loopback, unpaced "
          f"(CPU-bound: server, client and sha256 share {os.cpu_count()} cores), best of {args.rounds}")
    for label, seconds in best.items():
        print(f"  {label:<34} {seconds:6.2f} s  {total / seconds / 1e6:8.1f} MB/s")
    raw = min(best["raw httpx, one file at a time"], best["raw httpx, one thread per file"])
    print(f"  ratio darkroom / best raw httpx:   {raw / best['darkroom weights.pull']:.2f}x  (goal >= 0.9x)")
    print(f"Same files, each connection paced at {args.link_mbs} MB/s:")
    for label, seconds in paced.items():
        print(f"  {label:<34} {seconds:6.2f} s  {total / seconds / 1e6:8.1f} MB/s")
    ratio = paced["raw httpx, one thread per file"] / paced["darkroom weights.pull"]
    print(f"  ratio darkroom / raw httpx:        {ratio:.2f}x  (goal >= 0.9x)")
    print(f"Connection dropped after {cut:,} bytes of {size:,}:")
    print(f"  darkroom refetched        {dark_extra:>12,} bytes")
    print(f"  huggingface_hub refetched {hf_extra:>12,} bytes")


if __name__ == "__main__":
    main()
