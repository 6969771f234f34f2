"""The one error a batch reports to a person: what happened, and what to do."""

from __future__ import annotations


class WorkflowError(Exception):
    """A failure of the whole batch (not of one image): a sentence and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class StepFailed(Exception):
    """One image failed in one step; the batch records the reason and goes on."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


class StepCancelled(StepFailed):
    """The app's job was cancelled by the person (a switch cut it short): the item is not
    failed; it goes back in the queue."""
