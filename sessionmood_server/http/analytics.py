"""Analytics endpoints: moods, pages, actions, and this month's usage."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    ActionAnalyticsItem,
    ActionAnalyticsResponse,
    AnalyticsResponse,
    PageAnalyticsResponse,
    UsageResponse,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate
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

DEFAULT_PAGES = 100  # GET /v1/analytics/pages without ``limit``


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
