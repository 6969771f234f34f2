"""Supervisor overhead, measured against the same tiny app run directly, in one process.

    .venv/bin/python bench/supervisor.py [--rounds N]

1. Start overhead: time to the first healthy response when started by
   `supervisor.start` (runner spawn, detach, health polling, run file) minus the same
   time for `python -m tinyapp` started directly. Goal: at most 0.3 s extra.
2. Crash to restart detected: SIGKILL the app, time until the run file says the runner
   saw it (status "restarting"). Goal: at most 1 s. Also shown: until ready again (this
   includes the restart backoff, 1 s by default, so it is reported, not judged).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from manager import supervisor  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.supervisor import runfile  # noqa: E402
from tests.fixtures.tinyapp import get_json, start_tinyapp, tinyapp_launch  # noqa: E402


def direct_start() -> float:
    began = time.perf_counter()
    _url, proc = start_tinyapp()
    took = time.perf_counter() - began
    proc.kill()
    proc.wait()
    return took


def supervised_start(home: Home) -> float:
    spec = tinyapp_launch(home, poll_s=0.5)  # the real default health-poll ceiling
    began = time.perf_counter()
    info = supervisor.start(home, Settings(port_start=spec.port, port_end=spec.port + 50), spec)
    assert get_json(info.url + "api/health")[0] == 200
    took = time.perf_counter() - began
    supervisor.stop(home, spec.app)
    return took


def crash_times(home: Home, rounds: int) -> tuple[list[float], list[float]]:
    # Real defaults for backoff (1 s first wait); stable_s=0 makes each kill a "first" crash.
    spec = tinyapp_launch(home, app="crashy", backoff_s=1.0, backoff_max_s=30.0, stable_s=0.0,
                          poll_s=0.5)
    info = supervisor.start(home, Settings(port_start=spec.port, port_end=spec.port + 50), spec)
    detected, ready = [], []
    for _ in range(rounds):
        old = info.app_pid
        began = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        while (i := runfile.read_raw(home, "crashy")) is None or i.status != "restarting":
            time.sleep(0.002)
        detected.append(time.perf_counter() - began)
        while (i := runfile.read_raw(home, "crashy")) is None or i.status != "ready" or i.app_pid == old:
            time.sleep(0.005)
        ready.append(time.perf_counter() - began)
        info = i
    supervisor.stop(home, "crashy")
    return detected, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).ensure()
        direct_start()  # warm the page cache for both sides
        supervised_start(home)
        direct = [direct_start() for _ in range(args.rounds)]
        supervised = [supervised_start(home) for _ in range(args.rounds)]
        detected, ready = crash_times(home, args.rounds)
    d, s = statistics.median(direct), statistics.median(supervised)
    print(f"rounds: {args.rounds} (medians)")
    print(f"first healthy response, direct:     {d * 1000:7.1f} ms")
    print(f"first healthy response, supervised: {s * 1000:7.1f} ms  ratio {s / d:.2f}x")
    print(f"start overhead:                     {(s - d) * 1000:7.1f} ms  goal <= 300 ms  "
          f"{'OK' if s - d <= 0.3 else 'MISSED'}")
    cd, cr = statistics.median(detected), statistics.median(ready)
    print(f"crash -> restart detected:          {cd * 1000:7.1f} ms  goal <= 1000 ms  "
          f"{'OK' if cd <= 1.0 else 'MISSED'}  (max {max(detected) * 1000:.1f} ms)")
    print(f"crash -> ready again (1 s backoff): {cr * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
