"""Suggestions ("did you mean …?") for mistyped commands and app ids: one close match, or nothing.

Kept apart from the commands so every place that meets an unknown name words it the same way.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable

from .errors import DarkroomError, NotFound


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The one candidate close enough to `word` to be what was meant, if any."""
    names = sorted(set(candidates))
    lowered = {n.lower(): n for n in names}
    if word.lower() in lowered:
        return lowered[word.lower()]
    prefixed = [n for n in names if len(word) >= 3 and n.lower().startswith(word.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    swapped = [n for n in names if sorted(n.lower()) == sorted(word.lower())]  # letters swapped
    if len(swapped) == 1:
        return swapped[0]
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' Did you mean 'x'?' to append to a sentence, or '' when nothing is close."""
    match = closest(word, candidates)
    return f" Did you mean '{match}'?" if match and match != word else ""


def app_ids(home=None) -> set[str]:
    """Every app id a person could mean: the bundled ones and those installed from elsewhere."""
    from . import state
    from .recipe import bundled_recipes

    ids = set(bundled_recipes())
    if home is not None:
        ids |= set(state.load(home).apps)
    return ids


def unknown_verb(parser: argparse.ArgumentParser, argv: list[str]) -> DarkroomError | None:
    """The error for a word that is no command (`darkroom instal`, `darkroom models pul`), with
    the closest one; None when every command word is known.

    argparse's own "invalid choice" lists every command and suggests nothing.
    """
    said: list[str] = []
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word.startswith("-"):
            return None
        verbs = subs[0].choices
        if word not in verbs:
            near = closest(word, verbs)
            error = DarkroomError(
                f"There is no command '{' '.join([*said, word])}'."
                + (f" Did you mean '{' '.join([*said, near])}'?" if near else ""),
                f"Run `darkroom {' '.join([*said, '--help'])}` to see the commands.",
            )
            error.exit_code = 2  # a usage mistake, as argparse reports its own
            return error
        said.append(word)
        parser = verbs[word]
    return None


def not_installed(home, app: str, hint: str = "") -> NotFound:
    """The "X is not installed." error, with the app it most likely means (installed ones first)."""
    from . import state

    installed = state.load(home).apps
    near = did_you_mean(app, installed) or did_you_mean(app, app_ids())
    if not hint:
        known = app in app_ids(home)
        hint = (
            f"Run `darkroom install {app}` first."
            if known
            else "Run `darkroom list` to see the apps."
        )
    return NotFound(f"{app} is not installed.{near}", hint)
