"""How fast `darkroom recipe check` validates 100 recipes, against parsing the same files
with plain yaml.safe_load in the same run (the baseline)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import contextlib

from manager.recipe import RecipeError, load_recipe  # noqa: E402


def main() -> None:
    source = (Path(__file__).resolve().parent.parent / "recipes" / "generator.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(100):
            path = Path(tmp) / f"r{i}.yaml"
            path.write_text(source.replace("id: generator", f"id: gen{i}"))
            paths.append(path)
        start = time.perf_counter()
        for path in paths:
            yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        raw = time.perf_counter() - start
        start = time.perf_counter()
        for path in paths:
            with contextlib.suppress(RecipeError):
                load_recipe(path)
        ours = time.perf_counter() - start
    print(f"100 recipes: yaml.safe_load {raw:.3f} s, darkroom check {ours:.3f} s "
          f"(ratio {ours / raw:.2f}x of bare parsing; goal: well under 10 s in all)")


if __name__ == "__main__":
    main()
