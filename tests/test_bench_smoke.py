"""CI proves the benchmark harness works; it does not time anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke_prints_every_ratio(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = out.read_text()
    for metric in (
        # both configurations against the bare app (issue 29)
        "POST events (5), as shipped: req/s / bare",
        "GET mood, as shipped: req/s / bare",
        "POST events (5), limits off: req/s / bare",
        "GET mood, limits off: req/s / bare",
        "p99 POST at 1,000 req/s open loop",
        "GET mood median latency",
        "POST req/s with",
        "server RSS after",
    ):
        assert metric in table
        assert metric in proc.stdout


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_generated_sessions_are_valid_and_the_offline_eval_takes_every_perturbation(
    tmp_path: Path,
) -> None:
    from sessionmood_client.types import MOODS, EventsRequest

    lines = _run("bench/gen_transitions.py", "--seed", "7", "--per", "1").splitlines()
    assert len(lines) == 17  # 5 recent moods x 4 earlier phases, less the 3 same-kind pairs
    for line in lines:
        session = json.loads(line)
        assert session["label"] in MOODS
        EventsRequest.model_validate({"events": session["events"]})
    path = tmp_path / "gen.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = _run(
        "bench/eval_offline.py",
        "--file",
        str(path),
        "--half",
        "b",
        "--time-scale",
        "1.1",
        "--duration-scale",
        "0.9",
        "--drop-one",
        "3",
        "--shuffle-within",
        "5",
        "--strip",
    )
    assert out.splitlines()[-1].startswith("macro_f1=") and out.rstrip().endswith("n=8")


def test_engine_bench_compares_against_a_revision() -> None:
    out = _run("bench/engine_bench.py", "--events", "3000", "--repeat", "1", "--against", "HEAD")
    assert "this/ref" in out and "per request (us)" in out


@pytest.mark.slow
def test_tarpit_bench_smoke_prints_both_delays() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/tarpit.py", "--sessions", "1", "--rounds", "1", "--give-up", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "B's delivery delay, A quiet:" in proc.stdout
    assert "B's delivery delay, A tarpit:" in proc.stdout
