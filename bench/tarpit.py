#!/usr/bin/env python3
"""Tarpit delay: how late one tenant's webhook delivery arrives while another
tenant's 20 webhooks point at a receiver that accepts connections and never answers.

    .venv/bin/python bench/tarpit.py                       # SQLite, about 20 s
    .venv/bin/python bench/tarpit.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/tarpit.py --source /tmp/base    # the server from another checkout

Everything runs on loopback: a real ``sessionmood serve``, a tarpit (accepts,
reads the request, never answers) and an ordinary receiver answering 204.
Tenant A subscribes 20 webhooks to the tarpit and frustrates ``--sessions``
sessions (20 deliveries each); tenant B subscribes one webhook to the
receiver. The figure is the time from B's POST being sent to B's delivery
arriving, measured first with A quiet (the reference, same run) and then
while A's deliveries hang. A round that waits longer than ``--give-up``
seconds is reported as "> N s".

``--source DIR`` starts the server from another checkout (e.g. the base commit,
``git archive f838d60 | tar -x -C /tmp/base``) with this virtualenv, so the
before/after figures come from the same script and machine. PostgreSQL runs
use a throwaway schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin"
FRUSTRATING = [
    {"type": "rage_click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment failed"},
    {"type": "error", "message": "Payment failed"},
    {"type": "rage_click", "x": 2, "y": 2},
]


class Tarpit:
    """Accepts connections, reads what arrives, never answers; counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                conn.close()


class Receiver:
    """Answers 204 to every POST and records when each arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrivals.append(time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(database_url: str, source: Path, log: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SESSIONMOOD_DATABASE_URL": database_url,
        "SESSIONMOOD_ADMIN_TOKEN": ADMIN,
        "SESSIONMOOD_ALLOW_PRIVATE_WEBHOOKS": "1",
        "PYTHONPATH": str(source),
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sessionmood_server", "serve", "--port", str(port)],
            env=env,
            cwd=source,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {log}")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    if not url:
        yield f"sqlite:///{tmp / 'tarpit.db'}"
        return
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    schema = "bench_tarpit_" + secrets.token_hex(4)
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("schema", schema)])
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        asyncio.run(drop())


def tenant(c: httpx.Client, base: str, name: str) -> dict[str, str]:
    r = c.post(
        base + "/v1/keys/generate",
        json={"customer_name": name, "plan": "growth"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    r.raise_for_status()
    return {"X-Api-Key": r.json()["api_key"]}


def subscribe(c: httpx.Client, base: str, key: dict[str, str], url: str) -> None:
    c.post(base + "/v1/webhooks", json={"url": url}, headers=key).raise_for_status()


def frustrate(c: httpx.Client, base: str, key: dict[str, str], sid: str) -> float:
    """POST a frustrating batch; the monotonic time it was sent. (Not when it
    was answered: the delivery may start, and arrive, before the answer does.)"""
    sent = time.monotonic()
    r = c.post(f"{base}/v1/sessions/{sid}/events", json={"events": FRUSTRATING}, headers=key)
    r.raise_for_status()
    assert r.json()["current_mood"] == "frustrated", r.text
    return sent


def delay(
    c: httpx.Client, base: str, key: dict[str, str], rx: Receiver, sid: str, give_up: float
) -> float | None:
    """Seconds from B's POST being sent to its delivery arriving; None past ``give_up``."""
    seen = len(rx.arrivals)
    sent = frustrate(c, base, key, sid)
    while len(rx.arrivals) == seen:
        if time.monotonic() - sent > give_up:
            return None
        time.sleep(0.005)
    return rx.arrivals[seen] - sent


def fmt(d: float | None, give_up: float) -> str:
    return f"> {give_up:.0f} s" if d is None else f"{d * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", help="postgresql://... (default: a temporary SQLite file)")
    ap.add_argument("--source", type=Path, default=ROOT, help="checkout to run the server from")
    ap.add_argument("--sessions", type=int, default=5, help="tenant A's sessions (x20 webhooks)")
    ap.add_argument("--rounds", type=int, default=3, help="B deliveries timed per phase")
    ap.add_argument(
        "--give-up", type=float, default=60.0, help="seconds before a round counts as lost"
    )
    a = ap.parse_args()
    tarpit, rx = Tarpit(), Receiver()
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(a.database_url, Path(tmp)) as url,
        server(url, a.source.resolve(), Path(tmp) / "server.log") as base,
        httpx.Client(timeout=30) as c,
    ):
        a_key, b_key = tenant(c, base, "A (tarpit)"), tenant(c, base, "B")
        subscribe(c, base, b_key, f"http://127.0.0.1:{rx.port}/hook")
        quiet = [delay(c, base, b_key, rx, f"quiet-{i}", a.give_up) for i in range(a.rounds)]
        for i in range(20):
            subscribe(c, base, a_key, f"http://127.0.0.1:{tarpit.port}/hook/{i}")
        for i in range(a.sessions):
            frustrate(c, base, a_key, f"a-{i}")
        deadline = time.monotonic() + 10
        while tarpit.accepted == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # let the worker take up A's deliveries
        hanging = tarpit.accepted
        loud = [delay(c, base, b_key, rx, f"loud-{i}", a.give_up) for i in range(a.rounds)]
    tarpit.close()
    rx.close()
    backend = "PostgreSQL" if a.database_url else "SQLite"
    print(f"server from {a.source.resolve()} on {backend}")
    print(f"tenant A: 20 webhooks -> tarpit, {a.sessions} sessions ({20 * a.sessions} deliveries)")
    print(f"connections hanging at the tarpit when B started: {hanging}")
    print(f"B's delivery delay, A quiet:    {', '.join(fmt(d, a.give_up) for d in quiet)}")
    print(f"B's delivery delay, A tarpit:   {', '.join(fmt(d, a.give_up) for d in loud)}")
    done = [d for d in loud if d is not None]
    ref = statistics.median(d for d in quiet if d is not None)
    if len(done) == len(loud):
        print(f"median tarpit / quiet: {statistics.median(done) / ref:.1f}x")
    else:
        print(f"{len(loud) - len(done)} of {len(loud)} deliveries later than {a.give_up:.0f} s")


if __name__ == "__main__":
    main()
