"""The recipe loader: real YAML files, exact error locations, and a fuzz proving it never
raises anything but RecipeError."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager import bundled
from manager.recipe import Recipe, RecipeError, bundled_recipes, load_recipe, parse_recipe

GOOD = """\
id: tiny
name: Tiny
description: a test app
version: "1.0"
license: mit
source:
  bundled: tiny
launch:
  command: ["{env_python}", "-m", "tiny"]
  port: 7900
models:
  - id: m
    name: Model
    license: apache-2.0
    commercial: true
    variants:
      - id: bf16
        label: full
        precision: bf16
        quality: 100
        vram_gb: 4
        ram_gb: 8
        files:
          - {repo: owner/name, path: a.safetensors, size: 10}
"""


def problems(text: str | bytes, name: str = "r.yaml") -> list[str]:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, name)
    return [str(p) for p in info.value.problems]


def test_bundled_recipes_are_valid_and_cover_the_four_apps() -> None:
    recipes = bundled_recipes()
    assert set(recipes) >= {"generator", "restorer", "colorizer", "workflow"}
    gen = recipes["generator"]
    assert {"flux-schnell", "flux-dev", "sd35-large", "sd35-medium"} <= {m.id for m in gen.models}
    assert not gen.model("flux-dev").commercial and gen.model("flux-dev").gated
    assert recipes["workflow"].needs == ["restorer", "colorizer"]


CHECKED = Path(__file__).resolve().parent.parent / "docs" / "checked-hashes.md"
_ROW = re.compile(
    r"^\| `(?P<repo>[^`]+)` \| `(?P<path>[^`]+)` \| (?P<revision>[^|]+?) \| "
    r"(?P<bytes>~?\d+) \| (?P<sha>[0-9a-f]{64}) \| (?P<source>[^|]*?) \|$"
)
# A source is an https:// address or a GitHub file named as `owner/repo path@commit`.
_SOURCE = re.compile(r"https://\S+|\b[\w.-]+/[\w.-]+ [\w./-]+@[0-9a-f]{7,40}\b")


@dataclass(frozen=True)
class CheckedRow:
    """One row of docs/checked-hashes.md: a file's size and hash and where they were read."""

    repo: str
    path: str
    revision: str
    size: int  # exact, or the hub's rounded figure where the row writes ~N
    sha256: str
    source: str


def checked_rows(text: str) -> list[CheckedRow]:
    rows = []
    for line in text.splitlines():
        if m := _ROW.match(line.strip()):
            rows.append(
                CheckedRow(
                    m["repo"],
                    m["path"],
                    m["revision"].strip(),
                    int(m["bytes"].lstrip("~")),
                    m["sha"],
                    m["source"],
                )
            )
    return rows


def unrecorded_pins(recipes: list[Recipe], notes: str, checked: str) -> list[str]:
    """Each pinned hash that is in neither record, and each recorded file whose recipe size or
    revision disagrees with its row: [] when every pin was read somewhere public."""
    rows = checked_rows(checked)
    by_file = {(r.repo, r.path): r for r in rows}
    wrong: list[str] = []
    for recipe in recipes:
        for model in recipe.models:
            for f in [*model.common_files, *(g for v in model.variants for g in v.files)]:
                where = f"{recipe.id}/{model.id}: {f.repo}/{f.path}"
                row = by_file.get((f.repo, f.path))
                if row is not None:
                    if f.size and f.size != row.size:
                        wrong.append(f"{where}: size {f.size} but the record says {row.size}")
                    pins = [
                        x for x in (f.revision, row.revision) if re.fullmatch("[0-9a-f]{40}", x)
                    ]
                    if len(pins) == 2 and pins[0] != pins[1]:
                        wrong.append(f"{where}: revision {f.revision} but read at {row.revision}")
                if not f.sha256 or f.sha256 in notes:
                    continue
                if row is None or row.sha256 != f.sha256:
                    wrong.append(f"{where}: sha256 {f.sha256} is in no record")
                elif not _SOURCE.search(row.source):
                    wrong.append(f"{where}: its row names no source address")
    return wrong


def test_pinned_hashes_in_bundled_recipes_were_read_in_a_public_source() -> None:
    # Every pinned hash must be one recorded in shared/notes/models.md or in a sourced row of
    # docs/checked-hashes.md, never invented; sizes of recorded files must be the record's.
    notes = Path(bundled.recipes_dir()).parent.parent / "shared" / "notes" / "models.md"
    if not notes.exists():
        pytest.skip("shared/notes is not beside this checkout")
    recipes = list(bundled_recipes().values())
    assert unrecorded_pins(recipes, notes.read_text(), CHECKED.read_text()) == []
    assert len(checked_rows(CHECKED.read_text())) >= 20  # the table still parses


ROW = "| `owner/name` | `a.safetensors` | main | 10 | " + "ab" * 32 + " | https://example.org/a |"


