"""Webhooks: payloads, signatures, SSRF checks and the delivery worker.

Flow: a batch that changes a session's mood writes one outbox row per matching
webhook in the batch's own transaction (storage). The worker here claims due
rows, POSTs them signed, and records each attempt: a 2xx is delivered; anything
else is retried with exponential backoff until 24 h after the change, then
marked failed. Claims are leases, so a worker that dies mid-delivery only
delays the row (at-least-once); only the oldest pending row of a (webhook,
session) is ever claimed, so each session's changes arrive in order.

Signature header: ``SessionMood-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from sessionmood_client._models import WebhookEvent
from sessionmood_server.storage import DeliveryJob, Storage

log = logging.getLogger("sessionmood.webhooks")

SIGNATURE_HEADER = "SessionMood-Signature"
MAX_AGE_S = 24 * 3600
MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0
# A whole delivery (connect, send, status line) must fit in this.
DELIVERY_TIMEOUT_S = 15.0


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def webhook_payload(
    change_id: int,
    session_id: str,
    previous: str,
    mood: str,
    confidence: float,
    signals: list[str],
    action: str,
    occurred_at: float,
) -> str:
    """The JSON body of a ``mood.changed`` delivery, built from the shared wire model
    (``id`` lets receivers drop the duplicates at-least-once delivery can make)."""
    event = WebhookEvent.model_validate(
        {
            "type": "mood.changed",
            "id": change_id,
            "session_id": session_id,
            "previous_mood": previous,
            "mood": mood,
            "confidence": confidence,
            "signals": signals,
            "suggested_action": action,
            "occurred_at": datetime.fromtimestamp(occurred_at, UTC),
        }
    )
    return event.model_dump_json()


def sign(payload: str, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_s(attempts: int, base: float) -> float:
    """Delay before attempt ``attempts + 1``: base, 2·base, 4·base… capped at an hour."""
    return float(min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_S))


# -- SSRF -------------------------------------------------------------------------


class WebhookURLError(ValueError):
    """The URL may not receive webhooks; the message says why."""


# Cloud metadata endpoints: never a receiver, whatever the settings. Most are
# link-local; these are not.
_METADATA = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    ipaddress.ip_address("fd00:ec2::23"),  # AWS IPv6 DNS
}


def _address_refusal(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool
) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Link-local covers cloud metadata (169.254.169.254): never allowed.
    if ip.is_link_local or ip in _METADATA:
        return f"{ip} is link-local or cloud metadata and can never receive webhooks"
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is not a unicast address"
    if ip.is_global:
        return None
    if allow_private and (ip.is_private or ip.is_loopback):
        return None
    return (
        f"{ip} is a private, loopback or otherwise non-public address; set "
        "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS=1 to allow internal receivers"
    )


@dataclass(frozen=True, slots=True)
class VettedURL:
    """A webhook URL and the address it was checked at: delivery connects to
    exactly that address, so DNS cannot answer differently in between (rebinding)."""

    url: str
    host: str
    port: int
    ip: str

    def pinned(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(URL with the IP as host, headers, httpx extensions) for the request."""
        parts = urlsplit(self.url)
        ip_host = f"[{self.ip}]" if ":" in self.ip else self.ip
        default = 443 if parts.scheme == "https" else 80
        netloc = ip_host if self.port == default else f"{ip_host}:{self.port}"
        host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        extensions: dict[str, Any] = {}
        if parts.scheme == "https":
            # TLS still verifies the certificate against the real host name.
            extensions["sni_hostname"] = self.host
        return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions


async def vet_webhook_url(url: str, allow_private: bool) -> VettedURL:
    """Validate ``url`` and every address it resolves to now."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookURLError("not a valid URL (check the host and port)") from None
    if parts.scheme not in {"http", "https"}:
        raise WebhookURLError("webhook URLs must start with http:// or https://")
    if not parts.hostname:
        raise WebhookURLError("webhook URL has no host")
    if parts.username or parts.password:
        raise WebhookURLError("webhook URLs must not carry credentials")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookURLError(f"cannot resolve {parts.hostname}") from None
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    for address in addresses:
        refusal = _address_refusal(ipaddress.ip_address(address), allow_private)
        if refusal:
            raise WebhookURLError(refusal)
    if not addresses:
        raise WebhookURLError(f"cannot resolve {parts.hostname}")
    return VettedURL(parts.geturl(), parts.hostname, port, addresses[0])


async def check_webhook_url(url: str, allow_private: bool) -> str:
    """Validate ``url`` and what it resolves to now; returns the normalised URL."""
    return (await vet_webhook_url(url, allow_private)).url


# -- the worker -------------------------------------------------------------------


class DeliveryWorker:
    """Delivers the outbox. One per server process; replicas share the work via leases."""

    def __init__(
        self,
        storage: Storage,
        *,
        allow_private: bool,
        retry_base_s: float,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.storage = storage
        self.allow_private = allow_private
        self.retry_base_s = retry_base_s
        self.poll_s = poll_s
        self.clock = clock
        # No redirects: a receiver must not bounce the signed body elsewhere.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False, transport=transport
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sessionmood-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering whatever one bad row does
                log.exception("webhook delivery pass failed")
                sent = 0
            if not sent:
                await self.storage.wait_for_mood_change(self.poll_s)

    async def _post(self, job: DeliveryJob) -> int:
        # DNS may have changed since the webhook was registered: vet it again
        # and connect to the very address that passed.
        vetted = await vet_webhook_url(job.url, self.allow_private)
        url, headers, extensions = vetted.pinned()
        ts = int(self.clock())
        request = self._http.build_request(
            "POST",
            url,
            content=job.payload.encode(),
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": "SessionMood-Webhooks/1.0",
                SIGNATURE_HEADER: sign(job.payload, job.secret, ts),
            },
            extensions=extensions,
        )
        # Only the status matters: the body is never read, however large.
        response = await self._http.send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def run_once(self, limit: int = 50) -> int:
        """Claim and send what is due now; returns how many were attempted."""
        jobs = await self.storage.claim_deliveries(self.clock(), limit, LEASE_S)
        if jobs:
            await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def _deliver(self, job: DeliveryJob) -> None:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            # Bounded as a whole, not per read: a receiver that trickles its
            # answer must not hold up everyone else's deliveries.
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                status = await self._post(job)
            if not 200 <= status < 300:
                error = f"receiver answered {status}"
        except WebhookURLError as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"no answer within {DELIVERY_TIMEOUT_S:.0f} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = (time.perf_counter() - started) * 1000
        now = self.clock()
        next_at: float | None = None
        if error is not None:
            next_at = now + backoff_s(job.attempts + 1, self.retry_base_s)
            if next_at - job.created_at > MAX_AGE_S:
                next_at = None  # retried for 24 h: give up
            log.warning("webhook %s delivery %d failed: %s", job.webhook_id, job.id, error)
        await self.storage.finish_delivery(
            job.id,
            delivered=error is None,
            status_code=status,
            error=error,
            latency_ms=latency_ms,
            next_attempt_at=next_at,
            now=now,
        )
