"""Standard Webhooks, end to end: real deliveries from a real server to a real
receiver, verified by the PyPI ``standardwebhooks`` and ``svix`` libraries (two
independent implementations of the spec); a 410 disables the webhook; a
receiver's Retry-After is honoured, capped at an hour. On both backends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
import svix.webhooks

from sessionmood_client import verify_webhook
from tests.conftest import BACKENDS, LiveServer, backend_servers, free_port
from tests.test_webhooks import _frustrate, _subscribe

ENV = {"SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1", "SESSIONMOOD_WEBHOOK_RETRY_BASE_S": "0.2"}

# status, extra headers of each answer in turn (the last one repeats)
Script = list[tuple[int, dict[str, str]]]


class Receiver:
    """A real HTTP receiver on loopback that answers as ``script`` says."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[tuple[float, dict[str, str], bytes]] = []  # (time, headers, body)
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.cond:
                    n = len(receiver.calls)
                    status, extra = receiver.script[min(n, len(receiver.script) - 1)]
                    receiver.calls.append((time.time(), headers, body))
                    receiver.cond.notify_all()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_calls(self, n: int, timeout: float = 30) -> list[tuple[float, dict[str, str], bytes]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, timeout), self.calls
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _deliveries(server: LiveServer, key: str, hook_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.base_url}/v1/webhooks/{hook_id}/deliveries", headers={"X-Api-Key": key})
    return list(r.json()["deliveries"])


def _until(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_deliveries_verify_with_standardwebhooks_and_svix(backend: str, tmp_path: Path) -> None:
    receiver = Receiver([(500, {}), (204, {})])  # the first attempt fails: a retry is seen
    try:
        with backend_servers(backend, tmp_path, "std", **ENV) as (server,):
            key = server.new_key("growth")
            hook = _subscribe(server, key, receiver.url)
            secret = hook["secret"]
            assert secret.startswith("whsec_")
            _frustrate(server, key, "buyer-1")
            calls = receiver.wait_calls(2)
        for _, headers, body in calls:
            # svix raises on a bad delivery and returns nothing; standardwebhooks
            # returns the verified body.
            svix.webhooks.Webhook(secret).verify(body, headers)
            verified = standardwebhooks.Webhook(secret).verify(body, headers)
            assert verified["type"] == "mood.changed"
            assert verified["data"]["session_id"] == "buyer-1"
            assert verified["data"]["mood"] == "frustrated"
            assert verified["timestamp"] == verified["data"]["occurred_at"]
            assert headers["webhook-signature"].startswith("v1,")
            # Our own verifier agrees, and types the event.
            event = verify_webhook(body, headers, secret)
            assert (event.data.previous_mood, event.data.mood) == ("neutral", "frustrated")
        # A retry is the same message: same id (receivers dedupe on it), same body.
        assert calls[0][1]["webhook-id"] == calls[1][1]["webhook-id"]
        assert calls[0][2] == calls[1][2]
        # Tampering is caught by the independent libraries too.
        _, headers, body = calls[1]
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(secret).verify(body.replace(b"buyer-1", b"buyer-2"), headers)
        with pytest.raises(svix.webhooks.WebhookVerificationError):
            svix.webhooks.Webhook(secret).verify(body.replace(b"buyer-1", b"buyer-2"), headers)
    finally:
        receiver.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_410_gone_disables_the_webhook(backend: str, tmp_path: Path) -> None:
    gone, control = Receiver([(410, {})]), Receiver([(200, {})])
    try:
        with backend_servers(backend, tmp_path, "gone", **ENV) as (server,):
            key = server.new_key("growth")
            hook = _subscribe(server, key, gone.url)
            _frustrate(server, key, "first")
            gone.wait_calls(1)
            failed = _until(
                lambda: [d for d in _deliveries(server, key, hook["id"]) if d["attempts"]]
            )
            assert failed[0]["status"] == "failed" and failed[0]["last_status_code"] == 410
            assert "410" in failed[0]["last_error"] and failed[0]["next_attempt_at"] is None
            listed = httpx.get(server.base_url + "/v1/webhooks", headers={"X-Api-Key": key})
            assert hook["id"] not in [w["id"] for w in listed.json()["webhooks"]]
            # The next change reaches another webhook of the tenant, never the gone one.
            _subscribe(server, key, control.url)
            _frustrate(server, key, "second")
            assert json.loads(control.wait_calls(1)[0][2])["data"]["session_id"] == "second"
            assert len(_deliveries(server, key, hook["id"])) == 1
        assert len(gone.calls) == 1
    finally:
        gone.close()
        control.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_after_is_honoured_and_capped_at_an_hour(backend: str, tmp_path: Path) -> None:
    # Retry base 0.2 s: without Retry-After the second attempt would come at once.
    paced = Receiver([(503, {"Retry-After": "2"}), (200, {})])
    stalling = Receiver([(429, {"Retry-After": "86400"})])
    try:
        with backend_servers(backend, tmp_path, "later", **ENV) as (server,):
            key = server.new_key("pro")
            _subscribe(server, key, paced.url)
            _frustrate(server, key, "paced")
            calls = paced.wait_calls(2)
            assert calls[1][0] - calls[0][0] >= 1.9
            key2 = server.new_key("pro")
            hook = _subscribe(server, key2, stalling.url)
            _frustrate(server, key2, "stalled")
            first = stalling.wait_calls(1)[0][0]
            tried = _until(
                lambda: [d for d in _deliveries(server, key2, hook["id"]) if d["attempts"]]
            )
            assert tried[0]["status"] == "pending" and tried[0]["last_status_code"] == 429
            wait = datetime.fromisoformat(tried[0]["next_attempt_at"]).timestamp() - first
            assert 3590 <= wait <= 3605  # an hour, not a day
    finally:
        paced.close()
        stalling.close()


def test_the_openapi_document_describes_the_webhook() -> None:
    from sessionmood_server.http.openapi import build_openapi

    hook = build_openapi("x")["webhooks"]["mood.changed"]["post"]
    headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert set(hook["responses"]) == {"200", "410"}
    schema = hook["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/WebhookEvent"}
