"""Does acting on the mood pay? The holdout share, conversions, and the uplift.

``PUT /v1/holdout`` sets the share of a tenant's new sessions held out (no
actions); ``POST /v1/sessions/{id}/conversions`` counts a conversion once per
(session, name); ``GET /v1/analytics/uplift`` compares treated with held-out
sessions per mood and action (``uplift.compare``: Newcombe's interval).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sessionmood_client.types import (
    ConversionRequest,
    ConversionResponse,
    HoldoutRequest,
    HoldoutResponse,
    UpliftResponse,
)
from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import authenticate, session_id_param
from sessionmood_server.http.errors import HTTPProblem, bad_request, session_not_found
from sessionmood_server.http.params import parse_time_param
from sessionmood_server.http.responses import dt, model_response
from sessionmood_server.http.validation import read_json, validate_body
from sessionmood_server.records import Conversion, HoldoutSetting, UpliftCounts
from sessionmood_server.storage.shared import MAX_CONVERSION_NAMES
from sessionmood_server.uplift import METHOD, compare

DEFAULT_NAME = "conversion"
DEFAULT_EFFECT = 0.02  # the uplift sessions_needed is sized for: two points


def _holdout(setting: HoldoutSetting) -> Response:
    return model_response(HoldoutResponse(share=setting.share, updated_at=dt(setting.updated_at)))


async def get_holdout(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    return _holdout(await api.storage.get_holdout(key.tenant_id))


async def put_holdout(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    body = validate_body(HoldoutRequest, await read_json(request, api.settings.max_body_bytes))
    # The salt is drawn here once and kept: no session ever changes group.
    setting = await api.storage.set_holdout(
        key.tenant_id, body.share, secrets.token_hex(16), time.time()
    )
    api.holdouts.forget(key.tenant_id)
    api.policies.forget(key.tenant_id)
    return _holdout(setting)


async def post_conversion(api: Api, request: Request) -> Response:
    # Publishable keys too: the page that sold something knows it first
    # (tracker.js's SessionMood.convert). Counted once per (session, name).
    key = await authenticate(api.storage, request, publishable_ok=True)
    session_id = session_id_param(request)
    body = validate_body(ConversionRequest, await read_json(request, api.settings.max_body_bytes))
    result = await api.storage.add_conversion(
        Conversion(key.tenant_id, session_id, body.name, body.value, time.time())
    )
    if not result.found:
        raise session_not_found(session_id)
    if result.full:
        raise HTTPProblem(
            429,
            "Too many conversion names",
            headers={"X-Should-Retry": "false"},
            field="name",
            limit=MAX_CONVERSION_NAMES,
            message=f"a session counts at most {MAX_CONVERSION_NAMES} conversion names",
        )
    answer = ConversionResponse(
        session_id=session_id,
        name=body.name,
        value=body.value,
        counted=result.counted,
        holdout=result.holdout,
    )
    return model_response(answer, 201 if result.counted else 200)


def _name_param(request: Request) -> str:
    name = request.query_params.get("name", DEFAULT_NAME)
    try:
        ConversionRequest(name=name)
    except ValueError:
        raise bad_request(
            "Invalid field",
            field="name",
            message="name: 1-64 characters of letters, digits and _ . : -",
        ) from None
    return name


def _effect_param(request: Request) -> float:
    raw = request.query_params.get("effect")
    if raw is None:
        return DEFAULT_EFFECT
    try:
        effect = float(raw)
    except ValueError:
        effect = -1.0
    if not 0.001 <= effect <= 0.5:
        raise bad_request(
            "Invalid field",
            field="effect",
            message="effect: the absolute uplift to size sessions_needed for, 0.001-0.5",
        )
    return effect


def r4(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _row(
    mood: str | None,
    action: str | None,
    treated: UpliftCounts | None,
    control: UpliftCounts | None,
    effect: float,
) -> dict[str, Any]:
    tn, tc, tv = (treated.sessions, treated.conversions, treated.value) if treated else (0, 0, 0.0)
    cn, cc, cv = (control.sessions, control.conversions, control.value) if control else (0, 0, 0.0)
    c = compare(tn, tc, cn, cc, effect)
    return {
        "mood": mood,
        "action": action,
        "treated_sessions": tn,
        "treated_conversions": tc,
        "treated_rate": r4(c.treated_rate),
        "control_sessions": cn,
        "control_conversions": cc,
        "control_rate": r4(c.control_rate),
        "uplift": r4(c.uplift),
        "uplift_low": r4(c.low),
        "uplift_high": r4(c.high),
        "relative_uplift": r4(c.relative),
        "treated_value_per_session": round(tv / tn, 2) if tn and tv else None,
        "control_value_per_session": round(cv / cn, 2) if cn and cv else None,
        "verdict": c.verdict,
        "sessions_needed": c.sessions_needed,
    }


async def analytics_uplift(api: Api, request: Request) -> Response:
    key = await authenticate(api.storage, request)
    since, until = parse_time_param(request, "since"), parse_time_param(request, "until")
    name, effect = _name_param(request), _effect_param(request)
    rows = await api.storage.uplift_counts(key.tenant_id, name, since, until)
    groups: dict[tuple[str | None, str | None], dict[bool, UpliftCounts]] = {}
    for r in rows:
        groups.setdefault((r.mood, r.action), {})[r.holdout] = r
    overall = groups.pop((None, None), {})
    items = [
        _row(mood, action, g.get(False), g.get(True), effect)
        for (mood, action), g in sorted(groups.items(), key=lambda kv: _order(kv[1]))
    ]
    body = UpliftResponse.model_validate(
        {
            "name": name,
            "since": dt(since),
            "until": dt(until),
            "method": METHOD,
            "uplift": items,
            "overall": _row(None, None, overall.get(False), overall.get(True), effect),
        }
    )
    return model_response(body)


def _order(g: dict[bool, UpliftCounts]) -> tuple[int, str, str]:
    """Most sessions first, then mood and action."""
    any_row = next(iter(g.values()))
    return -sum(r.sessions for r in g.values()), any_row.mood or "", any_row.action or ""
