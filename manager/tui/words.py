"""The core's sentences as a TUI user should read them.

The core's hints name CLI commands ("Start it with `darkroom start tiny`"), right for a
terminal and wrong on a screen where nobody types commands: there the same step is a
button or a key. `no_commands` rewrites each command into the place in the TUI that does
it; whatever has no TUI equivalent is named as a step, never as a line to type.
"""

from __future__ import annotations

import re

from ..errors import DarkroomError

# `darkroom VERB ...` (in backticks, or after "$ ") -> what does the same in the TUI.
# Matched against the command's words after "darkroom"; the first pattern that fits wins.
_PLACES: list[tuple[str, str]] = [
    (r"start \S+ --switch", "Start on its card, then answer Switch"),
    (r"start\b.*", "the Start button (key s)"),
    (r"stop\b.*", "the Stop button (key x)"),
    (r"restart\b.*", "Restart (key r) on the app's screen"),
    (r"open\b.*", "the Open button (key o)"),
    (r"logs\b.*", "the log on the app's screen (Enter on its card)"),
    (r"install \S+ --variant.*", "Install again and pick a smaller variant"),
    (r"install\b.*", "the Install button (key i) on its card"),
    (r"update\b.*", "Update (key u) on the app's screen"),
    (r"doctor\b.*", "Doctor (key d on Home), then Fix"),
    (r"env (repair|build)\b.*", "Doctor (key d on Home), then Fix"),
    (r"models pull\b.*", "Doctor (key d on Home), then Fix"),
    (r"(models )?gc\b.*", "Models (key m on Home), then Delete unused (key g)"),
    (r"models import\b.*", "copying the files into the model folder"),
    (r"cache prune\b.*", "Doctor (key d on Home)"),
    (r"config set hf_token\b.*", "Settings (key c on Home), Hugging Face token"),
    (r"config set\b.*", "Settings (key c on Home)"),
    (r"(list|status)\b.*", "the Home screen"),
    (r"(probe|plan)\b.*", "the machine line on the Home screen"),
    (r"run\b.*", "Workflow (key w on Home)"),
    (r"recipe check\b.*", "Add recipe (key a on Home), which checks it"),
]
_COMMAND = re.compile(r"(?:\b([Rr]un) )?(?:`darkroom ([^`]*)`|\$ darkroom ([^\n]*))")


def _place(words: str) -> str:
    for pattern, place in _PLACES:
        if re.fullmatch(pattern, words.strip()):
            return place
    return "the Home screen"


def no_commands(text: str) -> str:
    """`text` with every `darkroom ...` command replaced by the button or key that does it."""

    def place(m: re.Match) -> str:
        verb = {"Run": "Use ", "run": "use "}.get(m.group(1) or "", "")
        return verb + _place(m.group(2) or m.group(3) or "")

    return _COMMAND.sub(place, text)


def error_text(exc: DarkroomError) -> str:
    """The error's two sentences (what happened, then what to do), in the TUI's words."""
    return no_commands(f"{exc.message}\n{exc.hint}" if exc.hint else exc.message)
