"""Errors an app raises on purpose; each carries the sentence the caller will read."""

from __future__ import annotations


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
