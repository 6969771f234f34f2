"""What every bench shares: samples summed up honestly, goals judged, and an exit status that
says whether the work it timed succeeded.

A bench makes a `Report`, checks its work with `report.require(ok, reason)` (a failed install,
missing images, bad bytes end the run with exit 1 and the reason), judges each goal with
`report.goal(...)` (printed as met / MISSED; under `--strict` a missed goal exits 3), and
ends with `sys.exit(report.finish())`, which prints `bench NAME: OK ...` on success: the
line the smoke tests look for.

Spread: `Spread` gives the median, min-max, IQR and sample count; `against(...)` says when a
claimed effect (a ratio's distance from 1, a difference from a baseline) is smaller than the
samples' own spread, so a verdict from noise is printed as noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

EXIT_FAILED = 1  # the work the bench timed did not succeed
EXIT_MISSED = 3  # a goal was missed and --strict was given


def add_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every bench takes."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest sizes, one round: checks the bench still works (goals not judged)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 3 when a goal is missed")
    return parser


def load() -> str:
    """The 1-minute load average, to print beside every figure on a shared machine."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


@dataclass(frozen=True)
class Spread:
    """A set of samples: median, min-max, quartiles, count."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        vals = tuple(values)
        if not vals:
            raise ValueError("no samples")
        return cls(vals)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    @property
    def iqr(self) -> tuple[float, float]:
        """Quartiles (inclusive method); min-max when there are fewer than 4 samples."""
        if self.n < 4:
            return self.lo, self.hi
        q = statistics.quantiles(self.values, n=4, method="inclusive")
        return q[0], q[2]

    def text(self, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
        """'12.3 ms (min-max 10.1-15.2, IQR 11.0-13.9, n=7)'."""
        f = f"{{:.{digits}f}}"
        if self.n == 1:
            return f"{f.format(self.median * scale)}{unit} (n=1)"
        q1, q3 = self.iqr
        body = f"{f.format(self.median * scale)}{unit} (min-max {f.format(self.lo * scale)}-{f.format(self.hi * scale)}"
        if self.n >= 4:
            body += f", IQR {f.format(q1 * scale)}-{f.format(q3 * scale)}"
        return body + f", n={self.n})"

    def covers(self, value: float) -> bool:
        """Whether `value` lies inside the samples' band, so they are not told apart from it:
        the IQR from 8 samples on, the whole min-max below (quartiles of a few are noise)."""
        lo, hi = self.iqr if self.n >= 8 else (self.lo, self.hi)
        return lo <= value <= hi


def ratios(numerators: Iterable[float], denominators: Iterable[float]) -> Spread:
    """Per-pair ratios of samples taken side by side."""
    return Spread.of(a / b for a, b in zip(numerators, denominators, strict=True))


def against(spread: Spread, reference: float, what: str = "the effect") -> str:
    """'' when the samples are told apart from `reference`; else a note that the spread is
    wider than the effect claimed (the median's distance from `reference`)."""
    if spread.n < 2 or not spread.covers(reference):
        return ""
    return f"  [spread wider than {what}: {reference:g} lies inside it, so no difference is shown]"


@dataclass
class Report:
    """Collects a bench's checks and goals; `finish` turns them into an exit status."""

    name: str
    smoke: bool = False
    strict: bool = False
    missed: list[str] = field(default_factory=list)
    met: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace) -> Report:
        # The processes a bench starts write bytecode, as on a user's machine: with
        # PYTHONDONTWRITEBYTECODE (set in some shells here) every start would compile
        # diffusers or Textual from source again and time that instead.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        return cls(name, smoke=args.smoke, strict=args.strict)

    def require(self, ok: object, reason: str) -> None:
        """The work being timed must have succeeded; if not, stop with the reason (exit 1)."""
        if not ok:
            self.fail(reason)

    def fail(self, reason: str) -> None:
        print(f"bench {self.name}: FAILED: {reason}", flush=True)
        raise SystemExit(EXIT_FAILED)

    def done(self, what: str) -> None:
        """Record one piece of work that was checked and succeeded."""
        self.checked.append(what)

    def goal(
        self, label: str, met: bool, spread: Spread | None = None, threshold: float | None = None
    ) -> str:
        """Judge a goal; returns 'met' / 'MISSED' (with a note when the spread straddles the
        threshold). In smoke mode goals are shown but not judged: the sizes are too small."""
        if self.smoke:
            return "not judged (smoke)"
        note = ""
        if (
            spread is not None
            and threshold is not None
            and spread.n >= 2
            and spread.lo <= threshold <= spread.hi
        ):
            note = " (the samples straddle the goal)"
        (self.met if met else self.missed).append(label)
        return ("met" if met else "MISSED") + note

    def finish(self) -> int:
        """Print the closing line and return the exit status."""
        checked = "; ".join(self.checked) or "nothing checked"
        if self.missed:
            print(
                f"bench {self.name}: goal MISSED: {', '.join(self.missed)} (work succeeded: {checked})",
                flush=True,
            )
            return EXIT_MISSED if self.strict else 0
        goals = "smoke run, goals not judged" if self.smoke else f"{len(self.met)} goal(s) met"
        print(f"bench {self.name}: OK ({checked}; {goals}; load {load()})", flush=True)
        return 0
