"""Benchmark: Darkroom's weight pull against raw httpx, from the local test hub, in one run.

    .venv/bin/python bench/weights.py [--files 3] [--mb 64] [--rounds 5] [--smoke] [--strict]

Prints, over unpaced loopback and over connections paced like a fast real link, the throughput of raw httpx (sequential and one thread per file), of huggingface_hub's
hf_hub_download, and of darkroom's pull (which also asks the hub which files to fetch,
hashes every byte and links the snapshot), the ratio darkroom / best raw (goal >= 0.9), and
the bytes fetched twice when a connection drops mid-file (darkroom vs huggingface_hub).
N rounds, modes interleaved, so a noisy moment hurts every mode alike; ratios are per round
(darkroom against the best raw mode of the same round), shown as median with spread. Every
mode's files are checked against the bytes the hub holds (sha256) before a time counts; a
mode that fetched wrong or missing bytes fails the bench (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stats import Report, Spread, add_args, against, load  # noqa: E402
from manager import weights  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.recipe import ModelFile  # noqa: E402
from tests.fixtures.hub import LocalHub, pointed_at  # noqa: E402

REPO = "bench/weights"


def raw_httpx(hub: LocalHub, names: list[str], out: Path, parallel: bool) -> list[Path]:
    """The baseline: stream each file to disk with one httpx client, nothing else."""
    with httpx.Client(follow_redirects=True, timeout=60) as client:

        def one(name: str) -> None:
            with (
                client.stream("GET", f"{hub.url}/{REPO}/resolve/main/{name}") as r,
                open(out / name, "wb") as f,
            ):
                r.raise_for_status()
                for chunk in r.iter_raw():
                    f.write(chunk)

        if parallel:
            with ThreadPoolExecutor(len(names)) as pool:
                list(pool.map(one, names))
        else:
            for name in names:
                one(name)
    return [out / n for n in names]


def hf_download(hub: LocalHub, names: list[str], out: Path) -> list[Path]:
    from huggingface_hub import hf_hub_download

    with ThreadPoolExecutor(len(names)) as pool:
        return [
            Path(p)
            for p in pool.map(
                lambda n: hf_hub_download(REPO, n, cache_dir=out, endpoint=hub.url), names
            )
        ]


def darkroom_pull(hub: LocalHub, names: list[str], out: Path) -> list[Path]:
    home = Home(out).ensure()
    return [
        f.local_path
        for f in weights.pull(
            home,
            Settings(hf_endpoint=hub.url),
            [ModelFile(repo=REPO, path=n, size=1) for n in names],
        )
    ]


def timed(
    fn,
    hub: LocalHub,
    names: list[str],
    scratch: Path,
    want: dict[str, str],
    report: Report,
    label: str,
) -> float:
    """Seconds `fn` took; the files it returns must be `names` with the hub's bytes."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        start = time.perf_counter()
        try:
            paths = fn(hub, names, folder)
        except Exception as exc:  # noqa: BLE001 (any failure of the timed work ends the bench)
            report.fail(f"{label} failed: {type(exc).__name__}: {exc}")
        took = time.perf_counter() - start
        got = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in paths
        }
        report.require(
            got == {n: want[n] for n in names},
            f"{label} left other bytes than the hub holds: {got}",
        )
        return took
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refetched_after_drop(
    hub: LocalHub,
    name: str,
    size: int,
    scratch: Path,
    cut: int,
    want: dict[str, str],
    report: Report,
) -> tuple[int, int]:
    """Bytes served beyond the file size when the connection drops at `cut` (darkroom, hf)."""
    out = []
    for label, fn in (
        ("darkroom after a drop", darkroom_pull),
        ("hf_hub_download after a drop", hf_download),
    ):
        hub.reset_stats()
        hub.faults.drop_after(name, cut)
        timed(fn, hub, [name], scratch, want, report, label)
        out.append(hub.stats(name).bytes_served - size)
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--link-mbs", type=int, default=50, help="pace of the second scenario, MB/s per connection"
    )
    args = add_args(parser).parse_args()
    if args.smoke:
        args.files, args.mb, args.rounds = 2, 2, 1
    report = Report.from_args("weights", args)

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
    times: dict[str, list[float]] = {label: [] for label in modes}
    paced: dict[str, list[float]] = {
        "raw httpx, one thread per file": [],
        "darkroom weights.pull": [],
    }
    try:
        with LocalHub() as hub, pointed_at(hub.url):
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
            blobs = {n: os.urandom(size) for n in names}
            want = {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}
            hub.add_files(REPO, blobs)

            def run(label: str, into: dict[str, list[float]]) -> None:
                into[label].append(timed(modes[label], hub, names, scratch, want, report, label))

            timed(
                modes["raw httpx, one file at a time"], hub, names, scratch, want, report, "warm-up"
            )
            for i in range(args.rounds):
                order = list(modes)
                for label in order[i % len(order) :] + order[: i % len(order)]:
                    run(label, times)
            # the same with each connection paced like a fast real link
            hub.faults.rate_bps = args.link_mbs * 1_000_000
            for i in range(max(1, args.rounds // 2)):
                for label in list(paced) if i % 2 == 0 else list(reversed(paced)):
                    run(label, paced)
            hub.faults.rate_bps = 0
            cut = size // 3 + 12345
            dark_extra, hf_extra = refetched_after_drop(
                hub, names[0], size, scratch, cut, want, report
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.done(
        f"every download verified ({args.rounds} rounds x {len(modes)} modes, paced, after a drop)"
    )

    print(
        f"{len(names)} x {args.mb} MiB from the local test hub over loopback, unpaced "
        f"(CPU-bound: server, client and sha256 share {os.cpu_count()} cores), {args.rounds} rounds, load {load()}"
    )
    for label, secs in times.items():
        print(
            f"  {label:<34} {Spread.of(secs).text(unit=' s', digits=2)}  "
            f"median {total / Spread.of(secs).median / 1e6:6.1f} MB/s"
        )
    best_raw = [
        min(a, b)
        for a, b in zip(
            times["raw httpx, one file at a time"],
            times["raw httpx, one thread per file"],
            strict=True,
        )
    ]
    unpaced = Spread.of(
        r / d for r, d in zip(best_raw, times["darkroom weights.pull"], strict=True)
    )
    print(
        f"  speed darkroom / best raw httpx, per round: {unpaced.text(unit='x', digits=2)}{against(unpaced, 1.0)}"
        f"  (goal >= 0.9x: {report.goal('unpaced >= 0.9x raw', unpaced.median >= 0.9, unpaced, 0.9)})"
    )
    print(f"Same files, each connection paced at {args.link_mbs} MB/s, load {load()}:")
    for label, secs in paced.items():
        print(
            f"  {label:<34} {Spread.of(secs).text(unit=' s', digits=2)}  "
            f"median {total / Spread.of(secs).median / 1e6:6.1f} MB/s"
        )
    ratio = Spread.of(
        r / d
        for r, d in zip(
            paced["raw httpx, one thread per file"], paced["darkroom weights.pull"], strict=True
        )
    )
    print(
        f"  speed darkroom / raw httpx, per round:      {ratio.text(unit='x', digits=2)}{against(ratio, 1.0)}"
        f"  (goal >= 0.9x: {report.goal('paced >= 0.9x raw', ratio.median >= 0.9, ratio, 0.9)})"
    )
    print(f"Connection dropped after {cut:,} bytes of {size:,}:")
    print(f"  darkroom refetched        {dark_extra:>12,} bytes")
    print(f"  huggingface_hub refetched {hf_extra:>12,} bytes")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
