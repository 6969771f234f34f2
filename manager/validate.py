"""One place that decides which names may become a path, a command argument or a URL.

App ids, git revisions and URLs, package entries, weight repos, paths and revisions all
come from people or recipe files Darkroom does not control. Each is checked here, before
it is joined to a path or put on a command line, so that a value such as
`--upload-pack=...`, `../../x` or `-r/etc/shadow` can never reach git, uv or the disk.
Every check raises `ValueError` with a short reason (the recipe schema turns it into a
`file:line: field: reason`); `app_id_or_fail` raises the user-facing `DarkroomError`.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from .errors import NotFound

APP_ID_MAX = 40
APP_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# A git ref (tag or branch) or a commit id: starts with a letter or digit, so never an option.
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SCP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._~/-]+$")
_URL_SAFE = re.compile(r"^[A-Za-z0-9:/?#\[\]@!$&'()*+,;=._~%-]+$")
GIT_SCHEMES = ("https://", "ssh://", "file://")
REQUIREMENT_URL_SCHEMES = ("https://", "git+https://", "file://")
MAX_PATH_CHARS = 1000


def app_id(value: str) -> str:
    """An app id: lowercase letters, digits and '-', starting with a letter, at most 40."""
    if not isinstance(value, str) or not APP_ID_RE.fullmatch(value):
        raise ValueError(
            "must be lowercase letters, digits and '-', starting with a letter "
            f"(at most {APP_ID_MAX} characters)"
        )
    return value


def app_id_or_fail(value: str) -> str:
    """The same check for a name typed on the command line, as a sentence with what to do."""
    try:
        return app_id(value)
    except ValueError:
        raise NotFound(
            f"'{shown(value)}' is not an app name.",
            "App names are lowercase letters, digits and '-' (for example: generator); "
            "`darkroom list` shows them.",
        ) from None


def revision(value: str) -> str:
    """A commit id, tag or branch name; never an option, a path out ('..') or a reflog form."""
    if not isinstance(value, str) or not _REF_RE.fullmatch(value):
        raise ValueError(
            "must be a commit id, tag or branch name (letters, digits, '.', '_', '-', '/'; "
            "not starting with '-')"
        )
    if ".." in value or "//" in value or value.endswith(("/", ".", ".lock")) or "/." in value:
        raise ValueError("is not a valid tag or branch name")
    return value


def git_url(value: str) -> str:
    """A git URL with an allowed transport: https://, ssh://, user@host:path or file://."""
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise ValueError("must be a git URL")
    if value.startswith((*GIT_SCHEMES, "/")):  # "/..." is a local folder, as file:// is
        if not _URL_SAFE.fullmatch(value) or "::" in value:
            raise ValueError("contains characters a git URL may not have")
        if re.search(r"(^|[@:])-", urlsplit(value).netloc) or re.search(r"/-", value):
            raise ValueError("must not name a host or folder starting with '-'")
        return value
    if _SCP_RE.fullmatch(value) and "::" not in value:
        return value
    raise ValueError(
        "must be an https://, ssh://, user@host:path or file:// URL, or a local folder "
        "(other transports, such as ext::, can run commands)"
    )


def requirement(value: str) -> str:
    """A PEP 508 requirement (`name[extra]>=1.0; marker`), never an installer option."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a package requirement such as 'diffusers>=0.30'")
    if value.lstrip().startswith("-"):
        raise ValueError(
            f"'{shown(value)}' is an installer option, not a package; "
            "recipes may list package requirements only"
        )
    from packaging.requirements import InvalidRequirement, Requirement  # only recipes need it

    try:
        req = Requirement(value)
    except InvalidRequirement:
        raise ValueError(
            f"'{shown(value)}' is not a package requirement (PEP 508), such as 'diffusers>=0.30'"
        ) from None
    if req.url and not req.url.startswith(REQUIREMENT_URL_SCHEMES):
        raise ValueError(f"'{shown(value)}': a package URL must be https:// or file://")
    return value


def weight_repo(value: str) -> str:
    """A Hugging Face repository: owner/name."""
    if not isinstance(value, str) or not _REPO_RE.fullmatch(value) or ".." in value:
        raise ValueError("must look like 'owner/name'")
    return value


def relative_path(value: str) -> str:
    """A path a recipe names: relative, inside its folder, no '..', no drive or control characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_PATH_CHARS or has_control(value):
        raise ValueError(
            "must be a relative path inside the app folder, without control characters"
        )
    posix, win = PurePosixPath(value), PureWindowsPath(value)
    if (
        posix.is_absolute()
        or win.is_absolute()
        or win.drive
        or value.startswith(("/", "\\"))
        or ".." in posix.parts
        or ".." in win.parts
    ):
        raise ValueError("must be a relative path inside the app folder, without '..'")
    return value


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def clean_text(text: str, keep_newlines: bool = False) -> str:
    """Recipe text fit for a terminal: control and format characters (ANSI escapes, bidi
    overrides) are dropped, so a recipe cannot move the cursor or hide what it says."""
    text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?", "", text)
    keep = "\n\t" if keep_newlines else ""
    return "".join(ch for ch in text if ch in keep or unicodedata.category(ch) not in ("Cc", "Cf"))


def shown(value: object, limit: int = 60) -> str:
    """A value the user typed, safe and short enough to quote back in a message."""
    text = clean_text(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
