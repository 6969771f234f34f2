"""How fast `darkroom recipe check` validates 100 recipes, against parsing the same files
with plain yaml.safe_load (libyaml when present) in the same run: the baseline.

    .venv/bin/python bench/recipes.py [--count 100] [--rounds 7] [--smoke] [--strict]

Each round times both over the same files, alternating which goes first; figures are the
median with spread over the rounds. Every recipe must validate (and keep its own id); a
recipe the checker rejects fails the bench, so the figure is never the time to reject.
Goal: 100 recipes well under 10 s in all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._stats import Report, Spread, add_args, against, load, ratios  # noqa: E402
from manager.errors import DarkroomError  # noqa: E402
from manager.recipe import load_recipe  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = add_args(parser).parse_args()
    if args.smoke:
        args.count, args.rounds = 10, 1
    report = Report.from_args("recipes", args)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    source = (ROOT / "recipes" / "generator.yaml").read_text()
    raw_t: list[float] = []
    ours_t: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.count):
            path = Path(tmp) / f"r{i}.yaml"
            path.write_text(source.replace("id: generator", f"id: gen{i}"))
            paths.append(path)

        def raw() -> None:
            start = time.perf_counter()
            for path in paths:
                yaml.load(path.read_text(), Loader=loader)
            raw_t.append(time.perf_counter() - start)

        def ours() -> None:
            start = time.perf_counter()
            try:
                ids = [load_recipe(path).id for path in paths]
            except DarkroomError as exc:
                report.fail(f"a recipe did not validate: {exc}")
            ours_t.append(time.perf_counter() - start)
            report.require(
                ids == [f"gen{i}" for i in range(args.count)], f"recipes came back as {ids[:3]}..."
            )

        for i in range(args.rounds):
            for step in (raw, ours) if i % 2 == 0 else (ours, raw):
                step()
    report.done(f"{args.count} recipes validated x {args.rounds} rounds")
    ours_s, raw_s, ratio = Spread.of(ours_t), Spread.of(raw_t), ratios(ours_t, raw_t)
    print(f"{args.count} recipes, load {load()}:")
    print(f"  yaml.safe_load ({loader.__name__}) {raw_s.text(unit=' s', digits=3)}")
    print(f"  darkroom check            {ours_s.text(unit=' s', digits=3)}")
    print(f"  ratio check / bare parse  {ratio.text(unit='x', digits=2)}{against(ratio, 1.0)}")
    goal = 10.0 * args.count / 100
    print(
        f"  goal: {args.count} recipes well under {goal:g} s: "
        f"{report.goal('recipe check under 10 s per 100', ours_s.hi < goal, ours_s, goal)}"
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
