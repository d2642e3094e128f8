"""CI proves the benchmark harness works; it does not time anything."""

from __future__ import annotations

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
        "POST events (5) req/s: SessionMood / bare",
        "GET mood req/s: SessionMood / bare",
        "p99 POST at 1,000 req/s open loop",
        "GET mood median latency",
        "POST req/s with",
        "server RSS after",
    ):
        assert metric in table
        assert metric in proc.stdout


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
