"""What both faces show, written once: sizes, the choice flags, the plan in plain words.

The CLI prints these lines and the TUI styles them; neither face builds its own wording,
so a plan reads the same in a terminal and on the Install screen.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import DarkroomError

if TYPE_CHECKING:
    from .home import Home
    from .planner import Choices, Plan
    from .recipe import Recipe
    from .supervisor.spec import RunInfo
    from .switching import Usage


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

    title: str  # app and version
    hardware: str  # the machine it was planned for
    runtime: str | None
    models: list[str]
    totals: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [*([self.runtime] if self.runtime else []), *self.models, self.totals]


def files_words(total: int, unknown: bool) -> str:
    """A model's files in words; where the recipe does not know a file's size (0) the figure is
    a lower bound, and says so, instead of a bare "0 B"."""
    if not unknown:
        return f"{human_bytes(total)} of files"
    if total == 0:
        return "file sizes known once they download"
    return f"at least {human_bytes(total)} of files; some sizes are known once they download"


def plan_summary(plan: Plan, here_bytes: int = 0) -> PlanSummary:
    """The plan's sentences. Every figure is one the others add up to: each model's files,
    their total (what is downloaded, less `here_bytes` already in the store), and the disk
    needed (those files plus the app's environment)."""
    from .planner import OFFLOAD_WORDS

    runtime = (
        f"PyTorch for {plan.torch_backend}, running on {plan.device}."
        if plan.torch_backend
        else None
    )
    models = []
    for m in plan.models:
        offload = "" if m.offload == "none" else f", {OFFLOAD_WORDS[m.offload]}"
        unknown = any(f.size == 0 for f in m.files)
        models.append(
            f"{m.name}: {m.variant_label}{offload} ({files_words(m.download_bytes, unknown)})"
        )
    files = plan.download_bytes
    at_least = "at least " if any(f.size == 0 for m in plan.models for f in m.files) else ""
    env = max(0, plan.disk_needed_bytes - files)
    here = min(max(0, here_bytes), files)
    download = (
        f"Download {at_least}{human_bytes(files - here)} of model files "
        f"({human_bytes(here)} of the {human_bytes(files)} are here already)"
        if here
        else f"Download {at_least}{human_bytes(files)} of model files"
    )
    totals = (
        f"{download}; disk needed about {human_bytes(plan.disk_needed_bytes)}: the files and "
        f"{human_bytes(env)} for the app's environment"
        + (f"; {plan.vram_gb:g} GB of GPU memory in use." if plan.vram_gb else ".")
    )
    return PlanSummary(
        f"{plan.app_name} {plan.version}",
        plan.hardware,
        runtime,
        models,
        totals,
        list(plan.reasons),
        list(plan.warnings),
    )


# ---------------------------------------------------------------- the apps, one row each


@dataclass
class AppRow:
    """What `darkroom list` prints and a Home card shows about one app."""

    app: str
    name: str
    description: str
    installed: bool = False
    version: str | None = None
    status: str = (
        "not installed"  # not installed / installed / starting / ready / failed / stale ...
    )
    url: str = ""
    port: int | None = None
    vram_gb: float = 0.0
    bundled: bool = True
    problem: str = ""  # why it failed, when it did
    model_loaded: bool | None = None  # False once a running app has unloaded its model
    vram_measured_gb: float | None = None  # NVML, per process; None where it cannot be measured

    @property
    def running(self) -> bool:
        return self.status in ("starting", "ready", "restarting", "stopping")


def app_rows(
    home: Home, recipes: dict[str, Recipe] | None = None, running: bool = True
) -> list[AppRow]:
    """Every bundled app and every installed third-party app, with what is known of it;
    `running=False` skips asking the supervisor (a plain listing)."""
    from . import state as state_mod

    if recipes is None:
        from .recipe import bundled_recipes

        recipes = bundled_recipes()
    installed = state_mod.load(home).apps
    out = [AppRow(rid, recipe.name, recipe.description) for rid, recipe in recipes.items()]
    out += [
        AppRow(app, app, f"from {rec.recipe_source}", bundled=False)
        for app, rec in installed.items()
        if app not in recipes
    ]
    for row in out:
        rec = installed.get(row.app)
        if rec is None:
            continue
        row.installed, row.version, row.status, row.vram_gb = (
            True,
            rec.version,
            "installed",
            rec.vram_gb,
        )
        if not row.bundled:
            with contextlib.suppress(DarkroomError, Exception):
                from . import catalogue

                row.name = catalogue.installed_recipe(rec, row.app).name
    if running:
        _add_run_state(home, out)
    return out


def _add_run_state(home: Home, rows: list[AppRow]) -> None:
    live = {s.app: s for s in status_rows(home)}
    for row in rows:
        s = live.get(row.app)
        if s is None:
            continue
        row.status = "stale" if s.info.stale else s.info.status
        row.url, row.port = s.info.url, s.info.port
        if s.info.status == "failed":
            row.problem = s.info.last_error or ""
        if s.usage is not None:
            row.model_loaded, row.vram_measured_gb = s.usage.loaded, s.usage.measured_gb


# ---------------------------------------------------------------- running apps, one row each


@dataclass
class StatusRow:
    """What `darkroom status` prints about one app the supervisor knows, and what the Home
    cards take their run state from: the run file, and what the app holds of the GPU."""

    info: RunInfo
    usage: Usage | None = None

    @property
    def app(self) -> str:
        return self.info.app

    @property
    def url(self) -> str:
        return self.info.url if self.info.active else "-"

    @property
    def uptime(self) -> str:
        if not self.info.active or not self.info.started:
            return "-"
        s = int(time.time() - self.info.started)
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    @property
    def gpu(self) -> str:
        """GPU memory in words: what the app counts for, unloaded, busy, measured."""
        u = self.usage
        if u is None:
            return "-"
        if u.loaded:
            text = f"{u.counted_gb:g} GB"
            if u.idle_unload_min:
                text += f", freed after {u.idle_unload_min:g} idle min"
        else:
            text = "unloaded (idle)" if u.unloaded_by == "idle" else "unloaded"
        if u.job:
            from .switching import describe_job

            text += f", busy: {describe_job(u.job)}"
        return text + (f" ({u.measured_gb:g} GB measured)" if u.measured_gb is not None else "")

    @property
    def note(self) -> str:
        """What went wrong and what to do, for a failed app or one whose runner is gone."""
        if self.info.status == "failed":
            from .supervisor.control import failure_text

            return failure_text(self.info) + (f"\n{self.info.hint}" if self.info.hint else "")
        if self.info.stale:
            app = self.info.app
            return (
                f"{app}: its runner is gone (the computer restarted, or it was killed). "
                f"`darkroom stop {app}` clears it; `darkroom start {app}` starts it again."
            )
        return ""

    def to_dict(self) -> dict:
        u = self.usage
        return {
            **self.info.to_dict(),
            "vram_expected_gb": u.counted_gb if u else 0.0,
            "model_loaded": u.loaded if u else None,
            "vram_measured_gb": u.measured_gb if u else None,
            "idle_unload_minutes": u.idle_unload_min if u else 0.0,
            "unloaded_by": u.unloaded_by if u else "",
            "job": u.job if u else None,
        }


def status_rows(home: Home, app: str | None = None) -> list[StatusRow]:
    """A row per app the supervisor knows (one app's, with `app`); GPU use only asked for
    when something runs (NVML is not free)."""
    from .supervisor import control

    infos = [i for i in control.status(home) if app is None or i.app == app]
    usage = {}
    if any(i.active for i in infos):
        from . import switching

        usage = {u.app: u for u in switching.usage(home)}
    return [StatusRow(i, usage.get(i.app)) for i in infos]
