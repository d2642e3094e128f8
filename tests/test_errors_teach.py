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
