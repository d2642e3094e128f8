"""Answers: the JSON response class, JSON bodies from wire models, the headers
every authenticated answer carries, and the date and distribution formats of
the API reference."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from sessionmood_client.types import (
    MOODS,
    MoodDistributionItem,
    MoodLabel,
)

# Authenticated answers must not be kept by browsers or proxies: they carry
# moods, events, usage and, once, keys.
NO_STORE = {"Cache-Control": "no-store"}
REPLAYED = {"Idempotent-Replayed": "true", **NO_STORE}


class JSONResponse(Response):
    """orjson-backed JSON response (faster than the stdlib, rejects NaN)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def iso(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the reference shows."""
    d = datetime.fromtimestamp(ts, UTC)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}."
        f"{d.microsecond // 1000:03d}Z"
    )


def month_bounds(now: float) -> tuple[str, datetime]:
    """("YYYY-MM", first instant of next month) for ``now`` in UTC."""
    # Every request needs this; months start on the hour, so the hour decides.
    return _month_of_hour(int(now // 3600))


@functools.lru_cache(maxsize=64)
def _month_of_hour(hour: int) -> tuple[str, datetime]:
    d = datetime.fromtimestamp(hour * 3600, UTC)
    nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return f"{d.year:04d}-{d.month:02d}", nxt


def distribution_rows(counts: dict[MoodLabel, int]) -> list[dict[str, Any]]:
    """All seven moods, most frequent first, with one-decimal percentages."""
    total = sum(counts.values())
    order = {m: i for i, m in enumerate(MOODS)}
    items = sorted(((m, counts.get(m, 0)) for m in MOODS), key=lambda kv: (-kv[1], order[kv[0]]))
    return [
        {"mood": m, "count": n, "percentage": round(n * 100 / total, 1) if total else 0.0}
        for m, n in items
    ]


def distribution(counts: dict[MoodLabel, int]) -> list[MoodDistributionItem]:
    return [MoodDistributionItem(**row) for row in distribution_rows(counts)]


def dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def dt_req(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def model_response(
    model: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        media_type="application/json",
    )
