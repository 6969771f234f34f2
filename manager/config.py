"""User settings: mirrors and wheel folders, the Hugging Face token, the bind address.

Stored as config.yaml in the data folder with 0600 permissions (it may hold a token).
Environment variables override the file so CI and power users need not edit it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import DarkroomError, NotFound
from .fsutil import atomic_write_text
from .home import Home

SECRET_KEYS = {"hf_token"}


class Settings(BaseModel):
    """Everything a user may set. Unknown keys are an error, so typos are caught."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    hf_token: str | None = Field(None, description="Hugging Face token for gated models")
    hf_endpoint: str | None = Field(
        None, description="Hugging Face mirror, e.g. https://hf-mirror.com"
    )
    index_url: str | None = Field(None, description="Python package index replacing PyPI")
    extra_index_urls: list[str] = Field(default_factory=list, description="Extra package indexes")
    find_links: list[str] = Field(default_factory=list, description="Folders or pages with wheels")
    index_strategy: Literal["first-index", "unsafe-first-match", "unsafe-best-match"] = Field(
        "first-index",
        description="Which index a package may come from: first-index (safe) takes each "
        "package only from the first index that has it; unsafe-best-match lets a partial mirror "
        "fall back to the next index",
    )
    torch_index_urls: dict[str, str] = Field(
        default_factory=dict,
        description="PyTorch wheel index per build on your mirror, e.g. "
        "{cpu: https://mirror/whl/cpu, cu124: https://mirror/whl/cu124}; without one, a machine "
        "without a GPU takes torch from PyTorch's CPU index",
    )
    offline: bool = Field(False, description="Never touch the network; use caches only")
    bind_host: str = Field(
        "127.0.0.1", description="Address apps listen on; 0.0.0.0 shares on the LAN"
    )
    port_start: int = Field(7860, ge=1024, le=65000, description="First port tried for apps")
    port_end: int = Field(7960, ge=1024, le=65535, description="Last port tried for apps")
    idle_unload_minutes: int = Field(
        0, ge=0, description="Free GPU memory after N idle minutes; 0 = never"
    )
    parallel_downloads: int = Field(4, ge=1, le=16, description="Files downloaded at once")

    @field_validator("torch_index_urls", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """`cpu=URL cu124=URL` (how `darkroom config set` passes it) or a mapping."""
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.replace(",", " ").split() if part]
            if any(len(pair) != 2 or not pair[1] for pair in pairs):
                raise ValueError("write build=URL pairs, e.g. cpu=https://mirror/whl/cpu")
            value = dict(pairs)
        if isinstance(value, dict):
            bad = [k for k in value if not re.fullmatch(r"cpu|cu1[0-9]{2}|rocm[0-9.]+", str(k))]
            if bad:
                raise ValueError(
                    f"unknown torch build {bad[0]!r} (use cpu, cu124, cu128, rocm6.3, ...)"
                )
        return value

    @field_validator("extra_index_urls", "find_links", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split() if part]
        return value


# Environment variables that override the file: name -> setting.
ENV_OVERRIDES = {
    "HF_TOKEN": "hf_token",
    "HF_ENDPOINT": "hf_endpoint",
    "DARKROOM_INDEX_URL": "index_url",
    "DARKROOM_EXTRA_INDEX_URLS": "extra_index_urls",
    "DARKROOM_FIND_LINKS": "find_links",
    "DARKROOM_INDEX_STRATEGY": "index_strategy",
    "DARKROOM_OFFLINE": "offline",
    "DARKROOM_BIND_HOST": "bind_host",
}


def load_file(home: Home) -> Settings:
    """The settings as saved in config.yaml (no environment overrides)."""
    path = home.config_file
    if not path.exists():
        return Settings()
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError("the file is not a mapping of settings")
        return Settings.model_validate(raw)
    except (yaml.YAMLError, ValueError, ValidationError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DarkroomError(
            f"The settings file {path} could not be read ({first}).",
            "Fix it by hand, or delete it to go back to the defaults.",
        ) from None


def load(home: Home) -> Settings:
    """The settings in force: the file, then environment overrides on top."""
    settings = load_file(home)
    updates: dict[str, Any] = {}
    for var, key in ENV_OVERRIDES.items():
        value = os.environ.get(var)
        if value:
            updates[key] = value.lower() in ("1", "true", "yes") if key == "offline" else value
    if updates:
        settings = Settings.model_validate({**settings.model_dump(), **updates})
    return settings


def save(home: Home, settings: Settings) -> None:
    data = settings.model_dump(exclude_defaults=True)
    atomic_write_text(home.config_file, yaml.safe_dump(data, sort_keys=True), mode=0o600)


MIRROR = "mirror"  # not stored: sets find_links, extra_index_urls and index_strategy together


def mirror_settings(settings: Settings, value: str) -> Settings:
    """`mirror` = wheel folders/pages and package indexes, as one setting.

    Each part ending in `simple` (a PEP 503 index) becomes an extra index, every other part
    (a folder of wheels, a page of links) a find-links source. A mirror seldom holds every
    package, so the index strategy becomes unsafe-best-match: a package the mirror lacks comes
    from PyPI instead of failing the build. An empty value takes all three back to the defaults.
    """
    parts = value.split()
    indexes = [p for p in parts if p.rstrip("/").endswith("simple")]
    links = [p for p in parts if p not in indexes]
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "extra_index_urls": indexes,
            "find_links": links,
            "index_strategy": "unsafe-best-match" if parts else "first-index",
        }
    )


def mirror_note(settings: Settings) -> str:
    """What `config set mirror` did, in words: the three settings and why the strategy changed."""
    if not settings.find_links and not settings.extra_index_urls:
        return "No mirror: packages come from the package index only (index_strategy first-index)."
    return (
        f"find_links: {', '.join(settings.find_links) or '-'}; extra_index_urls: "
        f"{', '.join(settings.extra_index_urls) or '-'}; index_strategy: {settings.index_strategy}. "
        "Note: a package the mirror lacks now comes from the package index, and one that both have "
        "comes from whichever holds the best version, so use only mirrors you trust."
    )


def set_value(home: Home, key: str, value: str) -> Settings:
    """Set one setting from its text form, validated; the file is left as it was on error."""
    settings = load_file(home)
    if key == MIRROR:
        updated = mirror_settings(settings, value)
        save(home, updated)
        return updated
    if key not in Settings.model_fields:
        from .suggest import did_you_mean

        known = ", ".join(sorted([*Settings.model_fields, MIRROR]))
        near = did_you_mean(key, [*Settings.model_fields, MIRROR])
        shown = key if len(key) <= 60 else key[:59] + "…"
        raise NotFound(f"There is no setting called '{shown}'.{near}", f"Known settings: {known}.")
    field = Settings.model_fields[key]
    parsed: Any = value
    if value == "" and field.default is None:
        parsed = None
    try:
        updated = Settings.model_validate({**settings.model_dump(), key: parsed})
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise DarkroomError(
            f"'{value}' is not a valid value for {key}: {msg}.", f"{field.description}."
        ) from None
    save(home, updated)
    return updated


def public_view(settings: Settings) -> dict[str, Any]:
    """Settings safe to print or log: secrets masked."""
    data = settings.model_dump()
    for key in SECRET_KEYS:
        if data.get(key):
            data[key] = "****" + data[key][-4:] if len(data[key]) > 8 else "****"
    return data
