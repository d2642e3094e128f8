"""Analytics endpoints: moods, pages, elements, journeys, actions, and this month's usage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    ActionAnalyticsItem,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    ElementAnalyticsResponse,
    JourneyAnalyticsResponse,
    PageAnalyticsResponse,
    UsageResponse,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate
from sessionmood_server.http.errors import bad_request
from sessionmood_server.http.params import int_param, parse_time_param
from sessionmood_server.http.responses import (
    NO_STORE,
    JSONResponse,
    distribution,
    distribution_rows,
    dt,
    iso,
    model_response,
    month_bounds,
)
from sessionmood_server.keys import PLAN_INFO
from sessionmood_server.records import ElementCounts, JourneyCounts
from sessionmood_server.scoring import MAX_STEPS

DEFAULT_PAGES = 100  # GET /v1/analytics/pages without ``limit``
DEFAULT_ELEMENTS, MOST_ELEMENTS = 50, 1000  # GET /v1/analytics/elements
DEFAULT_STEPS = 4  # GET /v1/analytics/journeys: first page views per path (at most MAX_STEPS)
DEFAULT_JOURNEYS, MOST_JOURNEYS = 20, 1000
MAX_PAGE = 2048  # as a page_view's url

# What an element's signals suggest fixing (docs/tracker.md, "Where visitors
# struggle"): the kind of signal with the most occurrences wins; on a tie the
# more concrete finding (a failure, then no answer, then doubt).
FIX_ERRORS = "the action fails"
FIX_DEAD = "looks clickable but does nothing, or answers too slowly"
FIX_HESITATION = "the field or its label is unclear"


def suggested_fix(e: ElementCounts) -> str | None:
    found = [
        (e.error_clicks, FIX_ERRORS),
        (e.dead_clicks + e.rage_clicks, FIX_DEAD),
        (e.hesitations, FIX_HESITATION),
    ]
    n, fix = max(found, key=lambda f: f[0])  # the first of equals
    return fix if n else None


async def analytics_moods(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    counts = await api.storage.mood_counts(key.tenant_id)
    body = AnalyticsResponse(
        total_sessions=counts.total_sessions,
        feedback_count=counts.feedback_count,
        mood_distribution=distribution(counts.by_mood),
    )
    return model_response(body)


async def analytics_pages(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
    most = api.settings.analytics_pages_max
    limit = int_param(request, "limit", min(DEFAULT_PAGES, most), most)
    pages = await api.storage.page_moods(key.tenant_id, since, until, limit)
    # Plain dicts in the PageAnalyticsItem shape (a test checks it): up to
    # a thousand pages without a model each keeps the event loop free.
    items: list[dict[str, Any]] = []
    for url, counts in pages.items():  # busiest first, as storage returns them
        n = sum(counts.values())
        items.append(
            {
                "url": url,
                "sessions": n,
                "mood_distribution": distribution_rows(counts),
                "frustration_rate": round(counts.get("frustrated", 0) / n, 4),
            }
        )
    body = PageAnalyticsResponse(since=dt(since), until=dt(until), pages=[])
    payload = body.model_dump(mode="json")
    payload["pages"] = items
    return JSONResponse(payload, headers=NO_STORE)


def _page_param(request: Request) -> str | None:
    page = request.query_params.get("page")
    if page is None or page == "":
        return None
    if len(page) > MAX_PAGE or "\x00" in page:
        raise bad_request(
            "Invalid field",
            field="page",
            message=f"page is a URL path of at most {MAX_PAGE} characters, without NUL",
        )
    return page


async def analytics_elements(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
    page = _page_param(request)
    limit = int_param(request, "limit", DEFAULT_ELEMENTS, MOST_ELEMENTS)
    rows = await api.storage.element_counts(key.tenant_id, since, until, page, limit)
    head = ElementAnalyticsResponse(since=dt(since), until=dt(until), page=page, elements=[])
    return await off_the_loop(lambda: {**head.model_dump(mode="json"), "elements": _elements(rows)})


async def off_the_loop(build: Callable[[], dict[str, Any]]) -> Response:
    """The JSON answer ``build`` makes, built and encoded on a worker thread: a
    thousand journeys of eight steps are 56,000 small dicts and 2 MB, which
    held the event loop (and every other request) for 140 ms."""
    return await asyncio.to_thread(lambda: JSONResponse(build(), headers=NO_STORE))


def _elements(rows: list[ElementCounts]) -> list[dict[str, Any]]:
    # Plain dicts in the ElementAnalyticsItem shape (a test checks it), as for pages.
    return [
        {
            "page": e.page,
            "target": e.target,
            "sessions": e.sessions,
            "clicks": e.clicks,
            "rage_clicks": e.rage_clicks,
            "dead_clicks": e.dead_clicks,
            "error_clicks": e.error_clicks,
            "hesitations": e.hesitations,
            "frustrated_sessions": e.frustrated_sessions,
            "struggle_rate": round(e.frustrated_sessions / e.sessions, 4),
            "suggested_fix": suggested_fix(e),
        }
        for e in rows
    ]


def frustration_starts_at(j: JourneyCounts) -> int | None:
    """The (0-based) step on which most of the path's frustrated sessions were
    first frustrated; the earliest of equals."""
    if not j.first_frustrated:
        return None
    step = max(sorted(j.first_frustrated), key=lambda s: j.first_frustrated[s])
    return step - 1


async def analytics_journeys(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
    steps = int_param(request, "steps", DEFAULT_STEPS, MAX_STEPS)
    limit = int_param(request, "limit", DEFAULT_JOURNEYS, MOST_JOURNEYS)
    rows = await api.storage.journeys(key.tenant_id, since, until, steps, limit)
    head = JourneyAnalyticsResponse(since=dt(since), until=dt(until), steps=steps, journeys=[])
    return await off_the_loop(lambda: {**head.model_dump(mode="json"), "journeys": _journeys(rows)})


def _journeys(rows: list[JourneyCounts]) -> list[dict[str, Any]]:
    return [
        {
            "path": list(j.path),
            "sessions": j.sessions,
            "steps": [
                {"url": url, "mood_distribution": distribution_rows(moods)}
                for url, moods in zip(j.path, j.moods, strict=True)
            ],
            "frustration_starts_at": frustration_starts_at(j),
        }
        for j in rows
    ]


async def analytics_actions(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
    rows = await api.storage.action_counts(key.tenant_id, since, until)
    items = [
        ActionAnalyticsItem(
            mood=r.mood,
            action=r.action,
            taken=r.taken,
            helpful=r.helpful,
            not_helpful=r.not_helpful,
            helpful_rate=(
                round(r.helpful / (r.helpful + r.not_helpful), 4)
                if r.helpful + r.not_helpful
                else None
            ),
        )
        for r in rows
    ]
    body = ActionAnalyticsResponse(since=dt(since), until=dt(until), actions=items)
    return model_response(body)


async def usage(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    now = time.time()
    month, reset_at = month_bounds(now)
    used = await api.storage.month_usage(key.tenant_id, month)
    plan = PLAN_INFO[key.plan]
    body = UsageResponse(
        customer=key.customer,
        plan=key.plan,
        month=month,
        sessions_used=used,
        limit=plan.monthly_sessions,
        remaining=max(0, plan.monthly_sessions - used),
        overage=max(0, used - plan.monthly_sessions),
        reset_at=reset_at,
    )
    payload = body.model_dump(mode="json")
    payload["reset_at"] = iso(reset_at.timestamp())
    return JSONResponse(payload, headers=NO_STORE)
