"""User-facing errors: every failure a person can meet ends in a sentence that says what to do.

The kinds below let a face offer the right next step (a token field for `Gated`, "free some
space" for `DiskFull`) and give scripts a distinct exit code for each; the README lists them.
Every kind is a DarkroomError, so `except DarkroomError` still catches them all.
"""

from __future__ import annotations


class DarkroomError(Exception):
    """An error whose message is written for the user, not the programmer.

    `message` says what happened; `hint` says what to do next. The CLI prints both
    and exits with `exit_code`; the TUI shows the same text as a notification.
    """

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class NotFound(DarkroomError):
    """Something the user named (an app, a model, a profile) does not exist."""

    exit_code = 3
    kind = "not-found"


class Conflict(DarkroomError):
    """The action collides with the current state (already running, locked, busy, ...)."""

    exit_code = 4
    kind = "conflict"


class BadRecipe(DarkroomError):
    """A recipe that cannot be read or does not follow the schema."""

    exit_code = 5
    kind = "bad-recipe"


class Gated(DarkroomError):
    """A model needs a Hugging Face token with access (a gated licence, or a bad token)."""

    exit_code = 6
    kind = "gated"


class Offline(DarkroomError):
    """The hub or the package index cannot be reached, or offline mode lacks what is needed."""

    exit_code = 7
    kind = "offline"


class DiskFull(DarkroomError):
    """A write met a full disk (or quota); what was there before is kept."""

    exit_code = 8
    kind = "disk-full"


class Cancelled(DarkroomError):
    """The person asked to stop; the work was undone (the same code as Ctrl-C)."""

    exit_code = 130
    kind = "cancelled"

    def __init__(
        self,
        message: str = "Stopped. Nothing half-done was kept.",
        hint: str = "Run the same action again to finish it.",
    ) -> None:
        super().__init__(message, hint)


# The codes a script can rely on (the README's table is checked against this).
EXIT_CODES: dict[str, int] = {
    "error": DarkroomError.exit_code,
    "usage": 2,
    **{
        cls.kind: cls.exit_code
        for cls in (NotFound, Conflict, BadRecipe, Gated, Offline, DiskFull, Cancelled)
    },
}
