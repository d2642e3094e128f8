"""Reliability under load, crashes and concurrent retries, through a real server.

Every test talks HTTP over loopback to a real ``sessionmood serve`` process and
checks the stored data afterwards through the public API (export, mood, usage),
so what is asserted is what a customer would see. Events carry markers (``ts``
is the batch number, ``y`` the index inside the batch, or ``message`` the batch
id) so that every stored event can be traced back to exactly one request.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import LiveServer

# Far from "now" so that no server-filled receipt time can be mistaken for a marker.
BASE_TS = 1_700_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def session_path(session_id: str) -> str:
    return f"/v1/sessions/{quote(session_id, safe='')}"


class TransportFailure(Exception):
    """The connection broke before a whole response arrived: outcome unknown."""


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on one connection, one request at a time.

    Why not httpx for the bulk traffic: on these machines httpx costs 2-5 ms of
    client CPU per request (httpcore retries ``import sniffio`` on every call when
    it is not installed, and its pool bookkeeping grows with the pool), so
    10,000 requests through it take 40-70 s on 2 cores and the test measures
    the client. This costs ~50 us per request and leaves the server as the
    bottleneck. Starlette always sends Content-Length, which is all it parses.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        payload = b"" if json_body is None else json.dumps(json_body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if json_body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
        try:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self._reader is not None
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            got: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    got[name.strip().lower()] = value.strip()
            assert "content-length" in got, got  # no chunked responses expected
            body = await self._reader.readexactly(int(got["content-length"]))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise TransportFailure(repr(exc)) from exc
        if got.get("connection", "").lower() == "close":
            self.close()
        return RawResponse(status, got, body)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


Job = Callable[[RawClient], Awaitable[None]]


async def run_bounded(port: int, jobs: list[Job], concurrency: int) -> None:
    """Run ``jobs`` on ``concurrency`` workers, each with its own keep-alive
    connection: at most ``concurrency`` requests in flight, nothing queues in a pool."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        client = RawClient(port)
        try:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await job(client)
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def export(client: RawClient, key: str, sid: str) -> dict[str, Any]:
    r = await client.request("GET", session_path(sid) + "/events", headers={"X-Api-Key": key})
    assert r.status == 200, (sid, r.status, r.body)
    body: dict[str, Any] = r.json()
    return body


