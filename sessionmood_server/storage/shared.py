"""Decisions both backends make, written once: they differ only in their SQL.

What a batch id seen before means, when a batch may open a session, how a key
row becomes a ``KeyRecord``, which keys are cached and for how long, how
waiters learn of commits, what a finished delivery attempt sets, the default
time window, how analytics rows become results, and where migrations live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.resources
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from sessionmood_client.types import MOODS, MoodLabel
from sessionmood_server.limits import Admission
from sessionmood_server.records import (
    AppendResult,
    ElementCounts,
    HoldoutSetting,
    JourneyCounts,
    KeyRecord,
    MoodCounts,
    Quota,
    UpliftCounts,
)
from sessionmood_server.storage.protocols import ChangeListener

DEMO_CUSTOMER = "SessionMood demo"

# Everything stored about a session besides its row in `sessions` (erasure,
# purge); each backend adds where it keeps the events.
SESSION_TABLES = (
    "feedback",
    "batches",
    "page_moods",
    "element_sessions",
    "journey_steps",
    "exposures",
    "conversions",
    "mood_changes",
    "webhook_deliveries",
    # Erased too (the id may be a user id); the month's usage count is kept in
    # usage_months, so quotas stay exact.
    "session_months",
)

# A key row: the key's columns, then its tenant's (api_keys k JOIN tenants t),
# named as ``KeyRecord``'s fields.
KEY_COLUMNS = (
    "k.key_hash, k.prefix, k.tenant_id, k.kind, t.plan, t.customer, t.email, "
    "k.created_at, k.revoked_at, k.allowed_origins"
)
SELECT_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"

# Reads without ``since``/``until`` cover all time.
FOREVER = 1e18

# A row as both drivers hand it out: read by column name (``sqlite3.Row``,
# asyncpg's ``Record``), never by position.
Row = Any
R = TypeVar("R")


# A journey step, the same SQL on both backends: ``{p}`` is the driver's
# parameter mark (SQLite's ``?N``, asyncpg's ``$N``). Parameters: 1 url,
# 2 mood, 3 frustrated (0/1), 4 now, 5 tenant, 6 session, 7 the most rows.
# The page the session was on: its latest step takes the mood it is in now.
JOURNEY_CONTINUE_SQL = (
    "UPDATE journey_steps SET mood = {p}2, updated_at = {p}4, "
    "frustrated = CASE WHEN frustrated > {p}3 THEN frustrated ELSE {p}3 END "
    "WHERE tenant_id = {p}5 AND session_id = {p}6 AND url = {p}1 AND step = "
    "(SELECT max(step) FROM journey_steps WHERE tenant_id = {p}5 AND session_id = {p}6)"
)
# A new page: the next step, while the session has fewer than {p}7. Its step
# number is read in the same statement, under the batch's session lock.
JOURNEY_STEP_SQL = (
    "INSERT INTO journey_steps (tenant_id, session_id, step, url, mood, frustrated, "
    "started_at, updated_at) SELECT CAST({p}5 AS BIGINT), CAST({p}6 AS TEXT), m.n + 1, "
    "CAST({p}1 AS TEXT), CAST({p}2 AS TEXT), CAST({p}3 AS INT), "
    "coalesce(m.started, CAST({p}4 AS DOUBLE PRECISION)), CAST({p}4 AS DOUBLE PRECISION) "
    "FROM (SELECT coalesce(max(step), 0) AS n, min(started_at) AS started "
    "FROM journey_steps WHERE tenant_id = {p}5 AND session_id = {p}6) m WHERE m.n < {p}7"
)


def key_record(row: Row, origins: Iterable[str]) -> KeyRecord:
    """A ``KeyRecord`` from a ``KEY_COLUMNS`` row; ``origins`` is its last column
    as the backend decodes it."""
    return KeyRecord(
        key_hash=row["key_hash"],
        prefix=row["prefix"],
        tenant_id=row["tenant_id"],
        kind=row["kind"],
        plan=row["plan"],
        customer=row["customer"],
        email=row["email"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        allowed_origins=tuple(origins),
    )


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def record_from(cls: type[R], row: Row) -> R:
    """A record (a dataclass) from a row whose columns are named as its fields."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return cls(**{name: row[name] for name in names})


