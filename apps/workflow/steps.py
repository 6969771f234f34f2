"""One item through every step of a preset: the unit of work, local or on a Ray worker.

It touches no ledger and no output folder: input bytes in, output bytes and per-step
seconds out, so the driver alone writes (one writer, one ledger)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .client import Urls, run_task
from .errors import StepCancelled, StepFailed
from .presets import Preset, fill


@dataclass
class ItemResult:
    item_id: str
    output: bytes | None = None
    steps: dict[str, float] = field(default_factory=dict)  # step name -> seconds
    error: str = ""
    worker: int = 0
    cancelled: bool = False  # a step's job was cancelled by the person: redo the item later

    @property
    def ok(self) -> bool:
        return not self.error and self.output is not None


def process(
    preset: Preset,
    urls: Urls,
    item_id: str,
    fields: dict[str, Any],
    data: bytes | None,
    replica: int = 0,
) -> ItemResult:
    """Run the steps in order; the first failure stops this item (and says which step, why)."""
    result = ItemResult(item_id=item_id, worker=replica)
    current = data
    for step in preset.steps:
        replicas = urls.get(step.app) or []
        if not replicas:
            result.error = f"{step.name}: no address for {step.app}."
            return result
        start = time.perf_counter()
        try:
            current = run_task(
                replicas[replica % len(replicas)],
                step.task,
                fill(step.params, fields),
                current if step.image_field else None,
                step.image_field,
                step.timeout_s,
                step.name,
            )
        except StepFailed as exc:
            result.steps[step.name] = round(time.perf_counter() - start, 4)
            result.error = f"{exc.step}: {exc.reason}"
            result.cancelled = isinstance(exc, StepCancelled)
            return result
        result.steps[step.name] = round(time.perf_counter() - start, 4)
    result.output = current
    return result