def assert_contiguous_seqs(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


# -- load --------------------------------------------------------------------

LOAD_SESSIONS = 200
LOAD_BATCHES = 50
LOAD_EVENTS_PER_BATCH = 5
LOAD_CONCURRENCY = 64


@pytest.mark.slow
@pytest.mark.anyio
async def test_load_every_event_stored_exactly_once(live_server: LiveServer) -> None:
    """200 sessions x 50 batches, 64 requests in flight, batches of one session
    racing each other: nothing lost, nothing doubled, no 5xx."""
    port = live_server.port
    # Growth: 200 new sessions must not eat a shared starter quota.
    key = live_server.new_key("growth", customer="load")
    headers = {"X-Api-Key": key}
    sessions = [f"load-{i:03d}" for i in range(LOAD_SESSIONS)]
    statuses: Counter[int] = Counter()
    # total_events answered to each batch: without lost updates these are exactly
    # k, 2k, ..., 50k per session (every batch saw a distinct predecessor).
    totals: dict[str, list[int]] = defaultdict(list)

    def make_job(sid: str, b: int) -> Job:
        events = [
            {"type": "click", "ts": BASE_TS + b, "x": b, "y": i}
            for i in range(LOAD_EVENTS_PER_BATCH)
        ]
        body = {"events": events, "batch_id": f"{sid}/{b}"}

        async def job(client: RawClient) -> None:
            r = await client.request(
                "POST", session_path(sid) + "/events", json_body=body, headers=headers
            )
            statuses[r.status] += 1
            if r.status == 200:
                totals[sid].append(r.json()["total_events"])

        return job

    jobs = [make_job(sid, b) for sid in sessions for b in range(LOAD_BATCHES)]
    # Deterministic shuffle: a session's batches are in flight together, in any order.
    random.Random(9).shuffle(jobs)
    await run_bounded(port, jobs, LOAD_CONCURRENCY)
    assert statuses == {200: LOAD_SESSIONS * LOAD_BATCHES}, statuses

    per_session = LOAD_BATCHES * LOAD_EVENTS_PER_BATCH
    expected_markers = sorted(
        (BASE_TS + b, i) for b in range(LOAD_BATCHES) for i in range(LOAD_EVENTS_PER_BATCH)
    )
    expected_totals = list(range(LOAD_EVENTS_PER_BATCH, per_session + 1, LOAD_EVENTS_PER_BATCH))

    async def verify(sid: str, client: RawClient) -> None:
        assert sorted(totals[sid]) == expected_totals, sid
        body = await export(client, key, sid)
        events = body["events"]
        assert body["event_count"] == len(events) == per_session, sid
        assert_contiguous_seqs(events)
        assert sorted((e["ts"], e["y"]) for e in events) == expected_markers, sid
        # A batch is stored as one contiguous run, in its own order.
        runs: dict[float, list[tuple[int, int]]] = defaultdict(list)
        for e in events:
            runs[e["ts"]].append((e["seq"], e["y"]))
        for run in runs.values():
            first = run[0][0]
            assert run == [(first + i, i) for i in range(LOAD_EVENTS_PER_BATCH)], (sid, run)
        mood = await client.request("GET", session_path(sid) + "/mood", headers=headers)
        assert mood.status == 200 and mood.json()["event_count"] == per_session, sid

    def make_check(sid: str) -> Job:
        return lambda client: verify(sid, client)

    await run_bounded(port, [make_check(sid) for sid in sessions], 8)
    client = RawClient(port)
    usage = (await client.request("GET", "/v1/usage", headers=headers)).json()
    assert usage["sessions_used"] == LOAD_SESSIONS
    analytics = (await client.request("GET", "/v1/analytics/moods", headers=headers)).json()
    client.close()
    assert analytics["total_sessions"] == LOAD_SESSIONS
    assert sum(m["count"] for m in analytics["mood_distribution"]) == LOAD_SESSIONS


# -- crash ---------------------------------------------------------------------

CRASH_SESSIONS = 20
CRASH_BATCHES = 100
CRASH_EVENTS_PER_BATCH = 5
CRASH_CONCURRENCY = 32
KILL_AFTER_ACKS = 300


@dataclass
class CrashLoad:
    acked: dict[str, bytes] = field(default_factory=dict)  # batch_id -> body of its 200
    failed: set[str] = field(default_factory=set)  # connection broke: outcome unknown
    unexpected: list[tuple[str, int | str]] = field(default_factory=list)
    killed: bool = False


def crash_batch(sid: str, b: int) -> tuple[str, dict[str, Any]]:
    """A batch whose every event carries its id, so a half-stored batch shows."""
    batch_id = f"{sid}#{b}"
    events = [
        {"type": "error", "message": batch_id, "ts": BASE_TS + b}
        for _ in range(CRASH_EVENTS_PER_BATCH)
    ]
    return batch_id, {"events": events, "batch_id": batch_id}


def assert_whole_batches(events: list[dict[str, Any]], sid: str) -> set[str]:
    """Every batch in the export is complete and contiguous; returns their ids."""
    assert_contiguous_seqs(events)
    runs: dict[str, list[int]] = defaultdict(list)
    for e in events:
        runs[e["message"]].append(e["seq"])
    for batch_id, seqs in runs.items():
        assert batch_id.startswith(sid + "#"), (sid, batch_id)
        assert seqs == list(range(seqs[0], seqs[0] + CRASH_EVENTS_PER_BATCH)), (batch_id, seqs)
    return set(runs)


@pytest.mark.slow
@pytest.mark.anyio
async def test_sigkill_mid_load_loses_no_acknowledged_batch(fresh_server: LiveServer) -> None:
    """SIGKILL while batches are in flight, restart on the same file: every 200 is
    there, no batch is half there, and retrying everything stores each batch once."""
    server = fresh_server
    port = server.port
    key = server.new_key("growth", customer="crash")
    headers = {"X-Api-Key": key}
    sessions = [f"crash-{i:02d}" for i in range(CRASH_SESSIONS)]
    plan = [crash_batch(sid, b) for sid in sessions for b in range(CRASH_BATCHES)]
    state = CrashLoad()

    def make_job(batch_id: str, body: dict[str, Any]) -> Job:
        sid = batch_id.split("#")[0]

        async def job(client: RawClient) -> None:
            if state.killed:
                return
            try:
                r = await client.request(
                    "POST", session_path(sid) + "/events", json_body=body, headers=headers
                )
            except TransportFailure as exc:
                if not state.killed:
                    state.unexpected.append((batch_id, str(exc)))
                state.failed.add(batch_id)
                return
            if r.status != 200:
                state.unexpected.append((batch_id, r.status))
                return
            state.acked[batch_id] = r.body
            if len(state.acked) >= KILL_AFTER_ACKS and not state.killed:
                # From inside the event loop, between two awaits: the other 31
                # workers have requests on the wire at this moment.
                state.killed = True
                server.kill()

        return job

    jobs = [make_job(batch_id, body) for batch_id, body in plan]
    random.Random(17).shuffle(jobs)
    await run_bounded(port, jobs, CRASH_CONCURRENCY)
    assert state.killed, "the load finished before the kill: raise CRASH_BATCHES"
    assert not state.unexpected, state.unexpected[:10]
    # Sanity: the kill hit requests on the wire (else this test proves little).
    assert state.failed, "nothing was in flight at the kill"

    server.start()
    stored: set[str] = set()
    client = RawClient(port)
    for sid in sessions:
        r = await client.request("GET", session_path(sid) + "/events", headers=headers)
        if r.status == 404:
            continue  # nothing of this session was committed
        assert r.status == 200, r.body
        events = r.json()["events"]
        stored |= assert_whole_batches(events, sid)
        mood = await client.request("GET", session_path(sid) + "/mood", headers=headers)
        assert mood.json()["event_count"] == len(events), sid
    missing = set(state.acked) - stored
    assert not missing, f"acknowledged but lost after SIGKILL: {sorted(missing)[:10]}"
    # Only batches that were sent may be there: acknowledged, or in flight at the kill.
    assert stored <= set(state.acked) | state.failed, sorted(stored - set(state.acked))[:10]

    # The client now retries everything with the same batch ids, as a real one
    # would after a crash: stored batches replay their first answer, the others
    # are stored now; each exactly once in the end.
    retried: dict[str, RawResponse] = {}

    def make_retry(batch_id: str, body: dict[str, Any]) -> Job:
        sid = batch_id.split("#")[0]

        async def job(c: RawClient) -> None:
            retried[batch_id] = await c.request(
                "POST", session_path(sid) + "/events", json_body=body, headers=headers
            )

        return job

    await run_bounded(port, [make_retry(b, body) for b, body in plan], CRASH_CONCURRENCY)
    assert Counter(r.status for r in retried.values()) == {200: len(plan)}
    for batch_id in stored:
        assert retried[batch_id].headers.get("idempotent-replayed") == "true", batch_id
    for batch_id, first in state.acked.items():
        assert retried[batch_id].body == first, batch_id
    for sid in sessions:
        ids = assert_whole_batches((await export(client, key, sid))["events"], sid)
        assert ids == {f"{sid}#{b}" for b in range(CRASH_BATCHES)}, sid

    assert (await client.request("GET", "/health")).json()["status"] == "ok"
    usage = (await client.request("GET", "/v1/usage", headers=headers)).json()
    assert usage["sessions_used"] == CRASH_SESSIONS
    client.close()


@pytest.mark.anyio
async def test_sigkill_before_session_rows_catch_up_keeps_every_mood(
    fresh_server: LiveServer,
) -> None:
    """On SQLite an open session's row lags its event log by up to 5 s
    (the state is in memory, the batches on disk). A SIGKILL inside that window
    must change nothing a client sees: the restart replays the log into the rows."""
    server = fresh_server
    key = server.new_key("growth", customer="replay")
    headers = {"X-Api-Key": key}
    kinds = [
        ["rage_click", "error"],
        ["scroll", "page_view"],
        ["click"],
        ["idle", "blur"],
        ["hover"],
    ]
    client = RawClient(server.port)
    answers: dict[str, dict[str, Any]] = {}
    for i, types in enumerate(kinds):
        sid = f"replay-{i}"
        for b in range(6):
            events = [
                {"type": t, "ts": BASE_TS + b * 3 + j, "url": f"/p{b}", "duration_ms": 40_000}
                for j, t in enumerate(types * 2)
            ]
            r = await client.request(
                "POST", session_path(sid) + "/events", json_body={"events": events}, headers=headers
            )
            assert r.status == 200, r.body
            answers[sid] = r.json()
    client.close()
    server.kill()  # at once: within the rows' catch-up window
    assert len({a["current_mood"] for a in answers.values()}) >= 3  # varied sessions

    server.start()
    client = RawClient(server.port)
    for sid, last in answers.items():
        r = await client.request("GET", session_path(sid) + "/mood", headers=headers)
        mood = r.json()
        got = (mood["mood"], mood["confidence"], mood["signals"], mood["event_count"])
        want = (last["current_mood"], last["confidence"], last["signals"], last["total_events"])
        assert got == want, sid
    analytics = await client.request("GET", "/v1/analytics/moods", headers=headers)
    counts = Counter(a["current_mood"] for a in answers.values())
    by_mood = {d["mood"]: d["count"] for d in analytics.json()["mood_distribution"]}
    assert {m: n for m, n in by_mood.items() if n} == dict(counts)
    client.close()


# -- concurrent retries ----------------------------------------------------------


def retry_events(n: int) -> list[dict[str, Any]]:
    return [{"type": "rage_click", "x": 10, "y": i, "ts": BASE_TS + i} for i in range(n)]


def async_client(connections: int) -> httpx.AsyncClient:
    # One connection per concurrent request, so all copies really are in flight together.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


@pytest.mark.anyio
@pytest.mark.parametrize("via", ["body", "header"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-session", "open-session"])
async def test_same_batch_sent_ten_times_concurrently_is_stored_once(
    live_server: LiveServer, via: str, existing: bool
) -> None:
    """A client that retries a batch in parallel (10 copies at once) stores it
    once and gets the same answer every time."""
    base = live_server.base_url
    key = live_server.new_key("starter", customer="retries")
    headers = {"X-Api-Key": key}
    async with async_client(10) as client:
        # Several rounds with new ids: one lucky interleaving proves little.
        for round_ in range(5):
            url = base + session_path(f"retry-{round_}") + "/events"
            before = 0
            if existing:
                r = await client.post(url, json={"events": retry_events(1)}, headers=headers)
                assert r.status_code == 200
                before = 1
            batch_id = f"batch-{round_}"
            body: dict[str, Any] = {"events": retry_events(3)}
            req_headers = dict(headers)
            if via == "body":
                body["batch_id"] = batch_id
            else:
                req_headers["Idempotency-Key"] = batch_id
            answers = await asyncio.gather(
                *(client.post(url, json=body, headers=req_headers) for _ in range(10))
            )
            assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
            assert len({a.content for a in answers}) == 1, {a.content for a in answers}
            replayed = [a.headers.get("idempotent-replayed") == "true" for a in answers]
            assert replayed.count(False) == 1, replayed
            assert answers[0].json()["events_stored"] == 3
            assert answers[0].json()["total_events"] == before + 3
            export = (await client.get(url, headers=headers)).json()
            assert export["event_count"] == before + 3
            assert_contiguous_seqs(export["events"])
            mood = await client.get(url.removesuffix("/events") + "/mood", headers=headers)
            assert mood.json()["event_count"] == before + 3
        usage = (await client.get(base + "/v1/usage", headers=headers)).json()
        assert usage["sessions_used"] == 5


@pytest.mark.anyio
async def test_same_batch_id_raced_across_sessions_lands_in_exactly_one(
    live_server: LiveServer,
) -> None:
    """One batch id sent for 10 different sessions at the same instant: one wins,
    the others get 409 and leave no trace (no session, no quota used)."""
    base = live_server.base_url
    key = live_server.new_key("starter", customer="conflicts")
    headers = {"X-Api-Key": key}
    sids = [f"conflict-{i}" for i in range(10)]
    body = {"events": retry_events(2), "batch_id": "shared-batch"}
    async with async_client(10) as client:
        answers = await asyncio.gather(
            *(
                client.post(base + session_path(s) + "/events", json=body, headers=headers)
                for s in sids
            )
        )
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [409] * 9, codes
        assert all(a.json()["field"] == "batch_id" for a in answers if a.status_code == 409)
        winner = sids[codes.index(200)]
        for sid in sids:
            r = await client.get(base + session_path(sid) + "/mood", headers=headers)
            assert r.status_code == (200 if sid == winner else 404), sid
        usage = (await client.get(base + "/v1/usage", headers=headers)).json()
        assert usage["sessions_used"] == 1
