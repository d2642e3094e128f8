"""In-process cost of the mood engine on one core.

Usage::

    .venv/bin/python bench/engine_bench.py [--events N] [--repeat R] [--against REV]

Prints the fold rate (events/s, best of R runs), the cost of the
``loads -> fold one event -> verdict -> dumps`` cycle the server runs per
request, and the serialised state size after a long session. The event mix is
the labeled public sessions replayed back to back (synthetic if that file is
missing), so every rule and field filter is exercised.

``--against REV`` also times the engine as of a git revision (e.g. ``main``)
in the same run, rounds interleaved, and prints this/ref ratios: on a shared
machine only ratios measured side by side mean anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
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


def load_engine_at(rev: str) -> ModuleType:
    """``sessionmood_server/engine.py`` as of git revision ``rev``, as its own module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:sessionmood_server/engine.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Older revisions import the wire models from their former private module.
    source = source.replace("sessionmood_client._models", "sessionmood_client.types")
    tmp = Path(tempfile.mkdtemp()) / "engine_ref.py"
    tmp.write_text(source)
    spec = importlib.util.spec_from_file_location("engine_ref", tmp)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def time_fold(eng: ModuleType, events: list[dict[str, Any]]) -> float:
    """Seconds to fold ``events`` into a fresh state."""
    fold = eng.fold
    state = eng.new_state()
    t0 = time.perf_counter()
    for e in events:
        state = fold(state, e)
    return time.perf_counter() - t0


def time_cycle(eng: ModuleType, events: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Per request: loads + fold(1) + verdict + dumps; also verdict alone and dumps+loads."""
    state = eng.new_state()
    for e in events[:1000]:
        state = eng.fold(state, e)
    data = eng.dumps(state)
    n = 20_000
    tail = events[1000 : 1000 + n]
    t0 = time.perf_counter()
    for e in tail:
        s = eng.loads(data)
        s = eng.fold(s, e)
        eng.verdict(s)
        eng.dumps(s)
    cycle = (time.perf_counter() - t0) / len(tail)
    t0 = time.perf_counter()
    for _ in range(n):
        eng.verdict(state)
    verdict_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        eng.loads(eng.dumps(state))
    rt = (time.perf_counter() - t0) / n
    return cycle, verdict_s, rt


def measure(
    engines: list[ModuleType], events: list[dict[str, Any]], repeat: int
) -> list[dict[str, float]]:
    """Best of ``repeat`` per engine, rounds interleaved so that a busy machine
    slows every engine alike."""
    best = [
        {"fold_s": math.inf, "cycle": math.inf, "verdict": math.inf, "rt": math.inf}
        for _ in engines
    ]
    for _ in range(repeat):
        for b, eng in zip(best, engines, strict=True):
            b["fold_s"] = min(b["fold_s"], time_fold(eng, events))
            cycle, verdict_s, rt = time_cycle(eng, events)
            b["cycle"] = min(b["cycle"], cycle)
            b["verdict"] = min(b["verdict"], verdict_s)
            b["rt"] = min(b["rt"], rt)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--against",
        metavar="REV",
        help="also time the engine of this git revision, in interleaved rounds, and print ratios",
    )
    args = ap.parse_args()
    events = workload(args.events)
    engines: list[ModuleType] = [engine]
    if args.against:
        engines.append(load_engine_at(args.against))
    results = measure(engines, events, args.repeat)
    ours = results[0]
    rate = len(events) / ours["fold_s"]
    state = engine.new_state()
    for e in events:
        state = engine.fold(state, e)
    size = len(engine.dumps(state).encode())
    print(f"rules: {len(engine.RULES)}  events: {len(events):,}  (best of {args.repeat})")
    print(f"fold: {rate:,.0f} events/s ({1e6 / rate:.2f} us/event)  target >= 200,000")
    print(f"verdict: {ours['verdict'] * 1e6:.1f} us   dumps+loads: {ours['rt'] * 1e6:.1f} us")
    print(f"per request (loads + fold 1 + verdict + dumps): {ours['cycle'] * 1e6:.1f} us")
    print(f"state after {len(events):,} events: {size} bytes serialised (limit 1024)")
    print(f"final verdict: {engine.verdict(state)}")
    if args.against:
        ref = results[1]
        old = engines[1]
        ref_state = old.new_state()
        for e in events:
            ref_state = old.fold(ref_state, e)
        ref_size = len(old.dumps(ref_state).encode())
        print(f"against {args.against} ({len(old.RULES)} rules), same run, interleaved rounds:")
        print("  measure                  this      ref     this/ref")
        rows = [
            ("fold (us/event)", ours["fold_s"] / len(events), ref["fold_s"] / len(events)),
            ("verdict (us)", ours["verdict"], ref["verdict"]),
            ("dumps+loads (us)", ours["rt"], ref["rt"]),
            ("per request (us)", ours["cycle"], ref["cycle"]),
        ]
        for name, a, b in rows:
            print(f"  {name:<22}{a * 1e6:>7.2f}  {b * 1e6:>7.2f}  {a / b:>8.2f}")
        print(f"  {'state (bytes)':<22}{size:>7}  {ref_size:>7}  {size / ref_size:>8.2f}")


if __name__ == "__main__":
    main()
