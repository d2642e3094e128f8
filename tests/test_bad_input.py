"""A catalogue of bad input thrown at a real server.

Malformed and hostile requests over real sockets: every one must get a clear
JSON 4xx (never a 5xx, a hang or a dropped connection), the server must keep
serving everybody else, never log an unhandled error, lose nothing it stored
before, and its memory must not grow with what it refuses. Everything that
reaches storage runs on every backend (SQLite, and PostgreSQL when the suite
has one: tests/database.py), as do unusual but valid inputs, which must be
stored exactly.
"""

from __future__ import annotations

import json
import random
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sessionmood_client import __version__ as VERSION
from sessionmood_server.http.openapi import build_openapi
from tests.conftest import BACKENDS, LiveServer, backend_servers

MAX_BODY = 1024 * 1024  # Settings.max_body_bytes
TEN_MB = 10 * 1024 * 1024
EVENTS = "/v1/sessions/bad-input/events"


@dataclass
class Bad:
    """One bad request and the status it must get."""

    name: str
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    method: str = "POST"
    path: str = EVENTS
    auth: bool = True
    headers: dict[str, str | bytes] = field(default_factory=dict)
    error_field: str | None = None  # the `field` a 400 must name, when it names one


def nested(depth: int) -> bytes:
    return b'{"events": ' + b"[" * depth + b"]" * depth + b"}"


def events_json(*events: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"events": list(events), **extra}).encode()


