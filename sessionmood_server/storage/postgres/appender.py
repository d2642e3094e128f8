"""Group commit for the PostgreSQL fast path: the cached batches of concurrent
requests go to the database together, in one call of ``sm_append_cached``
(``migrations/009.sql``, 010's since): one round trip, one transaction, one commit flush
for the whole group.

At most ``IN_FLIGHT`` groups are at the database at once; whatever arrives
meanwhile waits and forms the next groups, so groups grow with the load and
a lone request goes at once. A group takes a share of the queue, not all of
it (``GROUP_SHARE``), so the replica answers one group while the database
works on the next. Each caller is answered only after the commit
that holds its batch (a 200 still means stored). If a group fails as a whole
(a deadlock victim, a lost connection), each of its batches is sent again on
its own, so only a batch that fails alone fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sessionmood_server.scoring import ElementTally, EventColumns, event_columns

log = logging.getLogger("sessionmood.storage")

IN_FLIGHT = 4  # groups at the database at once, per replica
MAX_GROUP = 256  # batches per call
# A group takes at most this many batches, or its share of the queue over the
# IN_FLIGHT slots when the queue is longer. Without it the first group took
# everything queued: the replica then waited for the database while the
# database folded one long group on one core, and then the other way round.
# Groups of 16 overlap the two (one replica, 64 connections, bench/replicas.py:
# 1,994 -> 2,875 batches/s on the same machine); under a deeper queue groups
# grow again, so the commit is still shared by many.
GROUP_SHARE = 16


class BatchRow(NamedTuple):
    """One batch's own parameters of ``sm_append_cached``, in the function's
    order (``p_tenant`` to ``p_now``): a value per batch of the group."""

    tenant_id: int
    session_id: str
    version: int  # of the row the batch was folded on
    batch_lock: int | None
    session_lock: int
    batch_id: str | None
    fingerprint: str | None
    response: str | None  # stored for replays when the batch has an id
    month: str
    state: str
    mood: str
    confidence: float
    action: str
    total: int
    last_url: str | None
    now: float


class Folded(NamedTuple):
    """One batch folded on a cached state, everything ``sm_append_cached`` writes."""

    row: BatchRow
    events: list[dict[str, Any]]  # the batch's, validated; in columns once grouped
    first_seq: int  # the number of the batch's first event in its session
    pages: Mapping[str, str]  # url -> mood
    signals: list[str]
    elements: Mapping[tuple[str, str], ElementTally]  # (page, target) -> its counts


class GroupRows(NamedTuple):
    """The rest of ``sm_append_cached``'s parameters, in its order (``p_ev_batch``
    to ``p_el_ts``): the events, pages, signals and element counts of every
    batch of the group, each with its batch's place in the group (1-based)."""

    ev_batch: list[int]
    seqs: list[int]
    types: list[str]
    ts: list[float]
    fields: list[str | None]
    page_batch: list[int]
    urls: list[str]
    moods: list[str]
    signal_batch: list[int]
    signals: list[str]
    el_batch: list[int]
    el_page: list[str]
    el_target: list[str]
    el_clicks: list[int]
    el_rage: list[int]
    el_dead: list[int]
    el_error: list[int]
    el_hesitations: list[int]
    el_ts: list[float]


# The array type of each parameter, by its field's name. Each goes as one text
# array literal, cast to its array type by the database: asyncpg's array codec
# checks every element's type in Python (36 us of replica CPU per batch in
# groups of 16; literals: 17 us), and the replica's CPU is what runs out first.
_SQL_TYPES = {
    "tenant_id": "bigint", "session_id": "text", "version": "bigint", "batch_lock": "bigint",
    "session_lock": "bigint", "batch_id": "text", "fingerprint": "text", "response": "text",
    "month": "text", "state": "text", "mood": "text", "confidence": "double precision",
    "action": "text", "total": "bigint", "last_url": "text", "now": "double precision",
    "ev_batch": "int", "seqs": "bigint", "types": "text", "ts": "double precision",
    "fields": "text", "page_batch": "int", "urls": "text", "moods": "text",
    "signal_batch": "int", "signals": "text", "el_batch": "int", "el_page": "text",
    "el_target": "text", "el_clicks": "int", "el_rage": "int", "el_dead": "int",
    "el_error": "int", "el_hesitations": "int", "el_ts": "double precision",
}  # fmt: skip
_NUMERIC = {"bigint", "int", "double precision"}
# (type, numeric) of each parameter, in order: the records' fields give the order.
_PARAMS = tuple(
    (_SQL_TYPES[name], _SQL_TYPES[name] in _NUMERIC)
    for name in (*BatchRow._fields, *GroupRows._fields)
)
# A row per batch: its place in the group (1-based), its status (0 stored,
# 1 the row moved on: then the row as it is now, named as cached.READ_SQL's).
APPEND_SQL = (
    "SELECT o_batch AS batch, o_status AS status, o_version AS version, o_state AS state, "
    "o_count AS event_count, o_last_url AS last_url, o_mood AS mood "
    "FROM sm_append_cached("
    + ", ".join(f"${i}::text::{t}[]" for i, (t, _) in enumerate(_PARAMS, start=1))
    + ")"
)


def _numbers(xs: Sequence[float | int | None]) -> str:
    return "{" + ",".join(["NULL" if x is None else repr(x) for x in xs]) + "}"


