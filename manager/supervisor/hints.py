"""Plain-language hints for an app that keeps crashing, guessed from its last log lines."""

from __future__ import annotations

import signal

_PATTERNS: list[tuple[tuple[str, ...], str]] = [
    (
        ("CUDA out of memory", "OutOfMemoryError", "out of memory"),
        "The graphics card ran out of memory. Stop other apps that use it, or reinstall "
        "{app} with a smaller model variant (`darkroom install {app} --variant ...`).",
    ),
    (
        ("ModuleNotFoundError", "ImportError", "No module named"),
        "Part of {app}'s Python environment is missing or broken. Run `darkroom env repair {app}`.",
    ),
    (
        (
            "Address already in use",
            "address already in use",
            "Only one usage of each socket address",
        ),
        "Another program took {app}'s port. Close it, or start {app} again to get another port.",
    ),
    (
        ("Permission denied", "PermissionError"),
        "{app} was not allowed to open a file or port it needs; check the data folder's permissions.",
    ),
    (
        ("No space left on device",),
        "The disk is full. Free some space (`darkroom gc` removes unused downloads).",
    ),
]

DEFAULT = (
    "{app} keeps crashing right after it starts. Its last log lines are above; "
    "`darkroom logs {app}` shows the rest. `darkroom env repair {app}` rebuilds its "
    "environment, which fixes most such crashes."
)


def crash_hint(app: str, lines: list[str]) -> str:
    text = "\n".join(lines)
    for needles, hint in _PATTERNS:
        if any(n in text for n in needles):
            return hint.format(app=app)
    return DEFAULT.format(app=app)


def describe_exit(code: int | None) -> str:
    """'exited with code 3' or 'was killed by signal 9 (SIGKILL)'."""
    if code is None:
        return "stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-code} ({name})"
    return f"exited with code {code}"
