"""Progress that moves with the work inside one model call.

A single forward pass (a colorizer's DDColor, an upscaler's tile) can take most of a job; with
reports only around it, a page sits at one figure for a minute and then jumps to done. Forward
hooks on the model's innermost layers count the layers finished, which is as close to "how far
through this pass" as can be known without timing it. Reports stay cheap: one per percent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Report = Callable[[float, str], None]


def span(report: Report, lo: float, hi: float, message: str) -> Callable[[float], None]:
    """A callback taking 0..1 for one part of the job, reported as lo..hi of the whole."""

    def on(fraction: float) -> None:
        report(lo + (hi - lo) * min(1.0, max(0.0, fraction)), message)

    return on


@contextlib.contextmanager
def layers(module: Any, on_fraction: Callable[[float], None], step: float = 0.01) -> Iterator[None]:
    """Call `on_fraction(0..1)` as each forward pass of `module` gets through its layers.

    Every pass starts again at 0; a layer that runs twice in one pass is capped at 1. An
    exception from `on_fraction` (a cancelled job) stops the pass where it is.
    """
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    total = max(1, len(leaves))
    seen = {"done": 0, "last": -1.0}

    def start(_module: Any, _inputs: Any) -> None:
        seen["done"], seen["last"] = 0, -1.0

    def finished(_module: Any, _inputs: Any, _output: Any) -> None:
        seen["done"] += 1
        fraction = min(1.0, seen["done"] / total)
        if fraction - seen["last"] >= step or fraction == 1.0 and seen["last"] < 1.0:
            seen["last"] = fraction
            on_fraction(fraction)

    handles = [module.register_forward_pre_hook(start)]
    handles += [leaf.register_forward_hook(finished) for leaf in leaves]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class Pieces:
    """Progress over `count` equal pieces (tiles, faces), each moving with its model's layers:
    `advance()` after a piece, `inner(f)` for how far the current one is."""

    def __init__(self, on_fraction: Callable[[float], None], count: int) -> None:
        self.on_fraction = on_fraction
        self.count = max(1, count)
        self.done = 0

    def inner(self, fraction: float) -> None:
        self.on_fraction((self.done + min(1.0, fraction)) / self.count)

    def advance(self, fraction: float | None = None) -> None:
        """One more piece done (or, given the tiler's own fraction, as many as that says)."""
        self.done = min(
            self.count, round(fraction * self.count) if fraction is not None else self.done + 1
        )
        self.on_fraction(self.done / self.count)