def window(since: float | None, until: float | None) -> tuple[float, float]:
    """A ``since``/``until`` pair with its defaults: all time."""
    return since or 0.0, until or FOREVER


def seen_batch(
    session_id: str,
    fingerprint: str | None,
    seen_session: str,
    seen_response: str,
    seen_fingerprint: str | None,
    loads: Callable[[str], Any],
) -> AppendResult:
    """What a batch id already stored (for ``seen_session``) means for this batch:
    another session's id, the same id with other events, or a replay."""
    if seen_session != session_id:
        return AppendResult("conflict")
    if fingerprint and seen_fingerprint and seen_fingerprint != fingerprint:
        return AppendResult("mismatch")
    return AppendResult("replayed", loads(seen_response))


def refuse_batch(
    stored_events: int | None,
    batch_events: int,
    max_events: int,
    admission: Admission | None,
) -> AppendResult | None:
    """A refusal before anything is written (``stored_events`` None: a new
    session), or None: the session's cap, then the new-session limits (asked
    only for a new session, inside the caller's transaction)."""
    if max_events and (stored_events or 0) + batch_events > max_events:
        return AppendResult("full")
    if stored_events is None and admission is not None:
        wait = admission.wait()
        if wait:
            return AppendResult("limited", retry_after=wait)
    return None


def month_full(quota: Quota, used: int) -> bool:
    """Whether the plan refuses one more session this month."""
    return quota.blocks and used >= quota.limit


def delivery_update(
    delivered: bool, next_attempt_at: float | None, now: float
) -> tuple[str, float | None, float | None]:
    """(status, next attempt, delivered at) after one attempt: delivered, due
    again at ``next_attempt_at``, or (None) given up."""
    status = "delivered" if delivered else "pending" if next_attempt_at else "failed"
    return status, None if delivered else next_attempt_at, now if delivered else None


def mood_counts(rows: Iterable[Row]) -> MoodCounts:
    """``MoodCounts`` from (mood, sessions, with_feedback) rows."""
    by_mood = dict.fromkeys(MOODS, 0)
    total = feedback = 0
    for row in rows:
        n = row["sessions"]
        by_mood[row["mood"]] = n
        total += n
        feedback += row["with_feedback"] or 0
    return MoodCounts(total, feedback, by_mood)


def _busiest_first(page: tuple[str, dict[MoodLabel, int]]) -> tuple[int, str]:
    url, moods = page
    return -sum(moods.values()), url


def busiest_first(pages: dict[str, dict[MoodLabel, int]]) -> dict[str, dict[MoodLabel, int]]:
    """``page_moods``' order: most sessions first, ties by URL (code point order)."""
    return dict(sorted(pages.items(), key=_busiest_first))


def page_moods(rows: Iterable[Row]) -> dict[str, dict[MoodLabel, int]]:
    """``page_moods``' answer from (url, mood, sessions) rows."""
    out: dict[str, dict[MoodLabel, int]] = {}
    for row in rows:
        out.setdefault(row["url"], {})[row["mood"]] = row["sessions"]
    return busiest_first(out)


# GET /v1/analytics/elements: per (page, element), most struggling sessions
# first. Parameters: 1 tenant, 2-3 the window (updated_at), 4 page or NULL,
# 5 limit. ``{c}`` orders text by code point on both backends.
ELEMENT_COUNTS_SQL = (
    "SELECT page, target, count(*) AS sessions, sum(clicks) AS clicks, "
    "sum(rage_clicks) AS rage_clicks, sum(dead_clicks) AS dead_clicks, "
    "sum(error_clicks) AS error_clicks, sum(hesitations) AS hesitations, "
    "sum(frustrated) AS frustrated_sessions FROM element_sessions "
    "WHERE tenant_id = {p}1 AND updated_at >= {p}2 AND updated_at < {p}3 "
    "AND (CAST({p}4 AS TEXT) IS NULL OR page = {p}4) GROUP BY page, target "
    "ORDER BY frustrated_sessions DESC, sessions DESC, page{c}, target{c} LIMIT {p}5"
)


