"""Request failures that map to an HTTP status other than 400 (``ValueError``) or 404 (``KeyError``)."""

from __future__ import annotations


class HttpError(Exception):
    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(HttpError):
    status = 401


class Conflict(HttpError):
    status = 409


class TooLarge(HttpError):
    status = 413
