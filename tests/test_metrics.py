"""``GET /metrics``: Prometheus' text format, parsed back with ``prometheus_client``;
admin token only; route templates, never keys or session ids; several worker
processes summed through ``PROMETHEUS_MULTIPROC_DIR``."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from sessionmood_server.app import create_app
from sessionmood_server.services.metrics import METRICS, Metrics, SharedDir
from sessionmood_server.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer, free_port, make_key
from tests.test_webhooks import FRUSTRATED

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(get: Any) -> Samples:
    r = get("/metrics", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return _samples(r.text)


@pytest.fixture
def admin_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        admin_token=ADMIN_TOKEN,
        webhooks_enabled=False,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_metrics_need_the_admin_token(tmp_path: Path, admin_client: TestClient) -> None:
    # Without a configured token there is no endpoint at all (and it says why).
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'n.db'}", webhooks_enabled=False)
    with TestClient(create_app(settings)) as c:
        r = c.get("/metrics", headers=ADMIN)
        assert r.status_code == 404 and "SESSIONMOOD_ADMIN_TOKEN" in r.json()["message"]
    assert admin_client.get("/metrics").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert admin_client.get("/metrics", headers=wrong).status_code == 401
    # A tenant's key is not the operator's token.
    key = make_key(admin_client)
    assert (
        admin_client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    )


def test_requests_events_and_moods_are_counted_without_keys_or_session_ids(
    admin_client: TestClient,
) -> None:
    before = _scrape(admin_client.get)
    key = make_key(admin_client)
    h = {"X-Api-Key": key}
    session = "secret-session-id-123"
    r = admin_client.post(f"/v1/sessions/{session}/events", json={"events": FRUSTRATED}, headers=h)
    assert r.json()["current_mood"] == "frustrated"
    for _ in range(3):
        assert admin_client.get(f"/v1/sessions/{session}/mood", headers=h).status_code == 200
    assert admin_client.get("/v1/sessions/unknown/mood", headers=h).status_code == 404
    assert admin_client.get("/no/such/page-" + key).status_code == 404
    text = admin_client.get("/metrics", headers=ADMIN).text
    assert session not in text and key not in text and key[:12] not in text
    after = _samples(text)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    mood = "/v1/sessions/{session_id}/mood"
    events = "/v1/sessions/{session_id}/events"
    total = "sessionmood_http_requests_total"
    assert delta(total, route=mood, method="GET", status="200") == 3
    assert delta(total, route=mood, method="GET", status="404") == 1
    assert delta(total, route=events, method="POST", status="200") == 1
    assert delta(total, route="/v1/keys/generate", method="POST", status="201") == 1
    assert delta(total, route="other", method="GET", status="404") == 1
    hist = "sessionmood_http_request_duration_seconds"
    assert delta(hist + "_count", route=mood) == 4
    assert delta(hist + "_bucket", route=mood, le="+Inf") == 4
    assert delta(hist + "_bucket", route=mood, le="10.0") == 4
    assert delta(hist + "_sum", route=mood) > 0
    assert delta("sessionmood_events_ingested_total") == len(FRUSTRATED)
    assert delta("sessionmood_batches_ingested_total") == 1
    assert delta("sessionmood_mood_changes_total", mood="frustrated") == 1
    assert _value(after, "sessionmood_open_streams") == 0
    assert _value(after, "sessionmood_webhook_backlog") == 0


def test_webhook_backlog_and_deliveries(tmp_path: Path) -> None:
    """A receiver that fails: the backlog shows the pending delivery, the
    outcome counter the failed attempts; then it answers and both settle."""
    fail = threading.Event()
    fail.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500 if fail.is_set() else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server = LiveServer(
        database_url=f"sqlite:///{tmp_path / 'hooks.db'}",
        env={"SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1", "SESSIONMOOD_WEBHOOK_RETRY_BASE_S": "0.2"},
        log_path=tmp_path / "hooks.log",
    )
    server.start()
    try:
        get = lambda path, **kw: httpx.get(server.base_url + path, **kw)  # noqa: E731
        key = server.new_key("growth")
        port = receiver.server_address[1]
        r = httpx.post(
            server.base_url + "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{port}/h"},
            headers={"X-Api-Key": key},
        )
        assert r.status_code == 201
        httpx.post(
            server.base_url + "/v1/sessions/s1/events",
            json={"events": FRUSTRATED},
            headers={"X-Api-Key": key},
        )
        samples = _wait_for(
            get, lambda s: _value(s, "sessionmood_webhook_deliveries_total", outcome="failed") >= 1
        )
        assert _value(samples, "sessionmood_webhook_backlog") == 1
        fail.clear()
        samples = _wait_for(
            get,
            lambda s: _value(s, "sessionmood_webhook_deliveries_total", outcome="delivered") == 1,
        )
        assert _value(samples, "sessionmood_webhook_backlog") == 0
    finally:
        server.stop()
        receiver.shutdown()
        receiver.server_close()


def _wait_for(get: Any, check: Any, timeout: float = 20) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(get)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, samples
        time.sleep(0.1)


def test_open_streams_are_a_gauge(tmp_path: Path) -> None:
    server = LiveServer(database_url=f"sqlite:///{tmp_path / 's.db'}", log_path=tmp_path / "s.log")
    server.start()
    try:
        get = lambda path, **kw: httpx.get(server.base_url + path, **kw)  # noqa: E731
        key = server.new_key()
        with httpx.stream(
            "GET", server.base_url + "/v1/stream/moods", headers={"X-Api-Key": key}, timeout=10
        ) as stream:
            assert stream.status_code == 200
            _wait_for(get, lambda s: _value(s, "sessionmood_open_streams") == 1)
        _wait_for(get, lambda s: _value(s, "sessionmood_open_streams") == 0)
    finally:
        server.stop()


def test_database_errors_are_counted_and_others_are_not() -> None:
    metrics = Metrics()
    metrics.error(sqlite3.OperationalError("database is locked"))
    metrics.error(ValueError("not the database"))
    assert metrics.current.database_errors == 1


def test_the_process_counters_are_plain_numbers() -> None:
    """The hot path touches no prometheus_client object: a request is dict arithmetic."""
    metrics = Metrics()
    metrics.request("/x", "GET", 200, 0.0007)
    metrics.request("/x", "GET", 200, 20.0)
    assert metrics.current.requests == {("/x", "GET", 200): 2}
    buckets = metrics.current.latency_buckets["/x"]
    assert buckets[1] == 1 and buckets[-1] == 1 and sum(buckets) == 2
    assert METRICS is not metrics  # the process's own is separate


def test_shared_dir_sums_processes_and_drops_exited_gauges(tmp_path: Path) -> None:
    a, b = Metrics(), Metrics()
    a.request("/x", "GET", 200, 0.01)
    b.request("/x", "GET", 200, 0.01)
    a.gauges(open_streams=2)
    b.gauges(open_streams=3)
    shared_a, shared_b = SharedDir(tmp_path, a), SharedDir(tmp_path, b)
    shared_b.write()
    total = shared_a.collect()
    assert total.requests == {("/x", "GET", 200): 2} and total.open_streams == 5
    shared_b.write(final=True)  # b exits: its counts stay, its gauge goes
    total = shared_a.collect()
    assert total.requests == {("/x", "GET", 200): 2} and total.open_streams == 2


def test_two_worker_processes_are_summed(tmp_path: Path) -> None:
    """Two real server processes sharing PROMETHEUS_MULTIPROC_DIR (each with its
    own database): a scrape of either counts the requests both served."""
    shared = tmp_path / "prom"
    shared.mkdir()
    servers = [
        LiveServer(
            database_url=f"sqlite:///{tmp_path / f'w{n}.db'}",
            env={"PROMETHEUS_MULTIPROC_DIR": str(shared)},
            log_path=tmp_path / f"w{n}.log",
        )
        for n in range(2)
    ]
    try:
        for server in servers:
            server.start()
        for n, server in enumerate(servers):
            for _ in range(n + 2):  # 2 on the first, 3 on the second
                assert httpx.get(server.base_url + "/v1/usage").status_code == 401
        route = {"route": "/v1/usage", "method": "GET", "status": "401"}
        for server in servers:
            get = lambda path, s=server, **kw: httpx.get(s.base_url + path, **kw)  # noqa: E731
            _wait_for(get, lambda s: _value(s, "sessionmood_http_requests_total", **route) == 5)
        assert len(list(shared.glob("sessionmood_*.json"))) == 2
    finally:
        for server in servers:
            server.stop()