def element_counts(rows: Iterable[Row]) -> list[ElementCounts]:
    # (sum of an INT column is a bigint on PostgreSQL: ints on both backends.)
    return [record_from(ElementCounts, row) for row in rows]


def journeys_sql(steps: int, p: str) -> str:
    """Sessions whose journey started in the window ({p}1 tenant, {p}2-{p}3),
    grouped by their first ``steps`` pages, the mood each was left in and the
    first step they were frustrated on: one row per combination, ``n`` sessions."""
    urls = [f"max(CASE WHEN step = {i} THEN url END) AS u{i}" for i in range(1, steps + 1)]
    moods = [f"max(CASE WHEN step = {i} THEN mood END) AS m{i}" for i in range(1, steps + 1)]
    numbers = range(1, steps + 1)
    keys = ", ".join([f"u{i}" for i in numbers] + [f"m{i}" for i in numbers])
    return (
        f"WITH s AS (SELECT session_id, {', '.join(urls + moods)}, "
        "min(CASE WHEN frustrated = 1 THEN step END) AS ff FROM journey_steps "
        f"WHERE tenant_id = {p}1 AND started_at >= {p}2 AND started_at < {p}3 "
        f"AND step <= {steps} GROUP BY session_id) "
        f"SELECT {keys}, ff, count(*) AS n FROM s GROUP BY {keys}, ff"
    )


def journeys(rows: Iterable[Row], steps: int, limit: int) -> list[JourneyCounts]:
    """``journeys_sql``'s rows as paths: the ``limit`` with the most sessions,
    ties by path (code point order)."""
    paths: dict[tuple[str, ...], JourneyCounts] = {}
    for row in rows:
        path = tuple(u for i in range(1, steps + 1) if (u := row[f"u{i}"]) is not None)
        if not path:
            continue
        found = paths.get(path)
        if found is None:
            found = paths[path] = JourneyCounts(path, moods=[{} for _ in path])
        n = int(row["n"])
        found.sessions += n
        for i, step in enumerate(found.moods, start=1):
            mood = row[f"m{i}"]
            step[mood] = step.get(mood, 0) + n
        ff = row["ff"]
        if ff is not None:
            found.first_frustrated[ff] = found.first_frustrated.get(ff, 0) + n
    ranked = sorted(paths.values(), key=lambda j: (-j.sessions, j.path))
    return ranked[:limit] if limit else ranked


# GET /v1/analytics/uplift: per (mood, action) and group, the sessions first
# suggested the action (or held back from it) in the window and how many of
# them converted under the name; then the same per group over sessions exposed
# to any action (mood and action NULL). Parameters: 1 tenant, 2-3 the window
# (first exposure), 4 the conversion name (NULL: any; a session converts once).
UPLIFT_SQL = (
    "WITH e AS (SELECT session_id, mood, action, holdout FROM exposures "
    "WHERE tenant_id = {p}1 AND first_at >= {p}2 AND first_at < {p}3), "
    "c AS (SELECT session_id, sum(value) AS value FROM conversions WHERE tenant_id = {p}1 "
    "AND (CAST({p}4 AS TEXT) IS NULL OR name = {p}4) GROUP BY session_id) "
    "SELECT e.mood, e.action, e.holdout, count(*) AS sessions, "
    "count(c.session_id) AS conversions, coalesce(sum(c.value), 0) AS value "
    "FROM e LEFT JOIN c ON c.session_id = e.session_id GROUP BY e.mood, e.action, e.holdout "
    "UNION ALL SELECT NULL, NULL, a.holdout, count(*), count(c.session_id), "
    "coalesce(sum(c.value), 0) FROM (SELECT DISTINCT session_id, holdout FROM e) a "
    "LEFT JOIN c ON c.session_id = a.session_id GROUP BY a.holdout"
)
# A session holds at most this many conversion names: a publishable key is
# public, and each name is a row.
MAX_CONVERSION_NAMES = 32


