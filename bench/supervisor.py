"""Supervisor overhead, measured against the same tiny app run directly, in one process.

    .venv/bin/python bench/supervisor.py [--rounds N] [--smoke] [--strict]

1. Start overhead: time to the first healthy response when started by
   `supervisor.start` (runner spawn, detach, health polling, run file) minus the same
   time for `python -m tinyapp` started directly. Goal: at most 0.3 s extra.
2. Crash to restart detected: SIGKILL the app, time until the run file says the runner
   saw it (status "restarting"). Goal: at most 1 s. Also shown: until ready again (this
   includes the restart backoff, 1 s by default, so it is reported, not judged).

Every start must answer its health check and every crash must be followed by a restart, or
the bench fails (exit 1) with what went wrong. Figures: median with spread over the rounds
(bench/_stats.py). The app is the tests' tiny app (tests/fixtures/tinyapp.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, against, load  # noqa: E402
from manager import supervisor  # noqa: E402
from manager.config import Settings  # noqa: E402
from manager.errors import DarkroomError  # noqa: E402
from manager.home import Home  # noqa: E402
from manager.supervisor import runfile  # noqa: E402
from tests.fixtures.tinyapp import get_json, start_tinyapp, tinyapp_launch  # noqa: E402

GIVE_UP_S = 120.0  # a restart that has not happened by then is not coming


def direct_start(report: Report) -> float:
    began = time.perf_counter()
    try:
        _url, proc = start_tinyapp()
    except RuntimeError as exc:
        report.fail(f"the tiny app run directly did not answer its health check ({exc})")
    took = time.perf_counter() - began
    proc.kill()
    proc.wait()
    return took


def supervised_start(home: Home, report: Report) -> float:
    spec = tinyapp_launch(home, poll_s=0.5)  # the real default health-poll ceiling
    began = time.perf_counter()
    try:
        info = supervisor.start(home, Settings(port_start=spec.port, port_end=spec.port + 50), spec)
    except DarkroomError as exc:
        report.fail(f"the supervised start failed: {exc.message} {exc.hint or ''}")
    report.require(
        get_json(info.url + "api/health")[0] == 200,
        "the supervised app said ready but its health check fails",
    )
    took = time.perf_counter() - began
    supervisor.stop(home, spec.app)
    return took


def wait_status(home: Home, report: Report, want: str, old_pid: int | None = None):
    """Poll the run file until the runner reports `want` (with a new app pid for 'ready')."""
    give_up = time.monotonic() + GIVE_UP_S
    while True:
        info = runfile.read_raw(home, "crashy")
        if (
            info is not None
            and info.status == want
            and (old_pid is None or info.app_pid != old_pid)
        ):
            return info
        report.require(
            info is None or info.status not in ("failed", "stopped", "stale"),
            f"the runner gave up instead of restarting the killed app (status {info and info.status})",
        )
        report.require(
            time.monotonic() < give_up,
            f"no '{want}' in the run file {GIVE_UP_S:.0f} s after the kill",
        )
        time.sleep(0.002)


def crash_times(home: Home, rounds: int, report: Report) -> tuple[list[float], list[float]]:
    # Real defaults for backoff (1 s first wait); stable_s=0 makes each kill a "first" crash.
    spec = tinyapp_launch(
        home, app="crashy", backoff_s=1.0, backoff_max_s=30.0, stable_s=0.0, poll_s=0.5
    )
    info = supervisor.start(home, Settings(port_start=spec.port, port_end=spec.port + 50), spec)
    detected, ready = [], []
    for _ in range(rounds):
        old = info.app_pid
        began = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        wait_status(home, report, "restarting")
        detected.append(time.perf_counter() - began)
        info = wait_status(home, report, "ready", old)
        report.require(
            get_json(info.url + "api/health")[0] == 200, "the restarted app fails its health check"
        )
        ready.append(time.perf_counter() - began)
    supervisor.stop(home, "crashy")
    return detected, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = add_args(parser).parse_args()
    if args.smoke:
        args.rounds = 1
    report = Report.from_args("supervisor", args)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).ensure()
        direct_start(report)  # warm the page cache for both sides
        supervised_start(home, report)
        direct, supervised = [], []
        for _ in range(args.rounds):  # interleaved, so a burst of load hits both
            direct.append(direct_start(report))
            supervised.append(supervised_start(home, report))
        report.done(f"{2 * args.rounds + 2} starts healthy")
        detected, ready = crash_times(home, args.rounds, report)
        report.done(f"{args.rounds} crash(es) restarted")
    d, s = Spread.of(direct), Spread.of(supervised)
    extra = Spread.of(b - a for a, b in zip(direct, supervised, strict=True))
    print(f"{args.rounds} rounds, load {load()}")
    print(f"first healthy response, direct:     {d.text(1000, ' ms')}")
    print(f"first healthy response, supervised: {s.text(1000, ' ms')}")
    print(
        f"start overhead (per round):         {extra.text(1000, ' ms')}{against(extra, 0.0)}  goal <= 300 ms: "
        f"{report.goal('start overhead <= 300 ms', extra.median <= 0.3, extra, 0.3)}"
    )
    cd, cr = Spread.of(detected), Spread.of(ready)
    print(
        f"crash -> restart detected:          {cd.text(1000, ' ms')}  goal <= 1000 ms: "
        f"{report.goal('crash detected <= 1 s', cd.hi <= 1.0, cd, 1.0)}"
    )
    print(f"crash -> ready again (1 s backoff): {cr.text(1000, ' ms')}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
