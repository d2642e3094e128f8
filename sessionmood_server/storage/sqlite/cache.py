"""The SQLite backend's session cache: what memory knows about sessions, and
the rules for changing it.

Every entry is exact. Write jobs never touch the committed state directly:
they *stage* changes while their group runs (``stage``, ``stage_evict``,
``stage_lag``, ``stage_counted``), and the writer then either ``commit``\\s
them, once the group's COMMIT succeeded, or ``rollback``\\s them. Reads see
only committed entries (``get``); jobs see their own group's staged ones too
(``current``).

What is kept:

* ``hot``: per session, its verdict, its engine state when a write left it
  (reads cache the verdict only) and its newest batch id; most recently
  written or read last, evicted oldest first past ``HOT_SESSIONS``.
* ``lagging``: sessions whose row in ``sessions`` is behind their hot entry
  (see ``ROW_LAG_S`` in ``storage.py``), oldest first, with the oldest batch
  the row lacks. Their hot entries are never evicted: they are the only
  current copy in memory.
* ``counted``: (tenant, month, session) already counted against the quota.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

from sessionmood_server import engine
from sessionmood_server.records import SessionRecord

# Sessions whose verdict and engine state stay in memory: a batch for one of
# them skips the SELECT and the state decode, and GET mood skips SQL altogether.
HOT_SESSIONS = 10_000
# Quota look-ups remembered before the set starts over.
MAX_COUNTED = 500_000

SessionKey = tuple[int, str]  # (tenant, session)
MonthKey = tuple[int, str, str]  # (tenant, month, session)


class HotEntry(NamedTuple):
    """A session as memory knows it."""

    record: SessionRecord
    state: engine.State | None  # None: cached by a read, which has no state
    last_batch: int | None  # its newest row in event_batches


class Lag(NamedTuple):
    since: float  # monotonic time the row started lagging
    from_batch: int  # the oldest batch the row lacks


class SessionCache:
    """Hot sessions, lagging rows and counted months, changed only through a
    group's stage, then commit or rollback."""

    def __init__(self) -> None:
        self._hot: dict[SessionKey, HotEntry] = {}
        self._staged: dict[SessionKey, HotEntry | None] = {}  # None: evict
        self._lagging: dict[SessionKey, Lag] = {}
        self._staged_lag: dict[SessionKey, int] = {}
        self._counted: set[MonthKey] = set()
        self._staged_counted: set[MonthKey] = set()

    # -- reading ---------------------------------------------------------------

    def get(self, key: SessionKey) -> HotEntry | None:
        """The committed entry (for reads outside a group)."""
        return self._hot.get(key)

    def current(self, key: SessionKey) -> HotEntry | None:
        """The entry as of the group running now, its own earlier jobs included."""
        staged = self._staged
        return staged[key] if key in staged else self._hot.get(key)

    def is_lagging(self, key: SessionKey) -> bool:
        return key in self._lagging or key in self._staged_lag

    @property
    def any_lagging(self) -> bool:
        return bool(self._lagging)

    @property
    def any_staged_lag(self) -> bool:
        return bool(self._staged_lag)

    def counted(self, key: MonthKey) -> bool:
        return key in self._counted

    # -- a write group ---------------------------------------------------------

    def begin(self) -> None:
        """A group starts: nothing is staged."""
        self.rollback()

    def stage(self, key: SessionKey, entry: HotEntry) -> None:
        self._staged[key] = entry

    def stage_evict(self, key: SessionKey) -> None:
        """The session is gone (erased or purged) once the group commits."""
        self._staged[key] = None

    def stage_lag(self, key: SessionKey, batch: int) -> None:
        """The session's row will lack ``batch`` (and what follows) once committed."""
        if not self.is_lagging(key):
            self._staged_lag[key] = batch

    def stage_counted(self, key: MonthKey) -> None:
        self._staged_counted.add(key)

    def rollback(self) -> None:
        """Forget everything staged: the group's transaction did not commit."""
        self._staged.clear()
        self._staged_lag.clear()
        self._staged_counted.clear()

    def rows_due(self, everything: bool, due: float, most: int) -> list[SessionKey]:
        """Lagging rows to write now: those lagging since before ``due`` (at most
        ``most``), or with ``everything``, all of them and this group's too."""
        keys: list[SessionKey] = []
        for key, lag in self._lagging.items():
            if not everything and (lag.since > due or len(keys) >= most):
                break
            keys.append(key)
        if everything:
            keys += [k for k in self._staged_lag if k not in self._lagging]
        return keys

    def replay_from(self, written: set[SessionKey]) -> int | None:
        """The oldest batch a row still lacks once the rows ``written`` are: lagging
        entries are ordered oldest first, and this group's come after them."""
        return next(
            (lag.from_batch for k, lag in self._lagging.items() if k not in written),
            next((b for k, b in self._staged_lag.items() if k not in written), None),
        )

    def commit(self, written: list[SessionKey], now: float) -> None:
        """The group committed: its staged changes become the committed ones, and
        the rows in ``written`` caught up."""
        lagging = self._lagging
        for key, batch in self._staged_lag.items():
            if key not in lagging:
                lagging[key] = Lag(now, batch)
        for key in written:
            lagging.pop(key, None)
        if len(self._counted) > MAX_COUNTED:
            self._counted.clear()
        self._counted.update(self._staged_counted)
        hot = self._hot
        for key, entry in self._staged.items():
            hot.pop(key, None)  # re-inserted last: the dict's order is recency
            if entry is not None:
                hot[key] = entry
        if len(hot) > HOT_SESSIONS:
            excess = len(hot) - HOT_SESSIONS * 9 // 10
            # Lagging rows stay: their entry is the only current copy in memory.
            for key in [
                k for k in itertools.islice(hot, excess + len(lagging)) if k not in lagging
            ]:
                del hot[key]

    # -- outside a group ---------------------------------------------------------

    def remember_read(self, key: SessionKey, entry: HotEntry) -> None:
        """A verdict just read from its row (no write is pending between that read
        and this call: both run on the loop, groups commit synchronously)."""
        if len(self._hot) < HOT_SESSIONS:
            self._hot[key] = entry

    def forget_session_months(self, tenant_id: int, session_id: str) -> None:
        """An erased id that comes back is a new session this month."""
        self._counted = {
            (tenant, month, session)
            for tenant, month, session in self._counted
            if tenant != tenant_id or session != session_id
        }

    def forget_months(self) -> None:
        self._counted.clear()

    def rows_caught_up(self) -> None:
        """Every lagging row was rebuilt from the log (another process wrote)."""
        self._lagging.clear()

    def drop_hot(self) -> None:
        """Another connection committed: nothing cached about sessions is known exact."""
        self._hot.clear()
