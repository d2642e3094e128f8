#!/usr/bin/env python3
"""Events/s on SQLite vs PostgreSQL with one and with two server replicas, in one run.

    .venv/bin/python bench/replicas.py            # ~1 minute, writes bench/replicas.md
    .venv/bin/python bench/replicas.py --smoke    # seconds; proves the harness works

Load: ``wrk -t2 -c64`` POSTing batches of 5 events over many sessions (a pro
tenant, so the quota path runs but never refuses). For two replicas, two wrk
processes run at once, one per replica (``-t1 -c32`` each: the same 64
connections in total) over the same session ids, and their rates are added.

PostgreSQL comes from ``SESSIONMOOD_BENCH_DATABASE_URL`` or
``SESSIONMOOD_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each run uses a throwaway schema. Everything (servers, PostgreSQL, wrk) shares
this machine's cores, so a second replica adds CPU contention, not CPU: read
the two-replica row as "correct and not slower", not as a scaling figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ADMIN = "bench-admin"
EVENTS5 = [
    {"type": "page_view", "url": "/checkout", "ts": 1714900200},
    {"type": "click", "x": 340, "y": 210, "ts": 1714900201},
    {"type": "scroll", "speed": 800, "direction": "down", "ts": 1714900202},
    {"type": "error", "message": "Payment failed", "ts": 1714900203},
    {"type": "rage_click", "x": 341, "y": 211, "ts": 1714900204},
]
BODY5 = json.dumps({"events": EVENTS5}, separators=(",", ":"))
WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "{key}"
wrk.body = '{body}'
local counter = {start}
function request()
  counter = counter + 1
  return wrk.format(nil, "/v1/sessions/{prefix}" .. (counter % {sessions}) .. "/events")
end
"""


@dataclass
class Result:
    label: str
    req_s: float
    p50_ms: float
    p99_ms: float

    @property
    def events_s(self) -> float:
        return self.req_s * 5


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def servers(db_url: str, n: int) -> Iterator[list[str]]:
    """``n`` production-style replicas (no demo, no access log) on one database."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    env = {
        **os.environ,
        "SESSIONMOOD_DATABASE_URL": db_url,
        "SESSIONMOOD_ADMIN_TOKEN": ADMIN,
        "SESSIONMOOD_LIMITS": "off",  # a load test: see README "Limits"
    }
    try:
        for _ in range(n):
            port = free_port()
            cmd = [PY, "-m", "sessionmood_server", "serve", "--port", str(port), "--no-demo"]
            procs.append(
                subprocess.Popen(
                    [*cmd, "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_healthy(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not become healthy")


def pro_key(url: str) -> str:
    import httpx

    r = httpx.post(
        url + "/v1/keys/generate",
        json={"customer_name": "bench", "plan": "pro"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    r.raise_for_status()
    return str(r.json()["api_key"])


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(
    urls: list[str], key: str, seconds: float, sessions: int, prefix: str
) -> tuple[float, float, float]:
    """Run one wrk per URL at once (splitting -t2 -c64); summed req/s, worst p50/p99."""
    threads, conns = (2, 64) if len(urls) == 1 else (1, 64 // len(urls))
    procs = []
    scripts = []
    for i, url in enumerate(urls):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            # Different start offsets: the replicas work the same sessions, not in lockstep.
            start = i * (sessions // len(urls))
            f.write(
                WRK_LUA.format(key=key, body=BODY5, prefix=prefix, sessions=sessions, start=start)
            )
        scripts.append(f.name)
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", f.name]
        procs.append(subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, text=True))
    total, p50, p99 = 0.0, 0.0, 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if os.environ.get("BENCH_VERBOSE"):
            print(out, flush=True)
        if proc.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
            raise RuntimeError("wrk saw errors under load:\n" + out)
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = max(p50, _ms(re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1)))  # type: ignore[union-attr]
        p99 = max(p99, _ms(re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1)))  # type: ignore[union-attr]
    for name in scripts:
        os.unlink(name)
    return total, p50, p99


def measure(label: str, db_url: str, replicas: int, seconds: float, sessions: int) -> Result:
    with servers(db_url, replicas) as urls:
        key = pro_key(urls[0])
        # Warm-up opens every session once (the quota and new-session path);
        # the measured run is then the steady state: visitors sending more batches.
        wrk(urls, key, seconds, sessions, "s")
        req_s, p50, p99 = wrk(urls, key, seconds, sessions, "s")
    print(f"{label}: {req_s:.0f} req/s = {req_s * 5:.0f} events/s", flush=True)
    return Result(label, req_s, p50, p99)


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from sessionmood_server.storage.postgres import parse_postgres_url

    conn = await asyncpg.connect(parse_postgres_url(url)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the harness works")
    ap.add_argument("--out", default=str(ROOT / "bench" / "replicas.md"))
    a = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench/replicas.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    seconds, sessions = (1, 200) if a.smoke else (10, 2_000)
    pg = (
        os.environ.get("SESSIONMOOD_BENCH_DATABASE_URL")
        or os.environ.get("SESSIONMOOD_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    tmp = Path(tempfile.mkdtemp(prefix="sm-replicas-"))
    results = [measure("SQLite, 1 process", f"sqlite:///{tmp / 'bench.db'}", 1, seconds, sessions)]
    for n in (1, 2):
        schema = "bench_" + secrets.token_hex(4)
        sep = "&" if "?" in pg else "?"
        try:
            results.append(
                measure(
                    f"PostgreSQL, {n} replica{'s' if n > 1 else ''}",
                    f"{pg}{sep}schema={schema}",
                    n,
                    seconds,
                    sessions,
                )
            )
        finally:
            asyncio.run(_drop_schema(pg, schema))
    base = results[0].events_s
    header = "| backend | events/s | req/s (5 events) | vs SQLite | p50 ms | p99 ms |\n"
    header += "|---|---|---|---|---|---|\n"
    table = header + "".join(
        f"| {r.label} | {r.events_s:,.0f} | {r.req_s:,.0f} | {r.events_s / base:.2f} | "
        f"{r.p50_ms:.1f} | {r.p99_ms:.1f} |\n"
        for r in results
    )
    print(table)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(a.out).write_text(
        "# Replicas benchmark\n\n"
        + ("Smoke run (tiny sizes, not a measurement).\n\n" if a.smoke else "")
        + f"Measured {when} on {os.cpu_count()} cores (servers, PostgreSQL 15 and wrk all on "
        f"this machine), {seconds} s per run, POST batches of 5 events over {sessions:,} "
        "sessions, wrk -t2 -c64 in total (two replicas: one wrk -t1 -c32 per replica, "
        "run at once). Reproduce: `.venv/bin/python bench/replicas.py`.\n\n" + table
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
