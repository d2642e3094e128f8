"""Errors that teach: a batch sent without its ``events`` wrapper (as one bare
event, the way the launch post showed it) gets a 400 that shows the shape that works."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

WORKS = {"events": [{"type": "click", "x": 10, "y": 20}]}


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({"type": "click", "x": 10, "y": 20}, "looks like one event"),
        ({"event": [{"type": "click"}]}, "send a batch of events"),
        ({"events": {"type": "click"}}, "events must be an array"),
    ],
    ids=["one-bare-event", "misspelt-wrapper", "events-not-an-array"],
)
def test_the_400_shows_the_shape_that_works(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], hint: str
) -> None:
    r = client.post("/v1/sessions/s1/events", json=body, headers=auth)
    assert r.status_code == 400
    error = r.json()
    assert error["field"] == "events"
    assert hint in error["message"]
    assert '{"events": [{"type": "click"' in error["message"]
    assert error["example"] == WORKS
    # ... and the example it shows is accepted as it stands.
    ok = client.post("/v1/sessions/s1/events", json=error["example"], headers=auth)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("path", "body", "field", "says"),
    [
        (
            "/v1/sessions/s1/events",
            {"events": [{"type": "click", "target": "Pay\nnow"}]},
            "events[0].target",
            "target must not contain control characters (newlines, tabs, NUL...)",
        ),
        (
            "/v1/sessions/s1/events",
            {"events": [{"type": "error", "message": "a\x00b"}]},
            "events[0].message",
            "message must not contain NUL",
        ),
        (
            "/v1/sessions/s1/conversions",
            {"name": "a purchase"},
            "name",
            "name may hold only letters, digits and _ . : -",
        ),
    ],
    ids=["target", "nul", "conversion-name"],
)
def test_a_pattern_mismatch_says_what_the_pattern_means(
    client: TestClient, auth: dict[str, str], path: str, body: dict[str, Any], field: str, says: str
) -> None:
    client.post("/v1/sessions/s1/events", json=WORKS, headers=auth)
    r = client.post(path, json=body, headers=auth)
    assert r.status_code == 400
    assert (r.json()["field"], r.json()["message"]) == (field, says)
    assert "pattern" not in r.json()["message"]
