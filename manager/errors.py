"""User-facing errors: every failure a person can meet ends in a sentence that says what to do."""

from __future__ import annotations


class DarkroomError(Exception):
    """An error whose message is written for the user, not the programmer.

    `message` says what happened; `hint` says what to do next. The CLI prints both
    and exits non-zero; the TUI shows the same text as a notification.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class NotFound(DarkroomError):
    """Something the user named (an app, a model, a profile) does not exist."""


class Conflict(DarkroomError):
    """The action collides with the current state (already running, locked, ...)."""