CATALOGUE: list[Bad] = [
    # -- malformed JSON
    Bad("truncated object", 400, b'{"events": [{"type": "click"}'),
    Bad("garbage", 400, b"{broken"),
    Bad("trailing comma", 400, b'{"events": [{"type": "click"},]}'),
    Bad("single quotes", 400, b"{'events': [{'type': 'click'}]}"),
    Bad("comments", 400, b'{"events": [] /* hi */}'),
    Bad("two documents", 400, b'{"events": []}{"events": []}'),
    Bad("empty body", 400, b""),
    Bad("whitespace only", 400, b"   \n\t "),
    Bad("invalid utf-8", 400, b'{"events": [{"type": "error", "message": "\xff\xfe"}]}'),
    Bad("utf-16 body", 400, '{"events": [{"type": "click"}]}'.encode("utf-16")),
    Bad("json null", 400, b"null"),
    Bad("json array", 400, b'[{"type": "click"}]'),
    Bad("json string", 400, b'"events"'),
    # -- numbers JSON does not have, or that do not fit
    Bad("NaN literal", 400, b'{"events": [{"type": "click", "ts": NaN}]}'),
    Bad("Infinity literal", 400, b'{"events": [{"type": "click", "x": Infinity}]}'),
    Bad("-Infinity literal", 400, b'{"events": [{"type": "click", "y": -Infinity}]}'),
    Bad("overflow to inf", 400, b'{"events": [{"type": "click", "ts": 1e999}]}'),
    Bad("huge integer", 400, b'{"events": [{"type": "click", "ts": ' + b"9" * 400 + b"}]}"),
    Bad(
        "ms timestamp",
        400,
        events_json({"type": "click", "ts": 1.7e12}),
        error_field="events[0].ts",
    ),
    Bad("negative ts", 400, events_json({"type": "click", "ts": -1}), error_field="events[0].ts"),
    Bad(
        "string ts",
        400,
        events_json({"type": "click", "ts": "1700000000"}),
        error_field="events[0].ts",
    ),
    Bad(
        "bool coordinate", 400, events_json({"type": "click", "x": True}), error_field="events[0].x"
    ),
    Bad(
        "dead not a boolean",
        400,
        events_json({"type": "click", "dead": "true"}),
        error_field="events[0].dead",
    ),
    Bad(
        "dead on a scroll",
        400,
        events_json({"type": "click", "dead": True}, {"type": "scroll", "dead": True}),
        error_field="events[1].dead",
    ),
    # -- structure
    Bad("deeply nested arrays", 400, nested(100_000)),
    Bad(
        "deeply nested objects",
        400,
        b'{"events": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    ),
    Bad(
        "nested value in a field",
        400,
        events_json({"type": "click", "x": [[[[1]]]]}),
        error_field="events[0].x",
    ),
    Bad("events is an object", 400, b'{"events": {"type": "click"}}', error_field="events"),
    Bad("events missing", 400, b'{"event": []}', error_field="events"),
    Bad("events empty", 400, events_json(), error_field="events"),
    Bad("event not an object", 400, b'{"events": ["click"]}', error_field="events[0]"),
    Bad("type missing", 400, events_json({"ts": 1}), error_field="events[0].type"),
    Bad("type unknown", 400, events_json({"type": "page_visit"})),
    Bad("type is a number", 400, events_json({"type": 7})),
    Bad("type is an object", 400, events_json({"type": {}})),  # unhashable: was a 500
    Bad("type is an array", 400, events_json({"type": ["click"]})),
    Bad("too many events", 413, events_json(*[{"type": "click"}] * 1001)),
    Bad(
        "message too long",
        400,
        events_json({"type": "error", "message": "m" * 513}),
        error_field="events[0].message",
    ),
    Bad(
        "batch_id too long",
        400,
        events_json({"type": "click"}, batch_id="b" * 129),
        error_field="batch_id",
    ),
    Bad(
        "batch_id a number", 400, events_json({"type": "click"}, batch_id=7), error_field="batch_id"
    ),
    # -- NUL is refused everywhere a string is stored
    Bad(
        "NUL in session id",
        400,
        events_json({"type": "click"}),
        path="/v1/sessions/a%00b/events",
        error_field="session_id",
    ),
    Bad(
        "NUL in message",
        400,
        events_json({"type": "error", "message": "a\x00b"}),
        error_field="events[0].message",
    ),
    Bad(
        "NUL in url",
        400,
        events_json({"type": "page_view", "url": "/a\x00"}),
        error_field="events[0].url",
    ),
    Bad(
        "NUL in batch_id",
        400,
        events_json({"type": "click"}, batch_id="a\x00b"),
        error_field="batch_id",
    ),
    Bad(
        "NUL in action_taken",
        400,
        b'{"action_taken": "a\\u0000b"}',
        path="/v1/sessions/bad-input/feedback",
        error_field="action_taken",
    ),
    # ... and in every other path parameter: PostgreSQL refuses NUL even in a
    # look-up, the file system in a file name
    Bad(
        "NUL in webhook id",
        400,
        b"",
        method="DELETE",
        path="/v1/webhooks/wh_%00",
        error_field="webhook_id",
    ),
    Bad(
        "NUL in webhook id of deliveries",
        400,
        b"",
        method="GET",
        path="/v1/webhooks/a%00b/deliveries",
        error_field="webhook_id",
    ),
    Bad("NUL in a static file name", 400, b"", method="GET", path="/static/tracker%00.js"),
    Bad("NUL in a dashboard file name", 400, b"", method="GET", path="/dashboard/%00"),
    Bad("NUL in a demo page name", 400, b"", method="GET", path="/demo/a%00b.html"),
    Bad("NUL in an unknown route", 400, b"", method="GET", path="/v1/%00/mood"),
    # -- lone surrogates: not text, cannot be stored as UTF-8
    Bad("lone high surrogate", 400, b'{"events": [{"type": "error", "message": "\\ud800"}]}'),
    Bad("lone low surrogate", 400, b'{"events": [{"type": "error", "message": "x\\udc00y"}]}'),
    Bad("surrogate in batch_id", 400, b'{"events": [{"type": "click"}], "batch_id": "\\udfff"}'),
    Bad(
        "surrogate in feedback",
        400,
        b'{"action_taken": "\\ud83d"}',
        path="/v1/sessions/bad-input/feedback",
    ),
    Bad(
        "surrogate in customer",
        400,
        b'{"customer_name": "\\ud800"}',
        path="/v1/keys/generate",
        auth=False,
    ),
    # A session id is bytes in a URL: percent-encoded bytes that are not UTF-8
    # (a lone surrogate, a stray 0xFF) must be refused, not turned into U+FFFD,
    # which would merge distinct ids into one session.
    Bad(
        "lone surrogate in session id",
        400,
        events_json({"type": "click"}),
        path="/v1/sessions/%ED%A0%80/events",
        error_field="session_id",
    ),
    Bad(
        "invalid utf-8 in session id",
        400,
        events_json({"type": "click"}),
        path="/v1/sessions/a%FFb/events",
        error_field="session_id",
    ),
    Bad(
        "session id too long",
        400,
        events_json({"type": "click"}),
        path="/v1/sessions/" + "s" * 257 + "/events",
        error_field="session_id",
    ),
    # -- content types that are not JSON
    Bad("form", 415, b"events=click", content_type="application/x-www-form-urlencoded"),
    Bad(
        "multipart",
        415,
        b'--b\r\nContent-Disposition: form-data; name="events"\r\n\r\nx\r\n--b--\r\n',
        content_type="multipart/form-data; boundary=b",
    ),
    Bad("xml", 415, b"<events><event type='click'/></events>", content_type="application/xml"),
    Bad("text/xml", 415, b"<events/>", content_type="text/xml"),
    Bad("octet-stream", 415, b"\x00\x01\x02", content_type="application/octet-stream"),
    Bad(
        "form on feedback",
        415,
        b"action_taken=x",
        content_type="application/x-www-form-urlencoded",
        path="/v1/sessions/bad-input/feedback",
    ),
    Bad(
        "xml on keys",
        415,
        b"<name/>",
        content_type="application/xml",
        path="/v1/keys/generate",
        auth=False,
    ),
    # -- size
    Bad("over 1 MiB", 413, b"[" * (MAX_BODY + 1)),
    Bad(
        "body over 1 MiB on feedback",
        413,
        b" " * (MAX_BODY + 1),
        path="/v1/sessions/bad-input/feedback",
    ),
    # -- auth, routes, methods
    Bad("no key", 401, events_json({"type": "click"}), auth=False),
    Bad(
        "malformed bearer",
        401,
        events_json({"type": "click"}),
        auth=False,
        headers={"Authorization": "Bearer"},
    ),
    Bad(
        "basic auth",
        401,
        events_json({"type": "click"}),
        auth=False,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    Bad(
        "unknown key",
        401,
        events_json({"type": "click"}),
        auth=False,
        headers={"X-Api-Key": "sm_" + "f" * 48},
    ),
    Bad(
        "key with emoji",
        401,
        events_json({"type": "click"}),
        auth=False,
        headers={"X-Api-Key": "sm_🔑".encode()},
    ),
    Bad("PUT events", 405, events_json({"type": "click"}), method="PUT"),
    Bad("PATCH mood", 405, b"{}", method="PATCH", path="/v1/sessions/bad-input/mood"),
    Bad("unknown route", 404, b"", method="GET", path="/v1/session/x/mood"),
    Bad("unknown version", 404, b"", method="GET", path="/v2/usage"),
]


def send(client: httpx.Client, base: str, key: str, bad: Bad) -> httpx.Response:
    headers: dict[str, str | bytes] = dict(bad.headers)
    if bad.auth:
        headers["X-Api-Key"] = key
    if bad.content_type is not None:
        headers["Content-Type"] = bad.content_type
    # As bytes: one case sends a non-ASCII key, which httpx would refuse to encode.
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
    return client.request(bad.method, base + bad.path, content=bad.body, headers=raw)


def assert_clear_error(r: httpx.Response, bad: Bad) -> None:
    assert r.status_code == bad.status, (bad.name, r.status_code, r.text[:300])
    assert r.headers["content-type"].split(";")[0] == "application/json", bad.name
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (bad.name, body)
    if bad.error_field is not None:
        assert body.get("field") == bad.error_field, (bad.name, body)


def log_tail(server: LiveServer, start: int) -> str:
    assert server.log_path is not None
    with open(server.log_path, "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def log_size(server: LiveServer) -> int:
    assert server.log_path is not None
    return server.log_path.stat().st_size


@pytest.fixture(scope="module")
def key(live_server: LiveServer) -> str:
    return live_server.new_key("growth", customer="bad-input")


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real server on each storage backend, for the tests whose requests reach storage."""
    tmp = tmp_path_factory.mktemp(request.param)
    with backend_servers(request.param, tmp, "bad-input") as (live,):
        yield live


@pytest.fixture(scope="module")
def server_key(server: LiveServer) -> str:
    return server.new_key("growth", customer="bad-input")


@pytest.mark.parametrize("bad", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_bad_request_gets_a_clear_json_error(server: LiveServer, server_key: str, bad: Bad) -> None:
    with httpx.Client(timeout=30) as client:
        assert_clear_error(send(client, server.base_url, server_key, bad), bad)


@pytest.mark.slow
def test_many_bad_requests_in_a_row_leave_the_server_healthy(
    server: LiveServer, server_key: str
) -> None:
    """The whole catalogue five times, over one keep-alive connection and over
    fresh ones: every answer a JSON 4xx (exact statuses are the test above),
    nothing logged as unhandled, nothing stored before lost or changed,
    nothing stored from any of them, and the server still works afterwards."""
    start = log_size(server)
    base = server.base_url
    h = {"X-Api-Key": server_key}
    seen: set[int] = set()

    def check(r: httpx.Response, bad: Bad) -> None:
        assert 400 <= r.status_code < 500, (bad.name, r.status_code, r.text[:300])
        assert isinstance(r.json().get("error"), str), bad.name
        seen.add(r.status_code)

    with httpx.Client(timeout=30) as keep_alive:
        kept = keep_alive.post(
            base + "/v1/sessions/kept/events",
            json={"events": [{"type": "page_view", "url": "/kept"}, {"type": "click"}]},
            headers=h,
        )
        assert kept.status_code == 200, kept.text
        before = keep_alive.get(base + "/v1/sessions/kept/events", headers=h).json()
        usage = keep_alive.get(base + "/v1/usage", headers=h).json()["sessions_used"]
        for _ in range(5):
            for bad in CATALOGUE:
                check(send(keep_alive, base, server_key, bad), bad)
                with httpx.Client(timeout=30) as fresh:
                    check(send(fresh, base, server_key, bad), bad)
        assert seen >= {400, 401, 404, 405, 413, 415}
        assert keep_alive.get(base + "/health").json()["status"] == "ok"
        assert keep_alive.get(base + "/v1/sessions/kept/events", headers=h).json() == before
        # Every batch above was refused whole: the session they named never began.
        missing = keep_alive.get(base + EVENTS, headers=h)
        assert missing.status_code == 404, missing.text
        assert keep_alive.get(base + "/v1/usage", headers=h).json()["sessions_used"] == usage
        ok = keep_alive.post(
            base + "/v1/sessions/after-the-storm/events",
            json={"events": [{"type": "click"}]},
            headers=h,
        )
        assert ok.status_code == 200 and ok.json()["total_events"] == 1
    tail = log_tail(server, start)
    assert "Traceback" not in tail and "unhandled error" not in tail, tail[-3000:]


# -- ids and messages that are unusual but valid: stored and returned exactly --

ODD_IDS = [
    "emoji-🙂-🧑‍💻",
    "rtl-\u202eevil\u202c-שלום-مرحبا",
    "cjk-会话-セッション",
    "combining-e\u0301-\u0065\u0301",
    "zero-width-\u200b\u200d\ufeff",
    "replacement-char-\ufffd",
    "slash/and/../dots/./%2F",
    "spaces and ?query=1#frag",
    "quotes-\"'`-<script>",
    "tab\tand-escape-\x1b[31m-del-\x7f",
    "newline\nand\rreturn",
    "s" * 256,
    "".join(chr(0x1F300 + i) for i in range(256)),  # 256 characters, 1 KiB of UTF-8
]


@pytest.mark.parametrize("sid", ODD_IDS, ids=[f"id{i}" for i in range(len(ODD_IDS))])
def test_unusual_session_ids_round_trip(server: LiveServer, server_key: str, sid: str) -> None:
    """Session ids are opaque (the reference sets no format): whatever the
    client URL-encodes comes back byte for byte, in every endpoint."""
    base = server.base_url + "/v1/sessions/" + quote(sid, safe="")
    h = {"X-Api-Key": server_key}
    with httpx.Client(timeout=30) as c:
        r = c.post(base + "/events", json={"events": [{"type": "click"}]}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["session_id"] == sid
        assert c.get(base + "/mood", headers=h).json()["session_id"] == sid
        assert c.get(base + "/events", headers=h).json()["session_id"] == sid
        fb = c.post(base + "/feedback", json={"action_taken": "no_action"}, headers=h)
        assert fb.json() == {"session_id": sid, "feedback_recorded": True}
        assert c.delete(base, headers=h).json()["session_id"] == sid
        assert c.get(base + "/mood", headers=h).status_code == 404


def test_unusual_text_in_events_is_stored_exactly(server: LiveServer, server_key: str) -> None:
    texts = [
        "emoji 😡💥 and a flag 🇫🇷",
        "\u202eRTL override\u202c שגיאה في الدفع",
        "control \x01\x02\x1f\x7f tab\t newline\n return\r",
        "surrogate pair via escape: \U0001f600",
        "\ufffd\ufeff\u200b",
        "m" * 512,
    ]
    events = [{"type": "error", "message": t, "ts": 1_700_000_000 + i} for i, t in enumerate(texts)]
    events.append({"type": "page_view", "url": "/pay?q=☃&x=%00", "ts": 1_700_000_100})
    events.append({"type": "click", "x": -0.0, "y": 1e-300, "ts": 0})
    batch_id = "batch-🙂-\u202e-\t"
    base = server.base_url + "/v1/sessions/texts"
    h = {"X-Api-Key": server_key}
    with httpx.Client(timeout=30) as c:
        r = c.post(base + "/events", json={"events": events, "batch_id": batch_id}, headers=h)
        assert r.status_code == 200, r.text
        again = c.post(base + "/events", json={"events": events, "batch_id": batch_id}, headers=h)
        assert again.headers.get("idempotent-replayed") == "true"
        stored = c.get(base + "/events", headers=h).json()["events"]
    assert [e.get("message") for e in stored[: len(texts)]] == texts
    assert stored[len(texts)]["url"] == "/pay?q=☃&x=%00"
    assert (stored[-1]["x"], stored[-1]["y"], stored[-1]["ts"]) == (0.0, 1e-300, 0)


def varied(first: int, n: int, seed: int) -> str:
    """``n`` pseudo-random characters from the 256 starting at ``first``: text
    that does not compress, so storage cannot squeeze it under a size limit."""
    rng = random.Random(seed)
    return "".join(chr(first + rng.randrange(256)) for _ in range(n))


CJK, EMOJI = 0x4E00, 0x1F300


def test_long_multibyte_values_within_the_limits_are_stored(
    server: LiveServer, server_key: str
) -> None:
    """Every limit filled with multi-byte text (PostgreSQL once answered 500
    to a page URL of 1,000 CJK characters: its index entry was too large)."""
    sid = varied(EMOJI, 256, 1)
    base = server.base_url + "/v1/sessions/" + quote(sid, safe="")
    h = {"X-Api-Key": server_key}
    urls = ["/" + varied(CJK, 1000, 2), "/" + varied(CJK, 2047, 3), "/" + varied(EMOJI, 2047, 4)]
    events: list[dict[str, Any]] = [{"type": "page_view", "url": u} for u in urls]
    events += [{"type": "error", "message": varied(EMOJI, 512, 5)}] * 2
    events += [{"type": "rage_click", "x": 1, "y": 1}] * 2
    batch_id = varied(EMOJI, 128, 6)
    with httpx.Client(timeout=30) as c:
        r = c.post(base + "/events", json={"events": events, "batch_id": batch_id}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["current_mood"] == "frustrated"
        # the same URLs again: the page's row is updated, not duplicated
        again = c.post(base + "/events", json={"events": events[:3]}, headers=h)
        assert again.status_code == 200, again.text
        feedback = {"action_taken": varied(CJK, 128, 7), "notes": varied(EMOJI, 512, 8)}
        fb = c.post(base + "/feedback", json=feedback, headers=h)
        assert fb.status_code == 200, fb.text
        stored = c.get(base + "/events", headers=h).json()["events"]
        assert [e.get("url") for e in stored] == urls + [None] * 4 + urls
        pages = c.get(server.base_url + "/v1/analytics/pages", headers=h).json()["pages"]
        assert {p["url"]: p["sessions"] for p in pages if p["url"] in urls} == dict.fromkeys(
            urls, 1
        )
        actions = c.get(server.base_url + "/v1/analytics/actions", headers=h).json()["actions"]
        assert feedback["action_taken"] in {a["action"] for a in actions}
        name = varied(EMOJI, 200, 9)
        tenant = c.post(server.base_url + "/v1/keys/generate", json={"customer_name": name})
        assert tenant.status_code == 201 and tenant.json()["customer"] == name
        hook_url = "https://8.8.8.8/" + varied(CJK, 2000, 10)
        hook = c.post(server.base_url + "/v1/webhooks", json={"url": hook_url}, headers=h)
        assert hook.status_code == 201, hook.text
        # deleted at once, so the worker never tries to reach it
        assert c.delete(f"{server.base_url}/v1/webhooks/{hook.json()['id']}", headers=h).is_success
        assert c.delete(base, headers=h).json()["deleted"] is True


# -- big uploads ---------------------------------------------------------------------


def upload_chunks(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A streamed body without Content-Length (chunked): the server only learns
    its size by reading it."""
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        sent += n
        yield b"[" * n


def rss_mb(server: LiveServer) -> float:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_ten_megabyte_uploads_are_refused_without_buffering(fresh_server: LiveServer) -> None:
    """20 declared and 20 chunked 10 MB uploads: each gets 413 as soon as 1 MiB
    is exceeded, the server's memory does not grow with them, and the same
    connection is still usable afterwards."""
    key = fresh_server.new_key("starter")
    h = {"X-Api-Key": key, "Content-Type": "application/json"}
    url = fresh_server.base_url + EVENTS
    with httpx.Client(timeout=30) as c:
        # Warm up allocator and caches so the baseline is the steady state.
        c.post(url, content=b"[" * (MAX_BODY - 10), headers=h)
        before = rss_mb(fresh_server)
        for _ in range(20):
            declared = c.post(url, content=b"[" * TEN_MB, headers=h)
            assert declared.status_code == 413, declared.text
            chunked = c.post(url, content=upload_chunks(TEN_MB), headers=h)
            assert chunked.status_code == 413, chunked.text
            assert chunked.json()["error"] == "Payload too large"
        after = rss_mb(fresh_server)
        assert c.get(fresh_server.base_url + "/health").json()["status"] == "ok"
        ok = c.post(url, json={"events": [{"type": "click"}]}, headers={"X-Api-Key": key})
        assert ok.status_code == 200
    # 400 MB were offered; buffering even one would show as +10 MB.
    assert after - before < 50, (before, after)


def test_declared_oversize_is_refused_before_the_body_is_sent(live_server: LiveServer) -> None:
    """With Content-Length over the limit the 413 comes before the client has
    sent anything: a client waiting for 100-continue never uploads at all."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as s:
        s.sendall(
            (
                f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {live_server.new_key()}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {TEN_MB}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


# -- slow clients ---------------------------------------------------------------------


def open_stalled(port: int, request_head: bytes, partial_body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(request_head + partial_body)
    return s


def wait_for_answer(s: socket.socket, deadline: float) -> tuple[bytes, float]:
    """Whatever the server sends (possibly nothing, then a close) and when."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, time.monotonic()
        ready, _, _ = select.select([s], [], [], left)
        if ready:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return data, time.monotonic()
            if not chunk or b"\r\n\r\n" in data + chunk:
                return data + chunk, time.monotonic()
            data += chunk


def post_head(path: str, key: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.slow
def test_stalled_and_trickling_bodies_get_408_while_others_are_served(
    live_server: LiveServer, key: str
) -> None:
    body = b'{"events": [{"type": "click"}]}'
    started = time.monotonic()
    stalled = [
        open_stalled(live_server.port, post_head(path, key, len(body)), body[:7])
        for path in (EVENTS, "/v1/sessions/bad-input/feedback", "/v1/keys/generate")
        for _ in range(5)
    ]
    # A trickler sends a byte every 0.5 s: never idle, never done. The body
    # deadline is total, not per read, so it must be cut off too.
    trickler = open_stalled(live_server.port, post_head(EVENTS, key, 10_000), b"{")
    try:
        # Meanwhile the server serves everybody else, promptly.
        with httpx.Client(timeout=5) as c:
            for _ in range(20):
                assert c.get(live_server.base_url + "/health").status_code == 200
            r = c.post(
                live_server.base_url + "/v1/sessions/while-stalled/events",
                json={"events": [{"type": "click"}]},
                headers={"X-Api-Key": key},
            )
            assert r.status_code == 200
        deadline = started + 20
        trickled, trickle_done = b"", 0.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([trickler], [], [], 0.5)
            if ready:
                trickled, trickle_done = wait_for_answer(trickler, deadline)
                break
            trickler.sendall(b" ")
        answers = [wait_for_answer(s, deadline) for s in stalled]
    finally:
        for s in [*stalled, trickler]:
            s.close()
    for head, at in [*answers, (trickled, trickle_done)]:
        # 408 after the 10 s body deadline (a close without an answer would also
        # free the connection, but this server answers).
        assert head.startswith(b"HTTP/1.1 408"), head[:200]
        assert b"application/json" in head
        assert at - started < 15, at - started


@pytest.mark.slow
def test_stalled_request_headers_are_cut_off(live_server: LiveServer) -> None:
    """Slowloris on the headers: a connection that never finishes its request
    head must be closed (or answered 408) too, or a few thousand such
    connections exhaust the server's file descriptors."""
    started = time.monotonic()
    partial = [
        b"",  # connected, silent
        b"POST /v1/sessions/x/events HTTP/1.1\r\n",  # request line only
        b"POST /v1/sessions/x/events HTTP/1.1\r\nHost: x\r\nX-Api-Key: sm_",  # mid-header
    ]
    sockets = [open_stalled(live_server.port, head, b"") for head in partial]
    try:
        answers = [wait_for_answer(s, started + 20) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    for (data, at), head in zip(answers, partial, strict=True):
        assert at - started < 15, f"still open after {at - started:.0f} s: {head!r}"
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]


# -- the documented contract covers every error the server gives ---------------------

DOCUMENT = build_openapi(VERSION)


def documented(method: str, path: str) -> set[int]:
    return {int(s) for s in DOCUMENT["paths"][path][method.lower()]["responses"]}


@dataclass
class Trigger:
    method: str
    path: str  # documented path
    status: int


SID = "/v1/sessions/{session_id}"
TRIGGERS = [
    *[
        Trigger(m, p, s)
        for m, p in [
            ("POST", "/v1/keys/generate"),
            ("POST", "/v1/keys/publishable"),
            ("POST", SID + "/events"),
            ("POST", SID + "/feedback"),
        ]
        for s in (413, 415)
    ],
    *[
        Trigger(m, p, 400)
        for m, p in [
            ("GET", SID + "/events"),
            ("GET", SID + "/mood"),
            ("POST", SID + "/feedback"),
            ("DELETE", SID),
            ("DELETE", "/v1/webhooks/{webhook_id}"),
            ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
        ]
    ],
    # A publishable key on a secret-only endpoint, or from a foreign origin.
    *[
        Trigger(m, p, 403)
        for m, p in [
            ("POST", SID + "/events"),
            ("GET", SID + "/mood"),
            ("GET", SID + "/events"),
            ("POST", SID + "/feedback"),
            ("DELETE", SID),
            ("GET", "/v1/analytics/moods"),
            ("GET", "/v1/usage"),
        ]
    ],
]


@pytest.mark.parametrize("t", TRIGGERS, ids=[f"{t.method} {t.path} {t.status}" for t in TRIGGERS])
def test_error_status_is_documented(live_server: LiveServer, key: str, t: Trigger) -> None:
    """Provoke the error for real, then check the OpenAPI document lists it: a
    client generated from the document must know every status it can get."""
    base = live_server.base_url
    sid = "s" * 257 if t.status == 400 else "documented"
    url = base + t.path.replace("{session_id}", sid).replace("{webhook_id}", "wh_%00")
    headers = {"X-Api-Key": key}
    body: bytes = b"{}"
    if t.status == 413:
        body = b" " * (MAX_BODY + 1)
        headers["Content-Type"] = "application/json"
    elif t.status == 415:
        headers["Content-Type"] = "application/xml"
    elif t.status == 403:
        pk = httpx.post(
            base + "/v1/keys/publishable",
            json={"allowed_origins": ["https://shop.example"]},
            headers={"X-Api-Key": key},
        )
        assert pk.status_code == 201, pk.text
        headers = {"X-Api-Key": pk.json()["publishable_key"], "Origin": "https://evil.example"}
        if t.method == "POST":
            headers["Content-Type"] = "application/json"
            body = b'{"events": [{"type": "click"}]}'
    r = httpx.request(t.method, url, content=body if t.method == "POST" else None, headers=headers)
    assert r.status_code == t.status, r.text
    assert t.status in documented(t.method, t.path), (
        f"{t.status} is not documented for {t.method} {t.path}"
    )
