"""The request id: one per request, in 500 bodies, their log lines and JSON logs.

The ASGI scope of the request being handled sits in a context variable (set
once per request: cheap); the id itself is only made when something asks for
it (a log line, a 500), so a request that logs nothing pays nothing more. A
proxy's ``X-Request-Id`` is kept when it looks like an id, so that lines of
both can be joined.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

CURRENT_SCOPE: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "sessionmood_scope", default=None
)
_SCOPE_KEY = "sessionmood.request_id"
_GIVEN = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def request_id(scope: MutableMapping[str, Any] | None = None) -> str | None:
    """The id of the request ``scope`` (default: the one being handled), made on
    first use; None outside any request."""
    if scope is None:
        scope = CURRENT_SCOPE.get()
        if scope is None:
            return None
    found: str | None = scope.get(_SCOPE_KEY)
    if found is None:
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and _GIVEN.fullmatch(value):
                found = value.decode("ascii")
                break
        else:
            found = "req_" + secrets.token_hex(6)
        scope[_SCOPE_KEY] = found
    return found
