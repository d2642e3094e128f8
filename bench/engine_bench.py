"""In-process cost of the mood engine on one core.

Usage::

    .venv/bin/python bench/engine_bench.py [--events N] [--repeat R]

Prints the fold rate (events/s, best of R runs), the cost of the
``loads -> fold one event -> verdict -> dumps`` cycle the server runs per
request, and the serialised state size after a long session. The event mix is
the labeled public sessions replayed back to back (synthetic if that file is
missing), so every rule and field filter is exercised.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    from sessionmood_server import engine
except ImportError:  # the package __init__ may import server parts still being written
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "sessionmood_server.engine",
        Path(__file__).resolve().parents[1] / "sessionmood_server/engine.py",
    )
    assert _spec is not None and _spec.loader is not None
    engine = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = engine
    _spec.loader.exec_module(engine)

PUBLIC = Path("/work/shared/scenarios/public.jsonl")


def workload(n: int) -> list[dict[str, Any]]:
    """``n`` events with increasing ts: the public sessions end to end."""
    base: list[dict[str, Any]] = []
    if PUBLIC.exists():
        for line in PUBLIC.read_text().splitlines():
            base.extend(json.loads(line)["events"])
    else:
        kinds = ["click", "scroll", "page_view", "hover", "focus", "blur", "input_pause"]
        base = [{"type": k, "ts": float(i), "duration_ms": 1500.0} for i, k in enumerate(kinds)]
    out: list[dict[str, Any]] = []
    t = 1_760_000_000.0
    i = 0
    while len(out) < n:
        e = dict(base[i % len(base)])
        t += 0.8
        e["ts"] = t
        out.append(e)
        i += 1
    return out


def bench_fold(events: list[dict[str, Any]], repeat: int) -> float:
    best = float("inf")
    fold = engine.fold
    for _ in range(repeat):
        state = engine.new_state()
        t0 = time.perf_counter()
        for e in events:
            state = fold(state, e)
        best = min(best, time.perf_counter() - t0)
    return len(events) / best


def bench_cycle(events: list[dict[str, Any]], repeat: int) -> tuple[float, float, float]:
    """Per request: loads + fold(1) + verdict + dumps; also verdict alone and dumps+loads."""
    state = engine.new_state()
    for e in events[:1000]:
        state = engine.fold(state, e)
    data = engine.dumps(state)
    n = 20_000
    tail = events[1000 : 1000 + n]
    best_cycle = best_verdict = best_rt = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for e in tail:
            s = engine.loads(data)
            s = engine.fold(s, e)
            engine.verdict(s)
            engine.dumps(s)
        best_cycle = min(best_cycle, (time.perf_counter() - t0) / len(tail))
        t0 = time.perf_counter()
        for _ in range(n):
            engine.verdict(state)
        best_verdict = min(best_verdict, (time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for _ in range(n):
            engine.loads(engine.dumps(state))
        best_rt = min(best_rt, (time.perf_counter() - t0) / n)
    return best_cycle, best_verdict, best_rt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    events = workload(args.events)
    rate = bench_fold(events, args.repeat)
    cycle, verdict_s, rt = bench_cycle(events, args.repeat)
    state = engine.new_state()
    for e in events:
        state = engine.fold(state, e)
    size = len(engine.dumps(state).encode())
    print(f"rules: {len(engine.RULES)}  events: {len(events):,}  (best of {args.repeat})")
    print(f"fold: {rate:,.0f} events/s ({1e6 / rate:.2f} us/event)  target >= 200,000")
    print(f"verdict: {verdict_s * 1e6:.1f} us   dumps+loads: {rt * 1e6:.1f} us")
    print(f"per request (loads + fold 1 + verdict + dumps): {cycle * 1e6:.1f} us")
    print(f"state after {len(events):,} events: {size} bytes serialised (limit 1024)")
    print(f"final verdict: {engine.verdict(state)}")


if __name__ == "__main__":
    main()
