"""What both faces show, written once: sizes, the choice flags, the plan in plain words.

The CLI prints these lines and the TUI styles them; neither face builds its own wording,
so a plan reads the same in a terminal and on the Install screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .planner import Choices, Plan


def human_bytes(n: float) -> str:
    """1.2 GB, 340.0 MB, 12 B: decimal units, as disks and downloads are sold."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# ---------------------------------------------------------------- choices <-> flags


def parse_choices(variants: list[str], models: str | None, cpu: bool) -> Choices:
    """`--variant [MODEL=]VARIANT` (repeatable), `--models M1,M2` and `--cpu` as Choices."""
    from .planner import Choices

    chosen: dict[str, str] = {}
    for item in variants:
        key, sep, value = item.partition("=")
        if sep:
            chosen[key.strip()] = value.strip()
        else:
            chosen["*"] = key.strip()
    model_list = tuple(m.strip() for m in models.split(",") if m.strip()) if models else None
    return Choices(variants=chosen, models=model_list, backend="cpu" if cpu else None)


def choice_args(choices: Choices) -> list[str]:
    """The CLI flags that ask for the same choices (the inverse of `parse_choices`), so the
    TUI can show the command that repeats an install."""
    out: list[str] = []
    for model, variant in sorted(choices.variants.items()):
        out += ["--variant", variant if model == "*" else f"{model}={variant}"]
    if choices.models is not None:
        out += ["--models", ",".join(choices.models)]
    if choices.backend == "cpu":
        out.append("--cpu")
    return out


# ---------------------------------------------------------------- the plan in words


@dataclass
class PlanSummary:
    """A plan as sentences: a title and machine, the runtime, one line per model, the totals, and why."""

    title: str              # app and version
    hardware: str           # the machine it was planned for
    runtime: str | None
    models: list[str]
    totals: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [*([self.runtime] if self.runtime else []), *self.models, self.totals]


def plan_summary(plan: Plan) -> PlanSummary:
    from .planner import OFFLOAD_WORDS

    runtime = f"PyTorch for {plan.torch_backend}, running on {plan.device}." if plan.torch_backend else None
    models = []
    for m in plan.models:
        offload = "" if m.offload == "none" else f", {OFFLOAD_WORDS[m.offload]}"
        models.append(f"{m.name}: {m.variant_label}{offload} ({human_bytes(m.download_bytes)})")
    totals = (f"Download {human_bytes(plan.download_bytes)}; disk needed about "
              f"{human_bytes(plan.disk_needed_bytes)}"
              + (f"; {plan.vram_gb:g} GB of GPU memory in use." if plan.vram_gb else "."))
    return PlanSummary(f"{plan.app_name} {plan.version}", plan.hardware, runtime, models, totals,
                       list(plan.reasons), list(plan.warnings))
