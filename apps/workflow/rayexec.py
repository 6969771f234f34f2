"""Scale-out: the per-image steps as tasks on Ray actors (one per worker), the ledger and
every write staying with the driver.

Worker i calls replica i of each app (when an app has several URLs), so N workers over
N app instances work in parallel; with one instance they queue at that app.
"""

from __future__ import annotations

import os
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


class _Worker:
    """The body of one Ray actor: the preset and the app URLs, then one item per call."""

    def __init__(self, preset_json: str, urls: Urls, index: int) -> None:
        self.preset = Preset.model_validate_json(preset_json)
        self.urls, self.index = urls, index

    def process(self, item_id: str, fields: dict[str, Any], data: bytes | None) -> ItemResult:
        return process(self.preset, self.urls, item_id, fields, data, replica=self.index)


def connect(address: str, workers: int) -> tuple[int, bool]:
    """Join (or start) a Ray cluster; (number of workers, whether we started it here)."""
    try:
        import ray
    except ImportError:
        raise WorkflowError("Ray is not installed in the workflow runner's environment.",
                            "Run without --ray, or run `darkroom repair workflow` to reinstall it.") from None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    started = False
    if ray.is_initialized():
        pass
    elif address == "local":
        ray.init(num_cpus=workers or None, **kwargs)
        started = True
    elif address == "auto":
        try:
            ray.init(address="auto", **kwargs)
        except (ConnectionError, RuntimeError, ValueError):
            ray.init(num_cpus=workers or None, **kwargs)
            started = True
    else:
        # A remote cluster may not have this package: ship it with the job.
        try:
            ray.init(address=address, runtime_env={"py_modules": [str(Path(__file__).parent)]}, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise WorkflowError(f"Cannot join the Ray cluster at {address} ({exc}).",
                                "Check the address (ray://host:10001 or host:6379) and that the cluster runs.") from None
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    return (min(workers, cpus) if workers else cpus), started


def run(driver: Any, rows: list[Row], address: str, workers: int) -> int:
    """Keep every actor busy with one item until all rows are recorded; returns the worker count."""
    import ray

    n, started = connect(address, workers)
    if workers and n < workers:
        driver.emit({"type": "message", "level": "warning",
                     "text": f"The Ray cluster has {n} CPU(s), so {n} worker(s) run instead of {workers}."})
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
                    res = ItemResult(item_id=row.id, error=f"the Ray worker failed ({type(exc).__name__}: {exc})"[:500])
                driver.record(row, res)
                dispatch(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
    return n
