"""Retention: each plan's window, via the storage, the CLI and the server's own task."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionmood_server.app import create_app
from sessionmood_server.cli import main
from sessionmood_server.keys import new_key
from sessionmood_server.records import Batch, Conversion, Feedback, Quota
from sessionmood_server.services.retention import DAY_S, cutoffs, purge_expired
from sessionmood_server.settings import Settings
from sessionmood_server.storage import Storage, open_storage
from tests import test_storage

T0 = 1_790_000_000.0
Q = Quota("2026-09", 1_000_000, False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The storage contract's fixture: every retention test runs on every backend.
store = test_storage.store


async def _tenant_with_session(store: Storage, plan: str, sid: str, at: float) -> int:
    rec = await store.create_tenant_key(plan, None, plan, new_key(), at)  # type: ignore[arg-type]
    ev: list[dict[str, Any]] = [{"type": "page_view", "url": "/a", "ts": at}]
    ev += [{"type": t, "ts": at + 1, "target": "Pay"} for t in ("rage_click", "error", "error")]
    await store.append_events(Batch(rec.tenant_id, sid, ev, "b-" + sid, Q, at))
    await store.add_feedback(Feedback(rec.tenant_id, sid, "show_live_chat", True, None, at))
    conversion = Conversion(rec.tenant_id, sid, "purchase", 10.0, at)
    assert (await store.add_conversion(conversion)).counted
    return rec.tenant_id


def test_cutoffs_follow_the_plans() -> None:
    c = cutoffs(T0)
    assert T0 - c["starter"] == 7 * DAY_S
    assert T0 - c["growth"] == 30 * DAY_S
    assert T0 - c["pro"] == 90 * DAY_S


@pytest.mark.anyio
async def test_each_plan_expires_on_its_own_window(store: Storage) -> None:
    tenants = {
        p: await _tenant_with_session(store, p, f"{p}-s", T0) for p in ("starter", "growth", "pro")
    }
    usage_before = {p: await store.month_usage(t, "2026-09") for p, t in tenants.items()}

    async def alive() -> set[str]:
        return {p for p, t in tenants.items() if await store.get_session(t, f"{p}-s")}

    assert await purge_expired(store, T0 + 6.9 * DAY_S) == 0
    assert await alive() == {"starter", "growth", "pro"}
    assert await purge_expired(store, T0 + 7.1 * DAY_S) == 1
    assert await alive() == {"growth", "pro"}
    assert await purge_expired(store, T0 + 30.1 * DAY_S) == 1
    assert await alive() == {"pro"}
    assert await purge_expired(store, T0 + 90.1 * DAY_S) == 1
    assert await alive() == set()
    for p, t in tenants.items():
        # everything about the session is gone...
        assert await store.export_events(t, f"{p}-s") is None
        counts = await store.mood_counts(t)
        assert counts.total_sessions == 0 and counts.feedback_count == 0
        assert await store.page_moods(t, None, None) == {}
        assert await store.mood_changes(t, 0) == []
        assert await store.action_counts(t, None, None) == []
        # (elements, journeys, exposures and conversions too: issues 26 and 27)
        assert await store.element_counts(t, None, None, None, 50) == []
        assert await store.journeys(t, None, None, 4, 0) == []
        assert await store.uplift_counts(t, None, None, None) == []
        assert await store.conversions_of(t, f"{p}-s") == []
        # ...but the month's usage is history: quotas stay exact
        assert await store.month_usage(t, "2026-09") == usage_before[p]


@pytest.mark.anyio
async def test_activity_keeps_a_session_alive(store: Storage) -> None:
    t = await _tenant_with_session(store, "starter", "s", T0)
    later = T0 + 6 * DAY_S
    await store.append_events(Batch(t, "s", [{"type": "click", "ts": later}], None, Q, later))
    assert await purge_expired(store, T0 + 8 * DAY_S) == 0
    assert await purge_expired(store, later + 7.1 * DAY_S) == 1


@pytest.mark.anyio
async def test_purge_works_in_chunks(store: Storage) -> None:
    rec = await store.create_tenant_key("c", None, "starter", new_key(), T0)
    for i in range(25):
        await store.append_events(
            Batch(rec.tenant_id, f"s{i}", [{"type": "click", "ts": T0}], None, Q, T0)
        )
    assert await purge_expired(store, T0 + 8 * DAY_S, chunk=10) == 25
    assert (await store.mood_counts(rec.tenant_id)).total_sessions == 0


def test_cli_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        s = open_storage(url)
        await s.open()
        await _tenant_with_session(s, "starter", "old", T0)
        await s.close()

    asyncio.run(seed())
    assert main(["--database-url", url, "purge", "--as-of", str(T0 + DAY_S)]) == 0
    assert "purged 0" in capsys.readouterr().out
    assert main(["--database-url", url, "purge", "--as-of", str(T0 + 8 * DAY_S)]) == 0
    assert "purged 1" in capsys.readouterr().out


def test_server_runs_the_purge_periodically(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'srv.db'}", purge_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        store = client.app.state.api.storage  # type: ignore[attr-defined]
        old = time.time() - 8 * DAY_S
        tenant = client.portal.call(_tenant_with_session, store, "starter", "stale", old)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if client.portal.call(store.get_session, tenant, "stale") is None:  # type: ignore[union-attr]
                break
            time.sleep(0.05)
        assert client.portal.call(store.get_session, tenant, "stale") is None  # type: ignore[union-attr]
