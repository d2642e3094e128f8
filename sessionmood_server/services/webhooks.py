"""Webhooks: the delivery worker.

Flow: a batch that changes a session's mood writes one outbox row per matching
webhook in the batch's own transaction (storage, with the body from
``outbox.webhook_payload``). The worker here claims due rows, POSTs them
signed, and records each attempt: a 2xx is delivered; anything else is retried
with exponential backoff (or after the receiver's ``Retry-After``, at most an
hour) until 24 h after the change, then marked failed. A 410 Gone disables the
webhook: the receiver said the endpoint no longer exists, so its pending
deliveries fail at once and nothing more is sent to it.
Claims are leases, so a worker that dies mid-delivery only delays the row
(at-least-once); only the oldest pending row of a (webhook, session) is ever
claimed, so each session's changes arrive in order.

One tenant's slow receivers cannot hold up another's deliveries: every attempt
has a deadline (``SESSIONMOOD_WEBHOOK_TIMEOUT_S``), each endpoint has at most
``SESSIONMOOD_WEBHOOK_CONCURRENCY`` attempts in flight (across every replica:
storage counts the leases), and the worker starts each delivery as soon as a
slot is free rather than waiting for a whole claimed batch. When the process
is at ``SESSIONMOOD_WEBHOOK_MAX_IN_FLIGHT``, storage hands the next free slot to
the tenant with the fewest attempts in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from sessionmood_server.outbox import (
    MAX_AGE_S,
    backoff_s,
    retry_after_s,
    signed_headers,
    standard_body,
)
from sessionmood_server.records import Attempt, DeliveryJob
from sessionmood_server.services.metrics import METRICS
from sessionmood_server.services.ssrf import TenantResolver, WebhookURLError, vet_webhook_url
from sessionmood_server.storage import Storage

log = logging.getLogger("sessionmood.webhooks")

# A claimed delivery is another worker's to retry after this long (at least
# twice the delivery deadline): only a worker that died leaves one unfinished.
LEASE_S = 60.0


class DeliveryWorker:
    """Delivers the outbox. One per server process; replicas share the work via leases.

    ``timeout_s`` bounds each attempt as a whole (DNS, connect, send, status
    line); ``per_endpoint`` caps attempts in flight per webhook across every
    worker sharing the storage; ``max_in_flight`` caps this process's.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        allow_private: bool,
        retry_base_s: float,
        timeout_s: float = 10.0,
        per_endpoint: int = 4,
        max_in_flight: int = 100,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.storage = storage
        self.allow_private = allow_private
        self.retry_base_s = retry_base_s
        self.timeout_s = timeout_s
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.lease_s = max(LEASE_S, 2 * timeout_s)
        self.poll_s = poll_s
        self.clock = clock
        self.metrics = METRICS
        # No redirects: a receiver must not bounce the signed body elsewhere.
        # As many connections as deliveries in flight, so none waits for the pool.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=min(20, max_in_flight)
            ),
            follow_redirects=False,
            transport=transport,
        )
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._resolver = TenantResolver()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sessionmood-webhooks")

    async def stop(self) -> None:
        """Stop claiming and abandon attempts in flight: their leases expire and
        another worker (or the next start) sends them again."""
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        # Whatever they ended with (cancelled, or a failure just logged) is over.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()
        self._resolver.close()

    async def _run(self) -> None:
        while True:
            # Cleared before claiming: a delivery finishing from here on wakes
            # the wait below at once.
            self._slot_freed.clear()
            free = self.max_in_flight - len(self._in_flight)
            if free > 0:
                try:
                    jobs = await self.storage.claim_deliveries(
                        self.clock(), free, self.lease_s, self.per_endpoint
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # keep delivering whatever one bad pass does
                    self.metrics.error(exc)
                    log.exception("webhook claim failed")
                    jobs = []
                for job in jobs:
                    task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.id}")
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
            await self._wait_for_work()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()  # a slot, and maybe the session's next change, is free
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery failed to record", exc_info=task.exception())

    async def _wait_for_work(self) -> None:
        """Until a delivery finishes, a mood change is stored, or ``poll_s``
        passes (retries falling due, other replicas' leases expiring)."""
        waits = {
            asyncio.ensure_future(self._slot_freed.wait()),
            asyncio.ensure_future(self.storage.wait_for_mood_change(self.poll_s)),
        }
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _post(self, job: DeliveryJob) -> tuple[int, str | None]:
        # DNS may have changed since the webhook was registered: vet it again
        # and connect to the very address that passed.
        vetted = await vet_webhook_url(
            job.url, self.allow_private, self._resolver.for_tenant(job.tenant_id)
        )
        url, headers, extensions = vetted.pinned()
        body = standard_body(job.payload)
        request = self._http.build_request(
            "POST",
            url,
            content=body.encode(),
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": "SessionMood-Webhooks/1.0",
                **signed_headers(body, job.secret, job.id, int(self.clock())),
            },
            extensions=extensions,
        )
        # Only the status (and Retry-After) matter: the body is never read, however large.
        response = await self._http.send(request, stream=True)
        await response.aclose()
        return response.status_code, response.headers.get("retry-after")

    async def _deliver(self, job: DeliveryJob) -> None:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: str | None = None
        try:
            # Bounded as a whole, not per read: a receiver that trickles its
            # answer must not hold its slot for longer than this.
            async with asyncio.timeout(self.timeout_s):
                status, retry_after = await self._post(job)
            if status == 410:
                error = "receiver answered 410 Gone: webhook disabled"
            elif not 200 <= status < 300:
                error = f"receiver answered {status}"
        except WebhookURLError as exc:
            error = f"refused: {exc}"
        except ValueError as exc:  # a stored secret that is not whsec_<base64>
            error = f"cannot sign: {exc}"
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = (time.perf_counter() - started) * 1000
        now = self.clock()
        next_at: float | None = None
        if error is not None and status != 410:
            asked = retry_after_s(retry_after, now)
            delay = asked if asked is not None else backoff_s(job.attempts + 1, self.retry_base_s)
            next_at = now + delay
            if next_at - job.created_at > MAX_AGE_S:
                next_at = None  # retried for 24 h: give up
        if error is not None:
            log.warning("webhook %s delivery %d failed: %s", job.webhook_id, job.id, error)
        self.metrics.delivery(
            "delivered" if error is None else "gone" if status == 410 else "failed"
        )
        await self.storage.finish_delivery(
            Attempt(
                job.id,
                delivered=error is None,
                status_code=status,
                error=error,
                latency_ms=latency_ms,
                next_attempt_at=next_at,
                now=now,
            )
        )
        if status == 410:
            # Disabled as its owner would delete it: the webhook leaves the list,
            # its pending deliveries fail, and its delivery log stays readable.
            await self.storage.delete_webhook(job.tenant_id, job.webhook_id, now)
