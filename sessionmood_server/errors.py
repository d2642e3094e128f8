"""One exception type for every client-facing error, and the JSON it becomes.

Handlers raise ``ApiError``; the app turns it into the reference's error shape
(``{"error": ..., ...}``). Anything else that escapes becomes a 500 with a
``request_id`` that is also logged, never a stack trace.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    """orjson-backed JSON response (faster than the stdlib, rejects NaN)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """An error the caller can act on; ``body`` is sent as JSON."""

    def __init__(
        self, status: int, error: str, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error, **{k: v for k, v in fields.items()}}
        self.headers = headers

    def response(self) -> JSONResponse:
        # Never cached: an error about a key or a session is as private as an answer.
        return JSONResponse(
            self.body, status_code=self.status, headers={**_NO_STORE, **(self.headers or {})}
        )


def bad_request(error: str, **fields: Any) -> ApiError:
    return ApiError(400, error, **fields)


def unauthorized(message: str = "Missing or invalid API key") -> ApiError:
    return ApiError(401, "Unauthorized", headers={"WWW-Authenticate": "Bearer"}, message=message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message=message)


def session_not_found(session_id: str) -> ApiError:
    return ApiError(404, "Session not found", session_id=session_id)
