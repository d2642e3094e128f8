"""Request parsing: the fast path for valid batches gives what the careful path gives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sessionmood_server.http.errors import HTTPProblem
from sessionmood_server.http.validation import MAX_FUTURE_S, parse_events, parse_events_body

NOW = 1_795_000_000.0

# Every event type with every field it has, some fields null or missing, ints
# where floats are allowed, a missing ts and one from a clock far ahead.
EVERY_EVENT: list[dict[str, Any]] = [
    {"type": "page_view", "url": "/checkout", "ts": NOW - 10},
    {"type": "page_view", "url": None, "ts": NOW - 9},
    {"type": "click", "x": 340, "y": 210.5, "ts": NOW - 8},
    {"type": "click", "dead": True, "ts": NOW - 8},
    {"type": "click", "x": 1, "dead": False},
    {"type": "click", "dead": None, "ts": NOW - 8},
    {"type": "scroll", "dead": None, "ts": NOW - 8},
    {"type": "rage_click", "x": -3, "y": None, "ts": NOW - 7},
    {"type": "scroll", "speed": 800, "direction": "down", "ts": NOW - 6},
    {"type": "scroll", "direction": "up"},
    {"type": "input_pause", "duration_ms": 2600, "ts": NOW - 5},
    {"type": "backtrack", "ts": NOW - 4, "extra": "ignored"},
    {"type": "back_nav", "ts": NOW + 10 * MAX_FUTURE_S},
    {"type": "error", "message": "Payment failed", "ts": NOW - 3},
    {"type": "idle", "duration_ms": 0, "ts": 0},
    {"type": "hover", "duration_ms": 1500.25, "ts": NOW - 2},
    {"type": "focus", "ts": NOW - 1},
    {"type": "blur"},
]


@pytest.mark.parametrize(
    "body",
    [
        {"events": EVERY_EVENT},
        {"events": EVERY_EVENT, "batch_id": "b-1"},
        {"events": EVERY_EVENT[:1], "batch_id": None},
    ],
)
@pytest.mark.parametrize("header_batch_id", [None, "h-1"])
def test_fast_path_equals_careful_path(body: dict[str, Any], header_batch_id: str | None) -> None:
    fast = parse_events_body(orjson.dumps(body), header_batch_id, 1000, NOW)
    careful = parse_events(body, header_batch_id, 1000, NOW)
    assert fast == careful
    events, _, _ = fast
    # Key order is not part of the contract, but types and values are.
    for got, want in zip(events, careful[0], strict=True):
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in want.items()}
    assert events[0]["ts"] == NOW - 10
    assert all(v is not None for ev in events for v in ev.values())
    if len(events) > 1:
        assert events[9]["ts"] == NOW  # missing: receipt time
        assert events[12]["ts"] == NOW + MAX_FUTURE_S  # clamped
        assert "extra" not in events[11]
        # dead is kept on clicks as sent; null means absent, as for every field.
        assert [e.get("dead") for e in events[2:7]] == [None, True, False, None, None]
        assert "dead" not in events[5] and "dead" not in events[6]


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [{"type": "click", "x": true}]}',
        b'{"events": [{"type": "click", "x": "1"}]}',
        b'{"events": [{"type": "page_view", "url": "a\\u0000b"}]}',
        b'{"events": [{"type": "click"}], "batch_id": ""}',
        b'{"events": [{"type": "scroll", "direction": "left"}]}',
        b'{"events": [{"type": "click", "ts": 1e12}]}',
        b'{"events": [{"type": "click", "dead": "true"}]}',
        b'{"events": [{"type": "click", "dead": 1}]}',
        b'{"events": [{"type": "scroll", "dead": true}]}',
        b'{"events": [{"type": "rage_click", "dead": false}]}',
    ],
)
def test_fast_path_refusals_get_the_careful_paths_error(body: bytes) -> None:
    with pytest.raises(HTTPProblem) as fast:
        parse_events_body(body, None, 1000, NOW)
    with pytest.raises(HTTPProblem) as careful:
        parse_events(orjson.loads(body), None, 1000, NOW)
    assert (fast.value.status, fast.value.body) == (careful.value.status, careful.value.body)
    assert fast.value.status == 400


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "click", "dead": "yes"}, "Input should be a valid boolean"),
        ({"type": "click", "dead": 0}, "Input should be a valid boolean"),
        ({"type": "page_view", "dead": True}, "only click events can be dead"),
        ({"type": "error", "message": "x", "dead": False}, "only click events can be dead"),
    ],
)
def test_dead_is_a_boolean_of_clicks_only(event: dict[str, Any], message: str) -> None:
    """A bad ``dead`` refuses the whole batch with a 400 naming it; nothing is kept."""
    body = {"events": [{"type": "click", "dead": True}, event]}
    for parse in (
        lambda: parse_events_body(orjson.dumps(body), None, 1000, NOW),
        lambda: parse_events(body, None, 1000, NOW),
    ):
        with pytest.raises(HTTPProblem) as err:
            parse()
        assert err.value.status == 400
        assert err.value.body == {
            "error": "Invalid field",
            "field": "events[1].dead",
            "message": message,
        }
