"""The recipe schema and its loader.

A recipe is data, not a script: what to install, which weights, how to launch, how to
tell that the app is ready. Errors read `file:line: field: message`, with the line taken
from the YAML node, and the loader raises nothing but `RecipeError` for any input.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import bundled, validate
from .errors import BadRecipe, NotFound

MAX_RECIPE_BYTES = 1_000_000
MAX_NODES = 50_000
# Bounds that keep every number a recipe gives within what the planner can add up.
MAX_FILE_BYTES = 10**13  # 10 TB: more than any model file
MAX_GB = 100_000.0

Backend = Literal["cuda", "rocm", "mps", "cpu"]
OffloadPolicy = Literal["none", "model", "sequential"]
Precision = Literal[
    "fp32",
    "bf16",
    "fp16",
    "fp8",
    "int8",
    "nf4",
    "gguf-q8",
    "gguf-q6",
    "gguf-q5",
    "gguf-q4",
    "gguf-q3",
    "gguf-q2",
]

# The fixed set of placeholders a command, env value or template may use.
PLACEHOLDERS = frozenset({"port", "host", "models_dir", "app_dir", "env_python", "outputs_dir"})
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_SLUG = r"^[a-z][a-z0-9-]{0,39}$"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_placeholders(text: str) -> str:
    for name in _PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}}; use one of {known}")
    return text


def _check_relative(path: str) -> str:
    """Paths a recipe names stay inside the data folder: relative, no '..'."""
    return validate.relative_path(path)


class ModelFile(_Strict):
    """One file (or a glob of files) to fetch from a Hugging Face repository."""

    repo: str
    path: str = Field(description="File path in the repo; may be a glob such as 'vae/*'")
    revision: str = "main"
    size: int = Field(ge=0, le=MAX_FILE_BYTES, description="Bytes; for a glob, the total")
    sha256: str | None = Field(
        None, description="Pinned hash; null = unverified, the hub's LFS hash is used"
    )
    repo_type: Literal["model", "dataset"] = "model"
    library: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Folder in models/library/ this file (for a glob: each single weight "
        "file it matches) is linked into; overrides the variant's and the model's",
    )

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return validate.weight_repo(v)

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        return validate.revision(v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return _check_relative(v)

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256.match(v):
            raise ValueError("must be 64 lowercase hex characters, or null when unknown")
        return v

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.path for ch in "*?[")


class Variant(_Strict):
    """One way to run a model: a precision, the files it needs, and the memory it takes."""

    id: str = Field(pattern=_SLUG)
    label: str
    precision: Precision
    quality: int = Field(ge=0, le=100, description="Relative output quality; higher is better")
    vram_gb: float = Field(
        ge=0, le=MAX_GB, description="GPU memory at peak with everything on the GPU"
    )
    ram_gb: float = Field(
        ge=0, le=MAX_GB, description="System RAM needed: the whole pipeline's weights, GB"
    )
    offload: dict[Literal["model", "sequential"], float] = Field(
        default_factory=dict, description="GPU memory needed under each offload policy it supports"
    )
    backends: list[Backend] = Field(
        default_factory=lambda: ["cuda", "rocm", "mps", "cpu"], min_length=1
    )
    files: list[ModelFile] = Field(default_factory=list)
    note: str = ""
    memory_source: str = Field(
        "",
        description="Where vram_gb, offload and ram_gb come from "
        "(a published benchmark, a table, a measurement)",
    )
    library: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Folder in models/library/ this variant's files are linked "
        "into; overrides the model's (a GGUF build goes to unet)",
    )

    @field_validator("offload")
    @classmethod
    def _offload(cls, v: dict[str, float]) -> dict[str, float]:
        for key, gb in v.items():
            if not isinstance(gb, (int, float)) or not 0 <= gb <= MAX_GB:
                raise ValueError(f"{key}: must be a number of GB, from 0 to {MAX_GB:g}")
        return v

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files)


class Model(_Strict):
    """A model the app uses, with the variants it can be installed as."""

    id: str = Field(pattern=_SLUG)
    name: str
    task: str = ""
    license: str
    license_url: str | None = None
    commercial: bool
    gated: bool = False
    default: bool = Field(True, description="Installed unless the user leaves it out")
    library: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Folder in models/library/ its files are linked into, "
        "for apps such as ComfyUI (checkpoints, vae, upscale_models ...)",
    )
    common_files: list[ModelFile] = Field(
        default_factory=list, description="Files every variant needs"
    )
    variants: list[Variant] = Field(min_length=1)
    fallback: str | None = Field(
        None,
        pattern=_SLUG,
        description="Another model of this recipe the app uses instead where this one cannot "
        "run (no GPU, too little VRAM): the plan leaves this one out, says why, and keeps that one",
    )

    @model_validator(mode="after")
    def _unique(self) -> Model:
        ids = [v.id for v in self.variants]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"variant ids must be unique; repeated: {', '.join(sorted(dup))}")
        # The installer checks a pin only on a single file (a glob's files each have their own
        # hash), so a pin on a glob would look checked and never be. (Checked here, not on
        # ModelFile, which also carries installed files whose names may hold '[' or '?'.)
        for f in [*self.common_files, *(g for v in self.variants for g in v.files)]:
            if f.sha256 is not None and f.is_pattern:
                raise ValueError(
                    f"sha256 is pinned on '{f.path}', which names several files; "
                    "pin each file's sha256 on an entry of its own"
                )
        return self

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.id == variant_id:
                return v
        raise NotFound(
            f"Model {self.id} has no variant '{variant_id}'.",
            f"Choose one of: {', '.join(v.id for v in self.variants)}.",
        )


class Source(_Strict):
    """Where the app's code comes from: bundled with Darkroom, or a pinned git revision."""

    bundled: str | None = Field(None, pattern=_SLUG)
    git: str | None = None
    revision: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.bundled is None) == (self.git is None):
            raise ValueError("give exactly one of 'bundled' or 'git'")
        if self.git is not None:
            if not self.revision:
                raise ValueError("a git source needs a pinned 'revision' (tag or commit)")
            try:
                validate.git_url(self.git)
            except ValueError as exc:
                raise ValueError(f"git {exc}") from None
            try:
                validate.revision(self.revision)
            except ValueError as exc:
                raise ValueError(f"revision {exc}") from None
        return self


