"""Query parameters: whole numbers, and times as Unix seconds or ISO 8601."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from starlette.requests import Request

from sessionmood_server.http.errors import (
    bad_request,
)

MAX_TS = 1e11  # as the wire models' Timestamp


def parse_time_param(request: Request, name: str) -> float | None:
    """``since``/``until``: Unix seconds or ISO 8601 (naive means UTC)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        ts = float(raw)
    except ValueError:
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError):
            ts = math.nan
    # Same range as event timestamps: NaN, infinities and year 5000 are mistakes.
    if not 0 <= ts <= MAX_TS:
        raise bad_request(
            "Invalid field",
            field=name,
            message="use Unix seconds or ISO 8601, between 1970 and 5138",
        )
    return ts


def int_param(request: Request, name: str, default: int, most: int) -> int:
    """A positive integer query parameter, capped at ``most``; a 400 naming it if
    it is not one."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise bad_request(
            "Invalid field", field=name, message=f"{name} must be a whole number >= 1"
        )
    return min(int(raw), most)