@pytest.mark.parametrize(
    ("checked", "expect"),
    [
        ("", "is in no record"),  # an invented hash: in neither file
        (ROW.replace("ab" * 32, "cd" * 32), "is in no record"),  # a row for another hash
        (ROW.replace("https://example.org/a", "read somewhere"), "names no source address"),
        (ROW.replace("| 10 |", "| 11 |"), "size 10 but the record says 11"),
        (ROW.replace("`a.safetensors`", "`b.safetensors`"), "is in no record"),
    ],
)
def test_a_pin_without_a_sourced_matching_record_is_refused(checked: str, expect: str) -> None:
    recipe = parse_recipe(GOOD.replace("size: 10}", "size: 10, sha256: " + "ab" * 32 + "}"))
    wrong = unrecorded_pins([recipe], "notes that name other hashes", checked)
    assert len(wrong) == 1 and expect in wrong[0], wrong
    assert unrecorded_pins([recipe], "notes: " + "ab" * 32, "") == []  # the notes suffice
    assert unrecorded_pins([recipe], "", ROW) == []
    github = ROW.replace("https://example.org/a", "someone/tool scripts/get.sh@3ed8e30")
    assert unrecorded_pins([recipe], "", github) == []


def test_a_recorded_file_keeps_the_record_s_size_and_revision() -> None:
    recipe = parse_recipe(GOOD)  # no pin: the recorded size is still the recipe's size
    assert unrecorded_pins([recipe], "", ROW.replace("| 10 |", "| ~10 |")) == []
    (msg,) = unrecorded_pins([recipe], "", ROW.replace("| 10 |", "| ~12 |"))
    assert "size 10 but the record says 12" in msg
    pinned = parse_recipe(
        GOOD.replace("path: a.safetensors", f"revision: {'a' * 40}, path: a.safetensors")
    )
    (msg,) = unrecorded_pins([pinned], "", ROW.replace("| main |", f"| {'b' * 40} |"))
    assert "but read at " + "b" * 40 in msg
    assert unrecorded_pins([pinned], "", ROW.replace("| main |", f"| {'a' * 40} |")) == []


def test_a_pin_on_a_glob_is_refused() -> None:
    # The installer checks pins on single files only; on a glob it would never be checked.
    bad = GOOD.replace(
        "path: a.safetensors, size: 10}", 'path: "vae/*", size: 10, sha256: ' + "ab" * 32 + "}"
    )
    (msg,) = problems(bad)
    assert "names several files" in msg and msg.startswith("r.yaml:") and "models[0]" in msg


def test_good_recipe_parses() -> None:
    recipe = parse_recipe(GOOD)
    assert recipe.launch.port == 7900
    assert recipe.model("m").variants[0].download_bytes == 10


def test_error_names_file_line_and_field() -> None:
    bad = GOOD.replace("vram_gb: 4", "vram_gb: lots")
    (msg,) = problems(bad, "recipes/generator.yaml")
    line = bad.splitlines().index("        vram_gb: lots") + 1
    assert msg == f"recipes/generator.yaml:{line}: models[0].variants[0].vram_gb: must be a number"


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (("port: 7900", "port: -1"), "launch.port: must be at least 1024"),
        (("size: 10", "size: -5"), "size: must be at least 0"),
        (("size: 10}", "size: 10, sha256: abc}"), "sha256: must be 64 lowercase hex"),
        (("license: mit", "license: mit\ncolour: red"), "colour: is not a known field"),
        (("name: Tiny\n", ""), "name: is required"),
        (('"-m", "tiny"]', '"-m", "{nope}"]'), "unknown placeholder {nope}"),
        (("precision: bf16", "precision: fp3"), "precision: must be one of"),
        (("path: a.safetensors", "path: ../../etc/passwd"), "must be a relative path"),
        (("bundled: tiny", "git: https://example.org/x.git"), "pinned 'revision'"),
        (("id: tiny", "id: Tiny App"), "id: must be lowercase"),
        (("license: mit", "license: mit\nlicense: gpl"), "license: appears twice"),
    ],
)
def test_each_kind_of_mistake_has_a_plain_message(change: tuple[str, str], expect: str) -> None:
    msgs = problems(GOOD.replace(*change, 1))
    assert any(expect in m for m in msgs), msgs
    assert all(m.startswith("r.yaml:") for m in msgs)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8"),
        (b"id: x\x00\x01", "NUL"),
        ("- just\n- a list\n", "must be a mapping"),
        ("id: [unclosed\n", "YAML syntax error"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("? [complex, key]\n: 1\n", "keys must be plain text"),
        ("x" * 2_000_000, "at most"),
        ("[" * 5000 + "]" * 5000, "nest"),
    ],
)
def test_junk_input_is_a_recipe_error(text: str | bytes, expect: str) -> None:
    msgs = problems(text)
    assert any(expect in m for m in msgs), msgs


def test_unreadable_file_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "missing.yaml")
    assert "cannot be read" in str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_fuzz_raw_input_only_raises_recipe_error(data: bytes | str) -> None:
    with contextlib.suppress(RecipeError):
        parse_recipe(data)


_yaml_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["id", "name", "launch", "models", "source", "version", "x"]),
        _yaml_values,
        max_size=6,
    )
)
def test_fuzz_structured_input_only_raises_recipe_error(doc: dict) -> None:
    try:
        parse_recipe(yaml.safe_dump(doc))
    except RecipeError as exc:
        assert all(str(p).startswith("<recipe>:") for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.text(max_size=8))
def test_fuzz_mutated_good_recipe(pos: int, junk: str) -> None:
    with contextlib.suppress(RecipeError):
        parse_recipe(GOOD[:pos] + junk + GOOD[pos + 1 :])