def uplift_counts(rows: Iterable[Row]) -> list[UpliftCounts]:
    return [
        UpliftCounts(
            mood=row["mood"],
            action=row["action"],
            holdout=bool(row["holdout"]),
            sessions=int(row["sessions"]),
            conversions=int(row["conversions"]),
            value=float(row["value"]),
        )
        for row in rows
    ]


def holdout_setting(row: Row | None) -> HoldoutSetting:
    if row is None:
        return HoldoutSetting()
    return HoldoutSetting(row["holdout_share"], row["holdout_salt"], row["holdout_updated_at"])


class KeyCache:
    """Found keys by hash, because auth runs on every request.

    Unknown keys are never cached, so random keys cannot fill memory; past
    ``MAX_KEYS`` entries the cache starts over. ``generation`` counts
    invalidations: a look-up that read the database before one must not cache
    what it read (``put(..., generation)`` ignores it).
    """

    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._keys: dict[str, tuple[KeyRecord, float]] = {}  # hash -> (record, monotonic)
        self.generation = 0

    def get(self, key_hash: str, max_age: float | None = None) -> KeyRecord | None:
        """The cached record, if cached less than ``max_age`` seconds ago (None: ever)."""
        hit = self._keys.get(key_hash)
        if hit is None:
            return None
        record, fetched = hit
        if max_age is not None and time.monotonic() - fetched >= max_age:
            return None
        return record

    def put(self, key_hash: str, record: KeyRecord, generation: int) -> None:
        if generation != self.generation:
            return  # an invalidation raced the read
        if len(self._keys) >= self.MAX_KEYS:
            self._keys.clear()
        self._keys[key_hash] = (record, time.monotonic())

    def invalidate(self) -> None:
        self.generation += 1
        self._keys.clear()


class ChangeSignal:
    """How a backend tells what it committed: listeners hear which tenants'
    moods changed and when keys may have, and ``wait`` returns at the next
    change (or after its timeout)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._listeners: list[ChangeListener] = []
        self.closing = False

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def wake_waiters(self) -> None:
        """Wake everyone in ``wait`` (and nobody else)."""
        signal, self._event = self._event, asyncio.Event()
        signal.set()

    def moods_changed(self, tenants: Collection[int] | None) -> None:
        """Mood changes of ``tenants`` (None: maybe any) were committed."""
        self.wake_waiters()
        for listener in self._listeners:
            listener.moods_changed(tenants)

    def keys_changed(self) -> None:
        for listener in self._listeners:
            listener.keys_changed()

    def close(self) -> None:
        """The storage is closing: every ``wait`` returns False from now on."""
        self.closing = True
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Until a change may have been committed, or ``timeout`` seconds; False
        once the storage is closing, so live streams end."""
        if self.closing:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return not self.closing


def load_migrations(package: str) -> list[tuple[int, str]]:
    """The schema migrations of a backend package: ``migrations/NNN.sql`` files,
    as (version, whole script) in version order. Each script runs whole, in
    one transaction: statements may hold ``;`` (a trigger's body, say)."""
    found = []
    for entry in importlib.resources.files(package).joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.removesuffix(".sql")), entry.read_text(encoding="utf-8")))
    return sorted(found)


class Notifications:
    """The listener side of ``Storage``, for a backend that keeps its key cache
    in ``_keys`` and tells what it committed through ``_signal``."""

    _keys: KeyCache
    _signal: ChangeSignal

    def add_listener(self, listener: ChangeListener) -> None:
        self._signal.add_listener(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self._signal.remove_listener(listener)

    async def wait_for_mood_change(self, timeout: float) -> bool:
        # What this process cannot hear of (another process writing the same
        # SQLite file, a PostgreSQL listener that is down) is found anyway: the
        # timeout doubles as the polling interval.
        return await self._signal.wait(timeout)

    def _invalidate_keys(self) -> None:
        """Forget cached keys (a key was written, here or elsewhere) and say so:
        live streams re-check theirs before sending anything more."""
        self._keys.invalidate()
        self._signal.keys_changed()
