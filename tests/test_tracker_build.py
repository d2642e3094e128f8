"""The shipped tracker is what its source builds to, fits its size budget, and
its TypeScript declarations type-check a page's typical use.

``static/tracker.js`` is committed (the one-tag install needs no build) and
built from ``tracker/src`` by ``make tracker`` with the esbuild and terser
versions pinned in ``tracker/package-lock.json`` (installed by ``make test``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TRACKER = ROOT / "tracker"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (TRACKER / "node_modules" / "esbuild").is_dir():
        pytest.fail("the tracker's build tools are missing: run `make tracker` (needs Node.js)")
    return found


def test_static_tracker_is_what_the_source_builds_to(node: str) -> None:
    done = run(node, "tracker/build.mjs", "--check")
    assert done.returncode == 0, done.stderr + done.stdout


def test_the_check_fails_on_a_stale_copy(node: str, tmp_path: Path) -> None:
    shipped = (ROOT / "static" / "tracker.js").read_text()
    stale = tmp_path / "tracker.js"
    stale.write_text(shipped.replace("rage_click", "rage_clack"))
    done = run(node, "tracker/build.mjs", "--check", str(stale))
    assert done.returncode == 1 and "is stale: run `make tracker`" in done.stderr


def test_the_built_tracker_fits_its_size_budget() -> None:
    done = run(sys.executable, "bench/tracker_size.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "within budget" in done.stdout


def test_the_type_declarations_check_against_a_pages_use(node: str) -> None:
    done = run(node, "tracker/node_modules/typescript/bin/tsc", "-p", "tracker/tsconfig.json")
    assert done.returncode == 0, done.stdout + done.stderr


def test_internal_names_are_mangled_and_public_ones_are_not() -> None:
    shipped = (ROOT / "static" / "tracker.js").read_text()
    for public in ("SessionMood", "onMood", "sessionId", "flush", "rageClicks", "batch_id", "dead"):
        assert public in shipped, public
    for internal in ("scrollInputAt", "moodCallbacks", "pressedAt", "answered"):
        assert internal not in shipped, internal
