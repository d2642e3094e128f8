"""Errors raised by the SessionMood client.

Every error the client raises on purpose derives from one root, so
``except SessionMoodError`` catches them all::

    SessionMoodError                  configuration problems (no API key, bad base URL)
    ├── WebhookVerificationError      a webhook delivery failed verify_webhook (not an API call)
    ├── APIConnectionError            the request never got an HTTP answer
    │   └── APITimeoutError           ... because a timeout expired
    ├── APIResponseValidationError    a 2xx answer whose body is not the documented shape
    └── APIStatusError                non-2xx: status_code, error, body, request_id, response
        ├── BadRequestError           400
        ├── AuthenticationError       401
        ├── PermissionDeniedError     403
        ├── NotFoundError             404
        ├── ConflictError             409
        ├── PayloadTooLargeError      413
        ├── RateLimitError            429 (plan, limit, reset_at for the monthly quota)
        └── InternalServerError       >= 500

Any other status raises a plain ``APIStatusError``. httpx exceptions are
translated into this tree in exactly one place, ``_base.translate_httpx_errors``;
the original is kept as ``__cause__``.

``APIStatusError`` is the exception; the JSON the server sent with it is the
wire model ``types.ApiError`` (the API reference's ``interface ApiError``:
``error``, then ``message``, ``field``, ``limit``... as the case needs).
``body`` keeps that JSON as decoded, whatever its shape (a proxy may answer
with HTML); ``error_model`` is the same body parsed into ``ApiError``, or None
when it is not that shape. ``error``, ``request_id`` and ``RateLimitError``'s
``plan``, ``limit`` and ``reset_at`` are read from the same body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from .types import ApiError

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "SessionMoodError",
    "WebhookVerificationError",
]


class SessionMoodError(Exception):
    """Root of every error this package raises."""


class WebhookVerificationError(SessionMoodError):
    """A webhook delivery is not authentic or not fresh: answer it with a 400.

    Raised by ``verify_webhook`` for a missing or malformed ``webhook-*``
    header, a timestamp outside the tolerance, a signature that matches none of
    the ``v1`` entries, or a signed body that is not a ``WebhookEvent``.
    """


class APIConnectionError(SessionMoodError):
    """The request did not get an HTTP response (DNS, refused, reset, timeout...)."""

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout expired."""

    def __init__(self, *, request: httpx.Request) -> None:
        super().__init__("Request timed out.", request=request)


class APIResponseValidationError(SessionMoodError):
    """The server answered 2xx but the body does not match the documented model.

    Usually a proxy or a different service answering on the base URL.
    """

    def __init__(self, message: str, *, response: httpx.Response, body: object) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body


def _body_field(body: object, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


class APIStatusError(SessionMoodError):
    """The server answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        error: the server's ``error`` string, if the body had one.
        body: the decoded JSON body (usually a dict), or the raw text if it was not JSON;
            ``error_model`` is it as the wire model ``ApiError``.
        request_id: the server's request id (body ``request_id`` or ``X-Request-Id``
            header), worth quoting in a support request.
        response: the ``httpx.Response``.
    """

    def __init__(self, message: str, *, response: httpx.Response, body: object) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        error = _body_field(body, "error")
        self.error: str | None = error if isinstance(error, str) else None
        request_id = _body_field(body, "request_id")
        self.request_id: str | None = (
            request_id if isinstance(request_id, str) else response.headers.get("x-request-id")
        )

    @property
    def error_model(self) -> ApiError | None:
        """``body`` as the wire model ``ApiError`` (typed ``message``, ``field``,
        ``limit``...; fields it does not name in ``extra_fields()``), or None when
        the body is not the server's error shape (not JSON, or no ``error``)."""
        if not isinstance(self.body, dict):
            return None
        try:
            return ApiError.model_validate(self.body)
        except ValidationError:
            return None


class BadRequestError(APIStatusError):
    """400: the request body or parameters were invalid (see ``body`` for details)."""


class AuthenticationError(APIStatusError):
    """401: missing, malformed or revoked API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: e.g. a session with no stored events, or one that was deleted."""


class ConflictError(APIStatusError):
    """409: the request conflicts with one in flight (retried automatically)."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is too large; send fewer events per batch."""


class RateLimitError(APIStatusError):
    """429: too many requests.

    For the monthly session quota the body carries ``plan``, ``limit`` and
    ``reset_at``; that one is not retried, because waiting seconds cannot help.
    """

    def __init__(self, message: str, *, response: httpx.Response, body: object) -> None:
        super().__init__(message, response=response, body=body)
        plan = _body_field(body, "plan")
        limit = _body_field(body, "limit")
        self.plan: str | None = plan if isinstance(plan, str) else None
        self.limit: int | None = (
            limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        )
        self.reset_at: datetime | None = _parse_datetime(_body_field(body, "reset_at"))


class InternalServerError(APIStatusError):
    """>= 500: the server failed; quote ``request_id`` when reporting it."""


def _parse_datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        # fromisoformat understands the trailing "Z" since Python 3.11.
        return datetime.fromisoformat(value)
    except ValueError:
        return None
