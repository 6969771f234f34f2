"""Scale-out: the per-image steps as tasks on Ray actors (one per worker), the ledger and
every write staying with the driver.

Worker i calls replica i of each app (when an app has several URLs), so N workers over
N app instances work in parallel; with one instance they queue at that app.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from pathlib import Path
from typing import Any

from .client import Urls
from .errors import WorkflowError
from .ledger import Row
from .presets import Preset
from .steps import ItemResult, process

# Ray re-creates worker environments with `uv run` when an ancestor process was started by
# `uv run` (a developer's shell, a test runner): its workers then run in that project's env,
# not this app's, and die as they start. The workflow runner's env is already complete, so
# this is switched off before ray is first imported (Ray reads it at import).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

CONNECT_TIMEOUT_S = 120.0  # joining or starting a cluster; it takes seconds when it works


class _Worker:
    """The body of one Ray actor: the preset and the app URLs, then one item per call."""

    def __init__(self, preset_json: str, urls: Urls, index: int) -> None:
        self.preset = Preset.model_validate_json(preset_json)
        self.urls, self.index = urls, index

    def process(self, item_id: str, fields: dict[str, Any], data: bytes | None) -> ItemResult:
        return process(self.preset, self.urls, item_id, fields, data, replica=self.index)


def _host_port(address: str) -> tuple[str, int]:
    """host and port of `ray://host:port`, `host:port` or `host` (Ray's GCS port 6379)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, 10001 if address.startswith("ray://") else 6379
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise WorkflowError(
            f"'{address}' is not a Ray address.",
            "Give host:port (e.g. 192.168.1.5:6379) or ray://host:10001, or --ray auto.",
        ) from None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds with a sentence when nothing listens at a Ray address: ray.init
    itself retries an unreachable cluster for minutes before it gives up."""
    if address in ("local", "auto"):
        return
    host, port = _host_port(address)
    if not host or not 0 < port < 65536:
        raise WorkflowError(
            f"'{address}' is not a Ray address.",
            "Give host:port (e.g. 192.168.1.5:6379) or ray://host:10001, or --ray auto.",
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise WorkflowError(
            f"Cannot reach the Ray cluster at {address} ({why}).",
            "Check that the cluster runs (`ray status` on its head node) and the address "
            "(host:6379, or ray://host:10001); or run with --ray local, or without --ray.",
        ) from None


def _texts(exc: BaseException) -> list[str]:
    """The messages of an exception and of those it came from (Ray wraps the real cause)."""
    out: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(str(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def _is_auth(exc: BaseException) -> bool:
    return any(
        "InvalidAuthToken" in t
        or "AuthenticationError" in t
        or ("token" in t.lower() and "auth" in t.lower())
        for t in _texts(exc)
    )


def _short(exc: BaseException) -> str:
    """One line for a sentence: Ray's messages can hold whole tracebacks."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ")):
            return f"{type(exc).__name__}: {line[:200]}"
    return type(exc).__name__


def _join_error(address: str, exc: BaseException) -> WorkflowError:
    if _is_auth(exc):
        # Ray turns token auth on by itself only for a cluster it finds on this machine, never
        # for an address it is given (RAY_ADDRESS included).
        return WorkflowError(
            f"The Ray cluster at {address} asks for its authentication token.",
            "Set RAY_AUTH_MODE=token, with the cluster's token in ~/.ray/auth_token (or in "
            "RAY_AUTH_TOKEN), then run again.",
        )
    return WorkflowError(
        f"Cannot join the Ray cluster at {address} ({_short(exc)}).",
        "Check the address (host:6379, or ray://host:10001) and that the cluster runs.",
    )


def _start_local(ray: Any, workers: int, kwargs: dict[str, Any]) -> None:
    try:
        ray.init(num_cpus=workers or None, **kwargs)
    except Exception as exc:  # ports taken, /tmp full, a broken install ...
        raise WorkflowError(
            f"Ray could not start a local cluster ({_short(exc)}).",
            "Run without --ray, or see the workflow runner's log for Ray's own messages.",
        ) from None


def connect(address: str, workers: int) -> tuple[int, bool]:
    """Join (or start) a Ray cluster; (number of workers, whether we started it here)."""
    try:
        import ray
    except ImportError:
        raise WorkflowError(
            "Ray is not installed in the workflow runner's environment.",
            "Run without --ray, or run `darkroom env repair workflow` to reinstall it.",
        ) from None
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    started = False
    if ray.is_initialized():
        pass
    elif address == "local":
        _start_local(ray, workers, kwargs)
        started = True
    elif address == "auto":
        pointed = os.environ.get("RAY_ADDRESS", "")
        if pointed:
            check_reachable(pointed)
        try:
            ray.init(address="auto", **kwargs)
        except Exception as exc:  # no cluster here (start one), or one that refuses us (say why)
            if pointed or _is_auth(exc):
                raise _join_error(pointed or "auto", exc) from None
            _start_local(ray, workers, kwargs)
            started = True
    else:
        check_reachable(address)
        # A remote cluster may not have this package: ship it with the job.
        try:
            ray.init(
                address=address, runtime_env={"py_modules": [str(Path(__file__).parent)]}, **kwargs
            )
        except (
            Exception
        ) as exc:  # Ray raises several kinds (ConnectionError, AuthenticationError, ...)
            raise _join_error(address, exc) from None
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    return (min(workers, cpus) if workers else cpus), started


def connect_within(address: str, workers: int, emit: Any) -> tuple[int, bool]:
    """connect(), but a cluster that takes the connection and never answers (a wrong port, a
    firewall that drops) ends the run with a sentence instead of Ray's endless retries. Ray
    cannot be interrupted in ray.init, so the watchdog reports and exits the process; nothing
    has been started on the ledger yet."""
    timeout = float(os.environ.get("DARKROOM_RAY_CONNECT_TIMEOUT_S", "") or CONNECT_TIMEOUT_S)
    finished = threading.Event()

    def expire() -> None:
        if finished.is_set():
            return
        what = (
            f"Ray did not start within {timeout:g} s."
            if address == "local"
            else f"The Ray cluster at {address} did not answer within {timeout:g} s."
        )
        emit(
            {
                "type": "error",
                "message": what,
                "hint": "Check the address and that the cluster runs (`ray status` on its head node); "
                "or run with --ray local, or without --ray.",
            }
        )
        os._exit(2)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        return connect(address, workers)
    finally:
        finished.set()
        timer.cancel()


def run(driver: Any, rows: list[Row], address: str, workers: int) -> int:
    """Keep every actor busy with one item until all rows are recorded; returns the worker count."""
    import ray

    n, started = connect_within(address, workers, driver.emit)
    if workers and n < workers:
        driver.emit(
            {
                "type": "message",
                "level": "warning",
                "text": f"The Ray cluster has {n} CPU(s), so {n} worker(s) run instead of {workers}.",
            }
        )
    driver.emit({"type": "stage", "stage": "ray", "message": f"{n} Ray worker(s)"})
    actor_cls = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(_Worker)
    preset_json = driver.opts.preset.model_dump_json()
    actors = [actor_cls.remote(preset_json, driver.opts.urls, i) for i in range(n)]
    queue: deque[Row] = deque(rows)
    inflight: dict[Any, tuple[Row, Any]] = {}

    def dispatch(actor: Any) -> None:
        while queue and not driver.opts.stop.is_set():
            row = queue.popleft()
            driver.start(row)
            data, reason = driver.read_input(row)
            if reason:
                driver.record(row, ItemResult(item_id=row.id, error=reason))
                continue
            inflight[actor.process.remote(row.id, row.fields, data)] = (row, actor)
            return

    try:
        for actor in actors:
            dispatch(actor)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                row, actor = inflight.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # the actor died for good: this item is not to blame
                    res = ItemResult(
                        item_id=row.id,
                        error=f"the Ray worker failed ({type(exc).__name__}: {exc})"[:500],
                    )
                driver.record(row, res)
                dispatch(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
    return n
