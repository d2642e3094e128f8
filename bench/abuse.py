#!/usr/bin/env python3
"""What an attacker on loopback can do to a ``sessionmood serve``, measured.

    .venv/bin/python bench/abuse.py quota                        # burn a starter month with a pk
    .venv/bin/python bench/abuse.py signup                       # keys/minute from one client
    .venv/bin/python bench/abuse.py streams --backend sqlite     # 400 idle SSE streams vs POSTs
    .venv/bin/python bench/abuse.py stall --backend postgres     # /health during big answers
    .venv/bin/python bench/abuse.py struggle                     # /health during elements, journeys
    .venv/bin/python bench/abuse.py all                          # everything, both backends

Each section starts its own server (SQLite in a temporary directory, or
PostgreSQL in a throwaway schema of ``SESSIONMOOD_BENCH_DATABASE_URL`` /
``SESSIONMOOD_TEST_DATABASE_URL``) and prints one table. ``quota`` and
``signup`` run with the server's default limits, since those are what they
measure; ``streams``, ``stall`` and ``struggle`` run with ``SESSIONMOOD_LIMITS=off``
so that one address may open 400 streams, build a 300,000-event session or
store a million events with 50,000 distinct elements. Loads are
bounded and loopback only. Timings on a shared machine drift: ``streams``
therefore reports ratios of interleaved rounds (no streams, 400 streams, ...).
The script runs against older servers too (it only uses the HTTP API and
follows ``next_cursor`` only when an export answer has one), which is how the
"before" figures in the README were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ADMIN = "abuse-admin"
# The source tree whose server is measured (``--server-root``: e.g. an older
# commit unpacked with ``git archive``, to measure "before" in the same session).
SERVER_ROOT = ROOT
PG_URL = (
    os.environ.get("SESSIONMOOD_BENCH_DATABASE_URL")
    or os.environ.get("SESSIONMOOD_TEST_DATABASE_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
SITE = "https://shop.example"
# A new session that ends frustrated: every POST of it is a mood change.
FRUSTRATING = json.dumps(
    {
        "events": [
            {"type": "page_view", "url": "/checkout"},
            {"type": "rage_click", "x": 340, "y": 210},
            {"type": "error", "message": "Payment failed"},
            {"type": "error", "message": "Payment failed"},
        ]
    },
    separators=(",", ":"),
)
CLICK = json.dumps({"events": [{"type": "click", "x": 1, "y": 2}]}, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    db_path: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(backend: str, tmp: Path, **env: str) -> Iterator[Server]:
    """A ``sessionmood serve`` on a free port and a fresh database."""
    port = free_port()
    schema = None
    db_path = None
    if backend == "sqlite":
        db_path = tmp / f"abuse-{port}.db"
        db_url = f"sqlite:///{db_path}"
    else:
        schema = "abuse_" + secrets.token_hex(4)
        db_url = PG_URL + ("&" if "?" in PG_URL else "?") + f"schema={schema}"
    full_env = {
        **os.environ,
        "SESSIONMOOD_DATABASE_URL": db_url,
        "SESSIONMOOD_ADMIN_TOKEN": ADMIN,
        "SESSIONMOOD_PURGE_INTERVAL_S": "0",
        **env,
    }
    cmd = [PY, "-m", "sessionmood_server", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=SERVER_ROOT, env=full_env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b" 200 " in s.recv(1024):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.05)
        yield Server(proc, port, db_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if schema is not None:
            _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(run())


# -- a small raw HTTP/1.1 client (keep-alive), light enough to drive load ------------


class Conn:
    """One keep-alive connection; ``source`` picks the client address (127.x.y.z)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port, self.source = port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._request(method, path, body, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            self.close()  # the server closed an idle keep-alive connection: reconnect once
            return await self._request(method, path, body, headers)

    async def _request(
        self, method: str, path: str, body: str, headers: dict[str, str] | None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(self.source, 0)
            )
        assert self.reader is not None
        data = body.encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: abuse\r\nContent-Length: {len(data)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.writer.write((head + "\r\n").encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", raw)
        payload = await self.reader.readexactly(int(m.group(1))) if m else b""
        if re.search(rb"(?i)\r\nconnection: *close", raw):
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _json(conn: Conn, method: str, path: str, body: Any = None, **headers: str) -> Any:
    status, payload = await conn.request(
        method,
        path,
        "" if body is None else json.dumps(body),
        {"Content-Type": "application/json", **headers},
    )
    if status >= 300:
        raise RuntimeError(f"{method} {path} -> {status}: {payload[:300]!r}")
    return json.loads(payload)


async def new_key(port: int, plan: str = "pro", name: str = "abuse") -> str:
    conn = Conn(port)
    body = await _json(
        conn,
        "POST",
        "/v1/keys/generate",
        {"customer_name": name, "plan": plan},
        Authorization=f"Bearer {ADMIN}",
    )
    conn.close()
    return str(body["api_key"])


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n### {title}\n\n| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print(flush=True)


# -- quota: a starter month burnt through its publishable key -------------------------


async def _burn(
    port: int, pk: str, n: int, batches: int, conns: int, source: str
) -> tuple[dict[int, int], float]:
    """``n`` new sessions, ``batches`` POSTs each, no Origin header (curl)."""
    statuses: dict[int, int] = {}
    todo = iter(range(n))

    async def worker() -> None:
        c = Conn(port, source)
        for i in todo:
            for _ in range(batches):
                status, _ = await c.request(
                    "POST",
                    f"/v1/sessions/atk-{i}/events?key={pk}",
                    CLICK,
                    {"Content-Type": "text/plain"},
                )
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    break
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return statuses, time.perf_counter() - t0


async def _quota_run(port: int, batches: int) -> list[tuple[str, str]]:
    conn = Conn(port)
    sk = await new_key(port, "starter", "victim")
    pk = (
        await _json(
            conn, "POST", "/v1/keys/publishable", {"allowed_origins": [SITE]}, **{"X-Api-Key": sk}
        )
    )["publishable_key"]
    n = 5_001
    statuses, took = await _burn(port, pk, n, batches, 16, "127.0.0.1")
    usage = await _json(conn, "GET", "/v1/usage", **{"X-Api-Key": sk})
    # A real visitor of the site, from another address, right afterwards.
    visitor = Conn(port, "127.0.0.2")
    first, body = await visitor.request(
        "POST", f"/v1/sessions/visitor-1/events?key={pk}", CLICK, {"Origin": SITE}
    )
    second, _ = await visitor.request(
        "POST", f"/v1/sessions/visitor-1/events?key={pk}", CLICK, {"Origin": SITE}
    )
    visitor.close()
    conn.close()
    shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
    return [
        (f"attack: {n:,} new session ids x {batches} batch(es), no Origin", f"{took:.1f} s"),
        ("answers", shown),
        ("sessions counted this month (`/v1/usage`)", f"{usage['sessions_used']:,} / 5,000"),
        ("a real visitor from another address: 1st / 2nd batch", f"{first} / {second}"),
        ("visitor's answer", body[:120].decode(errors="replace")),
    ]


def quota(tmp: Path, backend: str) -> None:
    for batches in (1, 2):
        with serve(backend, tmp) as s:
            rows = asyncio.run(_quota_run(s.port, batches))
        table(f"quota burn with a publishable key ({backend}, {batches} batch(es)/session)", rows)


# -- sign-up: keys per minute from one client -------------------------------------------


async def _signup_run(port: int, seconds: float) -> tuple[dict[int, int], float]:
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        c = Conn(port)
        while time.perf_counter() < stop:
            status, _ = await c.request(
                "POST",
                "/v1/keys/generate",
                '{"customer_name":"flood"}',
                {"Content-Type": "application/json"},
            )
            statuses[status] = statuses.get(status, 0) + 1
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    return statuses, time.perf_counter() - t0


def signup(tmp: Path, backend: str, seconds: float = 10.0) -> None:
    with serve(backend, tmp) as s:
        size0 = _db_size(s)
        statuses, took = asyncio.run(_signup_run(s.port, seconds))
        size1 = _db_size(s)
    created = statuses.get(201, 0)
    rows = [
        (f"anonymous POST /v1/keys/generate, 8 connections, {took:.1f} s", ""),
        ("answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))),
        ("keys created per minute", f"{created * 60 / took:,.0f}"),
    ]
    if size0 is not None and size1 is not None:
        rows.append(("database growth", f"{(size1 - size0) / 1e6:.1f} MB"))
    table(f"sign-up rate from one client ({backend})", rows)


def _db_size(s: Server) -> int | None:
    if s.db_path is None:
        return None
    return sum(p.stat().st_size for p in s.db_path.parent.glob(s.db_path.name + "*") if p.is_file())


# -- streams: idle SSE streams of other tenants vs mood-changing POSTs ---------------------


async def _open_streams(port: int, keys: list[str], per_key: int) -> list[asyncio.StreamWriter]:
    async def one(key: str) -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/stream/moods HTTP/1.1\r\nHost: abuse\r\nX-Api-Key: {key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head[:13]:
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        await reader.readuntil(b"\n\n")  # the retry: line: the body is flowing
        return writer

    return list(await asyncio.gather(*(one(k) for k in keys for _ in range(per_key))))


async def _post_rate(port: int, keys: list[str], seconds: float, tag: str) -> tuple[float, int]:
    """Mood-changing POSTs (each opens a session that ends frustrated) for ``seconds``,
    one connection per key: on PostgreSQL a tenant's new sessions queue on its
    monthly usage row, which is not what this measures."""
    done = unchanged = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker(key: str) -> None:
        nonlocal done, unchanged
        c = Conn(port)
        while time.perf_counter() < stop:
            status, body = await c.request(
                "POST",
                f"/v1/sessions/{tag}-{next(counter)}/events",
                FRUSTRATING,
                {"Content-Type": "application/json", "X-Api-Key": key},
            )
            if status != 200:
                raise RuntimeError(f"POST -> {status}: {body[:200]!r}")
            done += 1
            if b'"current_mood":"frustrated"' not in body:
                unchanged += 1
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in keys))
    return done / (time.perf_counter() - t0), unchanged


async def _crowded(
    port: int, poster: list[str], watchers: list[str], seconds: float, tag: str
) -> tuple[float, int]:
    streams = await _open_streams(port, watchers, 20)
    await asyncio.sleep(0.5)
    try:
        return await _post_rate(port, poster, seconds, tag)
    finally:
        for w in streams:
            w.close()
        await asyncio.sleep(0.5)


async def _streams_run(port: int, rounds: int, seconds: float) -> list[tuple[float, float]]:
    poster = [await new_key(port, "pro", f"poster{i}") for i in range(32)]
    watchers = [await new_key(port, "growth", f"watcher{i}") for i in range(20)]
    await _post_rate(port, poster, 1.0, "warm")
    pairs = []
    for r in range(rounds):
        # ABBA: the database grows during the run and the machine drifts, so
        # every other round measures the crowded server first.
        if r % 2:
            crowded, bad2 = await _crowded(port, poster, watchers, seconds, f"r{r}b")
            alone, bad = await _post_rate(port, poster, seconds, f"r{r}a")
        else:
            alone, bad = await _post_rate(port, poster, seconds, f"r{r}a")
            crowded, bad2 = await _crowded(port, poster, watchers, seconds, f"r{r}b")
        if bad or bad2:
            raise RuntimeError(f"{bad + bad2} POSTs did not change the mood")
        pairs.append((alone, crowded))
        print(f"  round {r + 1}: {alone:,.0f} req/s alone, {crowded:,.0f} with 400 streams")
    return pairs


def streams(tmp: Path, backend: str, rounds: int = 5, seconds: float = 3.0) -> None:
    with serve(backend, tmp, SESSIONMOOD_LIMITS="off") as s:
        pairs = asyncio.run(_streams_run(s.port, rounds, seconds))
    ratios = [b / a for a, b in pairs]
    table(
        f"mood-changing POSTs with 400 idle SSE streams of 20 other tenants ({backend})",
        [
            (
                f"req/s without / with streams (median of {rounds} interleaved rounds)",
                f"{statistics.median(a for a, _ in pairs):,.0f} / "
                f"{statistics.median(b for _, b in pairs):,.0f}",
            ),
            ("ratio with / without", f"**{statistics.median(ratios):.2f}**"),
            ("ratio per round", ", ".join(f"{x:.2f}" for x in ratios)),
        ],
    )


# -- stalls: /health while the server builds a big answer ------------------------------------


async def _probe_during(port: int, op: Any) -> tuple[list[float], float, Any]:
    """/health latencies (s), probed every 10 ms on its own connection, while ``op`` runs."""
    lat: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        c = Conn(port)
        while not done.is_set():
            t = time.perf_counter()
            await c.request("GET", "/health")
            lat.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
        c.close()

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    result = await op()
    took = time.perf_counter() - t0
    done.set()
    await task
    return lat, took, result


async def _stall_run(port: int, events: int, urls: int) -> list[tuple[str, str]]:
    key = await new_key(port, "pro", "big")
    h = {"Content-Type": "application/json", "X-Api-Key": key}
    c = Conn(port)
    big = json.dumps({"events": [{"type": "click", "x": 1, "y": 2}] * 1000})
    for _ in range(events // 1000):
        status, body = await c.request("POST", "/v1/sessions/big/events", big, h)
        if status != 200:
            raise RuntimeError(f"filling the big session: {status} {body[:200]!r}")
    for start in range(0, urls, 1000):
        views = [{"type": "page_view", "url": f"/p/{i}"} for i in range(start, start + 1000)]
        status, body = await c.request(
            "POST", "/v1/sessions/pages/events", json.dumps({"events": views}), h
        )
        if status != 200:
            raise RuntimeError(f"filling the pages: {status} {body[:200]!r}")
    await asyncio.sleep(6)  # lagging session rows catch up first (SQLite)

    async def export() -> tuple[int, int, int]:
        n = size = requests = 0
        path = "/v1/sessions/big/events"
        while True:
            status, payload = await c.request("GET", path, "", h)
            if status != 200:
                raise RuntimeError(f"export: {status} {payload[:200]!r}")
            requests += 1
            size += len(payload)
            body = json.loads(payload)
            n += len(body["events"])
            cursor = body.get("next_cursor")
            if not cursor:
                return n, size, requests
            path = f"/v1/sessions/big/events?cursor={cursor}"

    async def pages(query: str) -> Any:
        async def run() -> tuple[int, int]:
            status, payload = await c.request("GET", "/v1/analytics/pages" + query, "", h)
            if status != 200:
                raise RuntimeError(f"pages: {status} {payload[:200]!r}")
            return len(json.loads(payload)["pages"]), len(payload)

        return run

    async def idle() -> None:
        await asyncio.sleep(2)

    rows = []
    lat, _, _ = await _probe_during(port, idle)
    rows.append(
        ("/health while idle: p50 / max", f"{pct(lat, 0.5) * 1e3:.1f} / {max(lat) * 1e3:.1f} ms")
    )
    lat, took, (n, size, requests) = await _probe_during(port, export)
    rows.append(
        (
            f"export of a {events:,}-event session ({requests} request(s), "
            f"{size / 1e6:.1f} MB, {took:.1f} s)",
            f"/health max {max(lat) * 1e3:,.0f} ms, p99 {pct(lat, 0.99) * 1e3:,.0f} ms",
        )
    )
    if n != events:
        raise RuntimeError(f"export returned {n} events, not {events}")
    for query in ("", "?limit=1000"):
        lat, took, (count, size) = await _probe_during(port, await pages(query))
        rows.append(
            (
                f"GET /v1/analytics/pages{query} over {urls:,} URLs "
                f"({count:,} pages, {size / 1e6:.1f} MB, {took:.2f} s)",
                f"/health max {max(lat) * 1e3:,.0f} ms, p99 {pct(lat, 0.99) * 1e3:,.0f} ms",
            )
        )
    c.close()
    return rows


def stall(tmp: Path, backend: str, events: int = 300_000, urls: int = 20_000) -> None:
    with serve(backend, tmp, SESSIONMOOD_LIMITS="off") as s:
        rows = asyncio.run(_stall_run(s.port, events, urls))
    table(f"/health latency during big answers ({backend})", rows)


# -- struggle: /health while elements and journeys are computed -------------------------------


def _visitor(k: int, events: int, targets: int, rng: Any) -> str:
    """Session ``k``: ``events`` events over a path of up to 8 of 40 pages, each
    click on one of ``targets`` elements (a few popular ones, a long tail); one
    session in five hammers a dead control and gets an error."""
    path = [f"/p/{rng.randrange(40)}" for _ in range(rng.randint(1, 8))]
    out: list[dict[str, Any]] = []
    ts = 1_790_000_000.0 + k * 3600
    angry = k % 5 == 0
    for step, page in enumerate(path):
        out.append({"type": "page_view", "url": page, "ts": ts})
        for i in range((events - len(path)) * (step + 1) // len(path) - len(out) + step + 1):
            ts += 0.7
            el = int(targets * rng.random() ** 3)  # popular elements first, a long tail
            kind = "click"
            if angry and i % 50 == 7:
                kind = "rage_click"
            elif angry and i % 50 == 9:
                kind = "error"
            out.append({"type": kind, "x": 1, "y": 2, "ts": ts, "target": f"#el-{el}"})
    return json.dumps({"events": out[:events]}, separators=(",", ":"))


async def _struggle_run(port: int, events: int, targets: int) -> list[tuple[str, str]]:
    import random

    key = await new_key(port, "pro", "struggle")
    h = {"Content-Type": "application/json", "X-Api-Key": key}
    rng = random.Random(26)
    per_session = 500
    sessions = events // per_session
    t0 = time.perf_counter()

    async def fill(worker: int) -> None:
        c = Conn(port)
        for k in range(worker, sessions, 4):
            status, body = await c.request(
                "POST", f"/v1/sessions/v{k}/events", _visitor(k, per_session, targets, rng), h
            )
            if status != 200:
                raise RuntimeError(f"filling: {status} {body[:200]!r}")
        c.close()

    await asyncio.gather(*(fill(w) for w in range(4)))
    filled = time.perf_counter() - t0
    await asyncio.sleep(6)  # lagging session rows catch up first (SQLite)
    c = Conn(port)

    def answer(path: str, key_name: str) -> Any:
        async def run() -> tuple[int, int]:
            status, payload = await c.request("GET", path, "", h)
            if status != 200:
                raise RuntimeError(f"{path}: {status} {payload[:200]!r}")
            return len(json.loads(payload)[key_name]), len(payload)

        return run

    rows = [
        (f"stored {sessions * per_session:,} events in {sessions:,} sessions", f"{filled:.0f} s")
    ]
    lat, _, _ = await _probe_during(port, lambda: asyncio.sleep(2))
    rows.append(
        ("/health while idle: p50 / max", f"{pct(lat, 0.5) * 1e3:.1f} / {max(lat) * 1e3:.1f} ms")
    )
    for path, key_name in (
        ("/v1/analytics/elements", "elements"),
        ("/v1/analytics/elements?limit=1000", "elements"),
        ("/v1/analytics/elements?page=/p/7", "elements"),
        ("/v1/analytics/journeys", "journeys"),
        ("/v1/analytics/journeys?steps=8&limit=1000", "journeys"),
    ):
        lat, took, (count, size) = await _probe_during(port, answer(path, key_name))
        rows.append(
            (
                f"GET {path} ({count:,} rows, {size / 1e3:,.0f} kB, {took:.2f} s)",
                f"/health max {max(lat) * 1e3:,.0f} ms, p99 {pct(lat, 0.99) * 1e3:,.0f} ms",
            )
        )
    c.close()
    return rows


def struggle(tmp: Path, backend: str, events: int = 1_000_000, targets: int = 50_000) -> None:
    with serve(backend, tmp, SESSIONMOOD_LIMITS="off") as s:
        rows = asyncio.run(_struggle_run(s.port, events, targets))
    table(
        f"/health latency while elements and journeys are computed ({backend}, "
        f"{events:,} events, {targets:,} elements)",
        rows,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("section", choices=["quota", "signup", "streams", "stall", "struggle", "all"])
    ap.add_argument("--events", type=int, default=1_000_000, help="struggle: events stored")
    ap.add_argument("--targets", type=int, default=50_000, help="struggle: distinct elements")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=5, help="streams: interleaved rounds")
    ap.add_argument("--seconds", type=float, default=3.0, help="streams: seconds per round")
    ap.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="run the server from this source tree (default: this checkout)",
    )
    a = ap.parse_args()
    global SERVER_ROOT
    SERVER_ROOT = a.server_root.resolve()
    with tempfile.TemporaryDirectory(prefix="sm-abuse-") as d:
        tmp = Path(d)
        backends = ["sqlite", "postgres"] if a.section == "all" else [a.backend]
        for backend in backends:
            if a.section in {"quota", "all"}:
                quota(tmp, backend)
            if a.section in {"signup", "all"}:
                signup(tmp, backend)
            if a.section in {"streams", "all"}:
                streams(tmp, backend, a.rounds, a.seconds)
            if a.section in {"stall", "all"}:
                stall(tmp, backend)
            if a.section in {"struggle", "all"}:
                struggle(tmp, backend, a.events, a.targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
