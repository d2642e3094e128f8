"""Property-based fuzzing of every documented operation against a real server.

Schemathesis generates requests from the OpenAPI document (valid ones, and in
its coverage phase invalid ones: wrong types, boundary lengths, missing
fields) and checks each answer: no 5xx, a documented status code, the
documented content type and schema, documented headers, and invalid requests
rejected with a 4xx.

The document is built in-process at import time, because pytest needs the
operation list while collecting; ``test_served_document_is_the_one_fuzzed``
then proves it is byte-for-byte what the live server publishes.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis import checks as st_checks
from schemathesis.checks import CheckFunction

from sessionmood_client import __version__ as VERSION
from sessionmood_server.http.openapi import build_openapi
from tests.conftest import LiveServer

DOCUMENT = build_openapi(VERSION)
# Invalid requests must be refused with a 4xx; add 413 to Schemathesis' list
# because this API answers a batch over 1,000 events with 413 "Too many
# events", as the README documents, rather than 400.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "413", "415", "422", "429"]
            }
        }
    }
)
FULL_SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
STREAM = "/v1/stream/moods"
# The SSE stream never ends, so a fuzzed 200 would hang the transport (which reads
# whole bodies); test_stream_errors_conform covers it with a bounded read instead.
schema = FULL_SCHEMA.exclude(path=STREAM)

# positive_data_acceptance ("a schema-valid request must not get a 400") is
# skipped only where the server validates meaning that JSON Schema does not
# carry: `email` must contain "@", `allowed_origins` must parse as
# scheme://host[:port], `since`/`until` must be real dates, a webhook `url`
# must be an http(s) URL the server is willing to call. Everywhere else a
# schema-valid request refused with 400 is a failure. (Reported to the lead:
# the first could be documented with `format: email`.)
SEMANTIC_VALIDATION = {
    ("POST", "/v1/keys/generate"),
    ("POST", "/v1/keys/publishable"),
    ("GET", "/v1/analytics/pages"),
    ("GET", "/v1/analytics/elements"),
    ("GET", "/v1/analytics/journeys"),
    ("GET", "/v1/analytics/uplift"),
    ("GET", "/v1/analytics/actions"),
    ("POST", "/v1/webhooks"),
}
SESSION_PATHS = {
    "/v1/sessions/{session_id}/mood",
    "/v1/sessions/{session_id}/events",
    "/v1/sessions/{session_id}/feedback",
    "/v1/sessions/{session_id}",
}


@pytest.fixture(scope="module")
def fuzz_key(live_server: LiveServer) -> str:
    # Growth: fuzzing creates hundreds of sessions; a starter quota could turn
    # the later ones into (documented, but less interesting) 429s.
    return live_server.new_key("growth", customer="fuzz")


def _arrange_session(case: Case[Any], base_url: str, key: str) -> None:
    """Give about half of the fuzzed session ids stored events first, so that
    GET mood/events, feedback and DELETE also reach (and validate) their 200s
    instead of only their 404s. crc32, not hash(): stable across processes."""
    sid = case.path_parameters.get("session_id") if case.path_parameters else None
    if not isinstance(sid, str) or not 1 <= len(sid) <= 256 or zlib.crc32(sid.encode()) % 2:
        return
    # A case of the real POST operation, so the id is encoded exactly as the fuzzed one is.
    seed = FULL_SCHEMA["/v1/sessions/{session_id}/events"]["POST"].Case(
        path_parameters={"session_id": sid},
        body={"events": [{"type": "page_view", "url": "/fuzz"}, {"type": "click"}]},
        media_type="application/json",
    )
    seed.call(base_url=base_url, headers={"X-Api-Key": key})


def _has_nul(body: object) -> bool:
    return "\\u0000" in json.dumps(body, default=str)


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,  # a loopback round trip on a loaded CI machine is not a bug
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,  # no .hypothesis/ directory in the repository
    # Real HTTP per example is slow by Hypothesis standards; that is the point here.
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
def test_every_operation_conforms(case: Case[Any], live_server: LiveServer, fuzz_key: str) -> None:
    if case.path in SESSION_PATHS and case.method != "POST":
        _arrange_session(case, live_server.base_url, fuzz_key)
    excluded: list[CheckFunction] = []
    if (case.method, case.path) in SEMANTIC_VALIDATION or _has_nul(case.body):
        # NUL is refused in every stored string on purpose (400, asserted in
        # test_bad_input.py) but the document does not say so (reported: a
        # `pattern` would); every other check still applies to these cases.
        excluded.append(st_checks.positive_data_acceptance)
    case.call_and_validate(
        base_url=live_server.base_url,
        headers={"X-Api-Key": fuzz_key},
        excluded_checks=excluded,
        timeout=30,
    )


def test_served_document_is_the_one_fuzzed(live_server: LiveServer) -> None:
    served = httpx.get(live_server.base_url + "/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == DOCUMENT


def test_every_route_is_documented_and_fuzzed() -> None:
    """A new endpoint that is not in the document escapes the fuzzer: catch that."""
    from sessionmood_server.app import create_app

    documented = {
        (method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops
    }
    served: set[tuple[str, str]] = set()
    for route in create_app().routes:
        path = getattr(route, "path", "")
        if not (path.startswith("/v1/") or path == "/health"):
            continue  # static files, dashboard, demo pages and /openapi.json itself
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                # "{session_id:path}" -> "{session_id}": convertors are not documented.
                served.add((method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)))
    assert served == documented


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, {}, 401),
        ({"X-Api-Key": "sm_" + "0" * 48}, {}, 401),
        ({"Authorization": "Basic abc"}, {}, 401),
        ({"Last-Event-ID": "not-a-number"}, {}, 400),
        ({}, {"last_event_id": "-1"}, 400),
    ],
)
def test_stream_errors_conform(
    live_server: LiveServer,
    fuzz_key: str,
    headers: dict[str, str],
    query: dict[str, str],
    status: int,
) -> None:
    if status == 400:
        headers = {"X-Api-Key": fuzz_key, **headers}
    op = FULL_SCHEMA[STREAM]["GET"]
    case = op.Case(headers=headers, query=query)
    response = case.call(base_url=live_server.base_url, timeout=10)
    assert response.status_code == status
    case.validate_response(response)


def test_stream_opens_with_the_documented_content_type(
    live_server: LiveServer, fuzz_key: str
) -> None:
    """The 200 itself, read just far enough to see it is the documented SSE stream."""
    documented: dict[str, Any] = DOCUMENT["paths"][STREAM]["get"]["responses"]["200"]["content"]
    with httpx.stream(
        "GET", live_server.base_url + STREAM, headers={"X-Api-Key": fuzz_key}, timeout=10
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] in documented
        first = next(r.iter_raw())
    assert first.startswith(b"retry:")