class ExtraRepo(_Strict):
    """A second git repository the app expects inside its folder (Forge's huggingface_guess),
    pinned by full commit so every install gets the same code."""

    git: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$", description="Full 40-character commit")
    dest: str = Field(description="Folder inside the app folder it is cloned into")

    @field_validator("git")
    @classmethod
    def _git(cls, v: str) -> str:
        return validate.git_url(v)  # the same schemes and checks as the app's own source

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str) -> str:
        return _check_relative(v)


class TorchSpec(_Strict):
    """The torch packages the app needs; the planner picks the wheel index for the GPU."""

    packages: list[str] = Field(default_factory=lambda: ["torch"], min_length=1)

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return [validate.requirement(p) for p in v]


class Template(_Strict):
    """A config file rendered from the recipe with placeholders, e.g. ComfyUI's extra_model_paths."""

    dest: str
    content: str

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str) -> str:
        return _check_relative(v)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return _check_placeholders(v)


class Launch(_Strict):
    """How to start the app and how to tell that it is ready."""

    command: list[str] = Field(min_length=1, description="argv, never a shell string")
    port: int = Field(ge=1024, le=65535)
    health: str = "/api/health"
    env: dict[str, str] = Field(default_factory=dict)
    backend_args: dict[Backend, list[str]] = Field(
        default_factory=dict, description="Extra arguments for one backend, e.g. --cpu on cpu"
    )
    startup_timeout_s: float = Field(600, gt=0, le=86_400)

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        for part in v:
            _check_placeholders(part)
        if len(v) == 1 and " " in v[0].strip():
            raise ValueError("must be a list of arguments, not one shell string")
        return v

    @field_validator("backend_args")
    @classmethod
    def _backend_args(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for args in v.values():
            for part in args:
                _check_placeholders(part)
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"'{key}' is not a valid environment variable name")
            _check_placeholders(value)
        return v

    @field_validator("health")
    @classmethod
    def _health(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must be a path starting with '/'")
        return v


class Recipe(_Strict):
    """Everything Darkroom needs to install, launch and check one app."""

    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    version: str
    license: str
    homepage: str | None = None
    source: Source
    python: str = Field("3.11", pattern=r"^3\.\d{1,2}$")
    packages: list[str] = Field(default_factory=list)
    backend_packages: dict[Backend, list[str]] = Field(
        default_factory=dict,
        description="Extra packages for one backend, e.g. bitsandbytes on cuda",
    )
    requirements: list[str] = Field(
        default_factory=list, description="Requirement files inside a git source"
    )
    install: Literal["requirements", "packages", "project"] | None = Field(
        None,
        description="How a git checkout is installed: its requirement files, only `packages`, "
        "or the checkout itself as a package. Default: requirements when it has "
        "a requirements.txt, else the project when it has one",
    )
    data: list[str] = Field(
        default_factory=list,
        description="The app's user-data folders (saved workflows, custom nodes ...), "
        "kept outside the code so update and rollback never touch them",
    )
    extra_repos: list[ExtraRepo] = Field(default_factory=list)
    torch: TorchSpec | None = None
    check_import: str | None = Field(
        None, description="Module the env must import to count as built"
    )
    launch: Launch
    needs: list[str] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)
    concurrent_models: bool = Field(
        False, description="True when the app holds all its models on the GPU at once"
    )
    templates: list[Template] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("requirements")
    @classmethod
    def _reqs(cls, v: list[str]) -> list[str]:
        return [_check_relative(p) for p in v]

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return [validate.requirement(p) for p in v]

    @field_validator("backend_packages")
    @classmethod
    def _backend_packages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for items in v.values():
            for p in items:
                validate.requirement(p)
        return v

    @field_validator("needs")
    @classmethod
    def _needs(cls, v: list[str]) -> list[str]:
        return [validate.app_id(a) for a in v]

    @field_validator("check_import")
    @classmethod
    def _check_import(cls, v: str | None) -> str | None:
        if v is not None and not re.match(
            r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", v
        ):
            raise ValueError("must be a Python module name such as 'mypackage.server'")
        return v

    @field_validator("data")
    @classmethod
    def _data(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_relative(p)
            if not p.strip(" ./"):
                raise ValueError(
                    "a data folder must name a folder inside the app, not the app itself"
                )
        return v

    @model_validator(mode="after")
    def _unique_models(self) -> Recipe:
        ids = [m.id for m in self.models]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"model ids must be unique; repeated: {', '.join(sorted(dup))}")
        if self.id in self.needs:
            raise ValueError("an app cannot need itself")
        return self

    def model(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        raise NotFound(
            f"{self.name} has no model '{model_id}'.",
            f"Its models are: {', '.join(m.id for m in self.models) or 'none'}.",
        )

    @property
    def bundled(self) -> bool:
        return self.source.bundled is not None


# ---------------------------------------------------------------- loading


@dataclass
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        return f"{where} {self.field}: {self.message}" if self.field else f"{where} {self.message}"


class RecipeError(BadRecipe):
    """A recipe that cannot be used; carries every problem found, each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        text = "\n".join(str(p) for p in problems)
        super().__init__(text, "Fix the recipe and run `darkroom recipe check` again.")

    def __str__(self) -> str:
        return self.message


def _walk(
    node: yaml.Node,
    path: tuple,
    lines: dict[tuple, int],
    problems: list[Problem],
    file: str,
    seen: set[int],
) -> Any:
    """Turn a composed YAML node into plain data, recording each path's line.

    Doing this by hand (instead of safe_load) gives line numbers, and lets us refuse
    aliases (no 'billion laughs'), duplicate keys and non-text keys.
    """
    if id(node) in seen:
        raise _Fatal(
            Problem(
                file,
                node.start_mark.line + 1,
                _fmt(path),
                "anchors and aliases (& and *) are not allowed in recipes",
            )
        )
    seen.add(id(node))
    if len(seen) > MAX_NODES:
        raise _Fatal(Problem(file, node.start_mark.line + 1, "", "the recipe is too large"))
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                problems.append(
                    Problem(
                        file, key_node.start_mark.line + 1, _fmt(path), "keys must be plain text"
                    )
                )
                continue
            key = validate.clean_text(key_node.value)
            if key in out:
                problems.append(
                    Problem(file, key_node.start_mark.line + 1, _fmt((*path, key)), "appears twice")
                )
                continue
            out[key] = _walk(value_node, (*path, key), lines, problems, file, seen)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(item, (*path, i), lines, problems, file, seen)
            for i, item in enumerate(node.value)
        ]
    value = _SAFE.construct_object(node, deep=True)
    # Recipe text reaches terminals and pages: no escape sequences, no bidi tricks.
    return validate.clean_text(value, keep_newlines=True) if isinstance(value, str) else value


class _Fatal(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


_SAFE = yaml.SafeLoader("")
# libyaml's parser is ~10x faster; the pure-Python one is the fallback.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _fmt(loc: Iterable) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field (check the spelling)",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
}


def _message(err: dict) -> str:
    kind = err["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {word} {bound}"
    if kind == "string_pattern_mismatch":
        return (
            "must be lowercase letters, digits and '-', starting with a letter"
            if ctx.get("pattern") == _SLUG
            else f"must match {ctx.get('pattern')}"
        )
    if kind in ("too_short", "too_long"):
        return (
            "must not be empty"
            if kind == "too_short" and ctx.get("min_length") == 1
            else err["msg"].lower()
        )
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"][0].lower() + err["msg"][1:]


def parse_recipe(text: str | bytes, file: str = "<recipe>") -> Recipe:
    """Parse and validate recipe text. Raises RecipeError, and only RecipeError."""
    try:
        return _parse(text, file)
    except RecipeError:
        raise
    except _Fatal as fatal:
        raise RecipeError([fatal.problem]) from None
    except RecursionError:
        raise RecipeError([Problem(file, 0, "", "the recipe is nested too deeply")]) from None
    except Exception as exc:  # a last net: no traceback ever reaches the user
        raise RecipeError(
            [Problem(file, 0, "", f"could not be read ({type(exc).__name__})")]
        ) from None


def _parse(text: str | bytes, file: str) -> Recipe:
    if isinstance(text, bytes):
        if len(text) > MAX_RECIPE_BYTES:
            raise RecipeError(
                [
                    Problem(
                        file,
                        0,
                        "",
                        f"is {len(text):,} bytes; a recipe may be at most {MAX_RECIPE_BYTES:,}",
                    )
                ]
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecipeError(
                [Problem(file, 0, "", f"is not UTF-8 text (bad byte at offset {exc.start})")]
            ) from None
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(
            [
                Problem(
                    file, 0, "", f"is too large; a recipe may be at most {MAX_RECIPE_BYTES:,} bytes"
                )
            ]
        )
    if "\x00" in text:
        raise RecipeError([Problem(file, 0, "", "contains NUL bytes; it is not a text file")])
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise RecipeError(
            [Problem(file, line, "", f"YAML syntax error: {exc.problem or exc.context}")]
        ) from None
    except yaml.YAMLError as exc:
        raise RecipeError([Problem(file, 0, "", f"YAML error: {exc}")]) from None
    if node is None:
        raise RecipeError(
            [Problem(file, 1, "", "is empty; a recipe needs at least id, name and launch")]
        )
    if not isinstance(node, yaml.MappingNode):
        raise RecipeError(
            [
                Problem(
                    file, node.start_mark.line + 1, "", "must be a mapping of fields (key: value)"
                )
            ]
        )
    lines: dict[tuple, int] = {}
    problems: list[Problem] = []
    try:
        data = _walk(node, (), lines, problems, file, set())
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise RecipeError(
            [Problem(file, line, "", f"unsupported YAML value: {exc.problem}")]
        ) from None
    if problems:
        raise RecipeError(problems)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            out.append(Problem(file, _line_for(loc, lines), _fmt(loc), _message(err)))
        raise RecipeError(out) from None


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), 1)


def load_recipe(path: Path) -> Recipe:
    """Load one recipe file; any problem, including an unreadable file, is a RecipeError."""
    name = validate.shown(path, limit=200)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        why = (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a usable file name"
        )
        raise RecipeError([Problem(name, 0, "", f"cannot be read: {why}")]) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RecipeError(
            [
                Problem(
                    name,
                    0,
                    "",
                    "is not a regular file (a folder, pipe or device); "
                    "give the path of a recipe .yaml file",
                )
            ]
        )
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_RECIPE_BYTES:
            raise RecipeError(
                [
                    Problem(
                        name,
                        0,
                        "",
                        f"is {info.st_size:,} bytes; a recipe may be at most {MAX_RECIPE_BYTES:,}",
                    )
                ]
            )
        try:
            data = handle.read(MAX_RECIPE_BYTES + 1)
        except OSError as exc:
            raise RecipeError(
                [Problem(name, 0, "", f"cannot be read: {exc.strerror or exc}")]
            ) from None
    return parse_recipe(data, name)


def bundled_recipes() -> dict[str, Recipe]:
    """The recipes shipped with Darkroom, by app id."""
    out = {}
    for path in sorted(bundled.recipes_dir().glob("*.yaml")):
        recipe = load_recipe(path)
        out[recipe.id] = recipe
    return out
