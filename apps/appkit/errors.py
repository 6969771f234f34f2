"""Errors an app raises on purpose; each carries the sentence the caller will read."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure with a user-facing message and the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(AppError):
    """The request cannot be served as asked (bad value, unknown model); 4xx."""

    status = 400


class LoadError(AppError):
    """The model cannot be loaded (missing files, wrong device); the app cannot serve."""

    status = 503


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    """pydantic's errors as one sentence, for the API's 422 and the page's message alike."""
    parts = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."
