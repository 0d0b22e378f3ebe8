"""One handler maps the error tree to HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.errors import (
    ConfigError,
    EpcmonError,
    InsufficientData,
    NotFound,
    StoreUnavailable,
)

log = logging.getLogger("epcmon.api")

_STATUS: list[tuple[type[EpcmonError], int]] = [
    (NotFound, 404),
    (InsufficientData, 422),
    (StoreUnavailable, 503),
    (ConfigError, 500),
]


class BadRequest(EpcmonError):
    """The request is well-formed but asks for something we will not do (too many points)."""


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(EpcmonError)
    async def _handle(_request: Request, exc: Exception) -> JSONResponse:
        status = 400 if isinstance(exc, BadRequest) else 500
        for kind, code in _STATUS:
            if isinstance(exc, kind):
                status = code
                break
        if status >= 500:
            log.error("request failed: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=status)
