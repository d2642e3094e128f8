"""Replay labeled sessions through the engine in-process and score the verdicts.

Usage::

    .venv/bin/python bench/eval_offline.py [--file PATH] [--misses] [--shuffle-within S]
        [--time-scale F] [--duration-scale F] [--drop-one S] [--strip] [--half a|b]
        [--engine-at REV]

Prints the confusion matrix, per-mood precision/recall/F1, macro-F1 and the
reliability table (accuracy per confidence band). ``--shuffle-within`` folds
each session's events in a scrambled order (as if delivered late / out of
order) to check that the verdict does not depend on arrival order;
``--time-scale F`` stretches every session's pace by F, to see how much margin
the pace-based rules have; ``--duration-scale F`` scales every ``duration_ms``
(margin of the hesitation and idle thresholds); ``--drop-one S`` drops one
random event from each session of four or more (a lost event); ``--strip``
keeps only ``type`` and ``ts`` (a client that sends no optional field);
``--half a`` / ``--half b`` keeps every other session (even / odd lines), to
check on one half what was looked at on the other. ``--engine-at REV`` scores
the engine as of a git revision instead (before/after figures from one tool).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sessionmood_client.types import MOODS
from sessionmood_server import engine  # pure: needs only pydantic and orjson

DEFAULT_FILE = "/work/shared/scenarios/public.jsonl"
BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.0001))


def run(
    path: str,
    shuffle_seed: int | None,
    time_scale: float = 1.0,
    duration_scale: float = 1.0,
    drop_seed: int | None = None,
    half: str | None = None,
    strip: bool = False,
) -> list[tuple[str, str, engine.Verdict, str]]:
    out = []
    rng = random.Random(shuffle_seed)
    drop_rng = random.Random(drop_seed)
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if half is not None:
        lines = lines[0 if half == "a" else 1 :: 2]
    for line in lines:
        s = json.loads(line)
        events = list(s["events"])
        if time_scale != 1.0:
            t0 = float(events[0]["ts"])
            events = [dict(e, ts=t0 + (float(e["ts"]) - t0) * time_scale) for e in events]
        if duration_scale != 1.0:
            events = [
                dict(e, duration_ms=e["duration_ms"] * duration_scale) if "duration_ms" in e else e
                for e in events
            ]
        if strip:
            events = [{"type": e["type"], "ts": e["ts"]} for e in events]
        if drop_seed is not None and len(events) >= 4:
            del events[drop_rng.randrange(len(events))]
        if shuffle_seed is not None:
            rng.shuffle(events)
        st = engine.new_state()
        for e in events:
            st = engine.fold(st, e)
        out.append((s["id"], s["label"], engine.verdict(st), _sketch(s["events"])))
    return out


def _sketch(events: list[dict[str, object]]) -> str:
    t0 = float(events[0]["ts"])  # type: ignore[arg-type]
    parts = []
    for e in events:
        extra = e.get("duration_ms", e.get("speed", ""))
        parts.append(f"{e['type']}@{float(e['ts']) - t0:.1f}{f'[{extra}]' if extra else ''}")  # type: ignore[arg-type]
    return " ".join(parts)


def report(rows: list[tuple[str, str, engine.Verdict, str]], show_misses: bool) -> float:
    moods: list[str] = list(MOODS)
    cm = {(a, p): 0 for a in moods for p in moods}
    for _, label, v, _ in rows:
        cm[(label, v.mood)] += 1
    w = 11
    print("confusion (rows = label, cols = predicted)")
    print(" " * w + "".join(f"{m[:9]:>10}" for m in moods))
    for a in moods:
        print(f"{a:<{w}}" + "".join(f"{cm[(a, p)]:>10}" for p in moods))
    print()
    f1s = []
    print(f"{'mood':<{w}}{'prec':>8}{'recall':>8}{'f1':>8}{'n':>6}")
    for m in moods:
        tp = cm[(m, m)]
        fp = sum(cm[(a, m)] for a in moods if a != m)
        fn = sum(cm[(m, p)] for p in moods if p != m)
        n = tp + fn
        if n == 0 and fp == 0:
            continue
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / n if n else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        print(f"{m:<{w}}{prec:>8.3f}{rec:>8.3f}{f1:>8.3f}{n:>6}")
    macro = sum(f1s) / len(f1s)
    acc = sum(cm[(m, m)] for m in moods) / len(rows)
    print()
    print("reliability (accuracy per confidence band)")
    for lo, hi in BANDS:
        band = [r for r in rows if lo <= r[2].confidence < hi]
        ok = sum(1 for r in band if r[1] == r[2].mood)
        accs = f"{ok / len(band):.3f}" if band else "  -  "
        print(
            f"  [{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}  n={len(band):>4}  acc={accs}"
        )
    if show_misses:
        print()
        for sid, label, v, sk in rows:
            if label != v.mood:
                print(f"MISS {sid} {label} -> {v.mood} {v.confidence} {v.signals}\n     {sk}")
    print()
    print(f"macro_f1={macro:.4f} accuracy={acc:.4f} n={len(rows)}")
    return macro


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=DEFAULT_FILE)
    ap.add_argument("--misses", action="store_true", help="list misclassified sessions")
    ap.add_argument("--shuffle-within", type=int, default=None, metavar="SEED")
    ap.add_argument(
        "--time-scale", type=float, default=1.0, help="stretch every session's pace by this factor"
    )
    ap.add_argument(
        "--duration-scale", type=float, default=1.0, help="scale every duration_ms by this factor"
    )
    ap.add_argument(
        "--drop-one", type=int, default=None, metavar="SEED", help="drop one event per session"
    )
    ap.add_argument("--strip", action="store_true", help="drop every optional field")
    ap.add_argument("--half", choices=["a", "b"], help="every other session: even (a) or odd (b)")
    ap.add_argument("--engine-at", metavar="REV", help="score the engine of this git revision")
    args = ap.parse_args()
    if args.engine_at:
        # bench/ is on sys.path when this runs as a script.
        from engine_bench import load_engine_at  # type: ignore[import-not-found,unused-ignore]

        global engine
        engine = load_engine_at(args.engine_at)
    rows = run(
        args.file,
        args.shuffle_within,
        args.time_scale,
        args.duration_scale,
        args.drop_one,
        args.half,
        args.strip,
    )
    report(rows, args.misses)


if __name__ == "__main__":
    main()