def _texts(xs: Sequence[str | None]) -> str:
    # Inside double quotes only a backslash and a double quote need escaping;
    # an unquoted NULL is SQL NULL, a quoted one the string "NULL".
    return (
        "{"
        + ",".join(
            [
                "NULL" if x is None else '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for x in xs
            ]
        )
        + "}"
    )


def group_rows(group: list[Folded]) -> GroupRows:
    """The events, pages, signals and elements of ``group``, a column each. The
    events go straight into the group's columns: no columns of their own per batch."""
    ev_batch: list[int] = []
    events = EventColumns([], [], [], [])
    page_batch: list[int] = []
    urls: list[str] = []
    moods: list[str] = []
    signal_batch: list[int] = []
    signals: list[str] = []
    el_batch: list[int] = []
    keys: list[tuple[str, str]] = []
    tallies: list[ElementTally] = []
    for k, f in enumerate(group, start=1):
        ev_batch += [k] * len(f.events)
        event_columns(f.events, f.first_seq, into=events)
        page_batch += [k] * len(f.pages)
        urls += f.pages
        moods += f.pages.values()
        signal_batch += [k] * len(f.signals)
        signals += f.signals
        el_batch += [k] * len(f.elements)
        keys += f.elements
        tallies += f.elements.values()
    return GroupRows(
        ev_batch=ev_batch,
        seqs=events.seqs,
        types=events.types,
        ts=events.ts,
        fields=events.fields,
        page_batch=page_batch,
        urls=urls,
        moods=moods,
        signal_batch=signal_batch,
        signals=signals,
        el_batch=el_batch,
        el_page=[page for page, _ in keys],
        el_target=[target for _, target in keys],
        el_clicks=[e.clicks for e in tallies],
        el_rage=[e.rage_clicks for e in tallies],
        el_dead=[e.dead_clicks for e in tallies],
        el_error=[e.error_clicks for e in tallies],
        el_hesitations=[e.hesitations for e in tallies],
        el_ts=[e.last_ts for e in tallies],
    )


def _arguments(group: list[Folded]) -> list[str]:
    """``sm_append_cached``'s 35 arrays as literals: a column of the batches'
    ``BatchRow`` values per field, then the ``GroupRows``."""
    columns: list[Sequence[Any]] = [
        *zip(*(f.row for f in group), strict=True),
        *group_rows(group),
    ]
    return [
        _numbers(c) if numeric else _texts(c)
        for c, (_, numeric) in zip(columns, _PARAMS, strict=True)
    ]


class Appender:
    """Queues folded batches and sends them to the database in groups."""

    def __init__(self, acquire: Callable[[], Any]) -> None:
        self._acquire = acquire  # a pooled connection, as an async context manager
        self._queue: list[tuple[Folded, asyncio.Future[Any]]] = []
        self._in_flight = 0

    async def append(self, folded: Folded) -> Any:
        """The batch's result row once its group has committed (or failed)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((folded, fut))
        if self._in_flight < IN_FLIGHT:
            self._in_flight += 1
            asyncio.get_running_loop().call_soon(self._start)
        return await fut

    def _start(self) -> None:
        task = asyncio.get_running_loop().create_task(self._drain())
        task.add_done_callback(_log_crash)

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._send(self._take())
        finally:
            self._in_flight -= 1

    def _take(self) -> list[tuple[Folded, asyncio.Future[Any]]]:
        """The next group: queued batches, but one per session and per batch id
        (the function stores a group's events and ids after its checks, so a
        second batch of either would not see the first); the rest wait."""
        group: list[tuple[Folded, asyncio.Future[Any]]] = []
        rest: list[tuple[Folded, asyncio.Future[Any]]] = []
        sessions: set[tuple[int, str]] = set()
        ids: set[tuple[int, str]] = set()
        limit = min(MAX_GROUP, max(GROUP_SHARE, -(-len(self._queue) // IN_FLIGHT)))
        for item in self._queue:
            folded, _ = item
            row = folded.row
            session = (row.tenant_id, row.session_id)
            batch = (row.tenant_id, row.batch_id) if row.batch_id is not None else None
            if len(group) >= limit or session in sessions or batch in ids:
                rest.append(item)
                continue
            sessions.add(session)
            if batch is not None:
                ids.add(batch)
            group.append(item)
        self._queue = rest
        # Session locks in key order: see the lock order in the function.
        group.sort(key=_session_lock)
        return group

    async def _send(self, group: list[tuple[Folded, asyncio.Future[Any]]]) -> None:
        try:
            async with self._acquire() as conn:
                rows = await conn.fetch(APPEND_SQL, *_arguments([f for f, _ in group]))
        except Exception as exc:
            if len(group) == 1:
                [(_, fut)] = group
                _answer(fut, None, exc)
                return
            log.warning("group of %d batches failed (%r); sending each alone", len(group), exc)
            for item in group:
                await self._send([item])
            return
        for row in rows:
            _, fut = group[row["batch"] - 1]
            _answer(fut, row, None)


def _session_lock(item: tuple[Folded, asyncio.Future[Any]]) -> int:
    folded, _ = item
    return folded.row.session_lock


def _answer(fut: asyncio.Future[Any], row: Any, error: BaseException | None) -> None:
    if fut.done():  # the request went away; its batch is stored all the same
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(row)


def _log_crash(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.error("appender crashed", exc_info=task.exception())
