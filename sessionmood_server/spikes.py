"""Frustration spikes: when a page's share of frustrated sessions jumps above
its own history, and when it comes back.

Pure and deterministic (no I/O, no wall clock): time is the events' own clock,
cut into windows of ``window_s`` seconds, so a replayed or simulated day
behaves like a real one. The caller feeds, per page (URL path), how many
sessions were seen on it and how many of them turned frustrated there, with
the time it happened; the detector answers with the alerts that open or close.

The method, per page:

* **Baseline.** Exponentially weighted sums of the finished windows' sessions
  and frustrated sessions (half-life ``half_life_s``, 6 h by default: it
  follows a daily cycle without chasing one noisy window), plus a weak prior
  of ``prior_sessions`` sessions at ``prior_rate``. The baseline rate is
  ``p0 = (F + prior_rate * prior_sessions) / (N + prior_sessions)``. It is
  frozen while an alert is open, so a break never becomes the norm.
* **Opening.** Over the last 5, 10 and 15 minutes (one, two and three
  windows' worth, sliding by a fifth of a window, the bucket being filled
  included, so a break is caught as it happens and a span can start close
  to when it began, not diluted by the healthy minutes before it), with
  ``n`` sessions and ``f`` frustrated: the page has a learned history
  (``N >= min_history``), enough volume (``n >= min_sessions``: a page with a
  handful of visitors never alarms), a jump worth telling someone about
  (``f/n >= p0 + min_excess`` and ``f/n >= min_ratio * p0``) and one that
  chance does not explain: the exact binomial upper tail
  ``P(X >= f | n, p_ref) <= alpha``, where ``p_ref`` is the baseline plus two
  standard errors of its own estimate (a young or thin baseline is not
  trusted to the last decimal). ``alpha`` is tiny (1e-7) because every page
  is tested at every update: a busy page sees about 6,000 tested spans a day
  (one a minute, three lengths), strongly overlapping. In the simulation of
  ``tests/test_spikes.py`` (six pages, a daily cycle of volume and of the
  rate itself, 2-6 %), 1e-5 gave several false alarms a week, 1e-6 about one
  in 25 page-weeks and 1e-7 none in 48 page-weeks, while a break to 25 % on
  a page with 80 sessions per 5 minutes at its peak is still caught in 8
  minutes (the slowest of 30 runs: 11). The price is volume: a page needs
  roughly 60 sessions per 5 minutes to be told within 10 minutes about a
  break to 25 %, and with 20 it takes 15-25 minutes.
* **Recovering.** While open, each finished window with sessions is quiet when
  its rate is at most ``p0 + min_excess / 2``; after ``recover_windows`` (2)
  quiet windows in a row the alert closes, and the opening test starts over
  from that moment (the broken minutes cannot reopen it). A loud window resets the count; windows
  without sessions neither count nor reset (a page nobody visits says
  nothing about whether it works).
* One open alert per page at a time.

``tests/test_spikes.py`` simulates a week of steady traffic with a daily
cycle and a break, with known truth, and checks the thresholds against it.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

SPANS = 3  # windows a test may combine: the current one and the two before it
BUCKETS = 5  # a window's slices, the step by which tested spans slide


@dataclass(frozen=True)
class SpikeSettings:
    """The detector's thresholds (README "Alerts"; tunable per tenant)."""

    window_s: float = 300.0
    half_life_s: float = 6 * 3600.0
    min_sessions: int = 20
    min_history: float = 200.0
    min_excess: float = 0.10
    min_ratio: float = 2.0
    alpha: float = 1e-7
    recover_windows: int = 2
    prior_rate: float = 0.05
    prior_sessions: float = 20.0
    max_pages: int = 10_000


@dataclass(frozen=True)
class Alert:
    """A page's frustration spike: ``state`` "open" until it recovers."""

    page: str
    state: Literal["open", "recovered"]
    started_at: float  # start of the earliest window of the span that opened it
    rate: float  # frustrated share over that span
    baseline: float  # the page's baseline rate when it opened
    sessions: int  # sessions in that span
    frustrated: int
    recovered_at: float | None = None


@dataclass
class _Window:
    index: int
    sessions: int = 0
    frustrated: int = 0


@dataclass
class PageState:
    """One page's baseline, recent windows and open alert."""

    windows: list[_Window] = field(default_factory=list)  # oldest first, at most SPANS
    # The last SPANS windows again, in slices of a fifth of a window (indexes in
    # slices), for the opening test's sliding spans.
    buckets: deque[_Window] = field(default_factory=deque)
    weighted_sessions: float = 0.0
    weighted_frustrated: float = 0.0
    folded_through: int | None = None  # last window folded into the baseline
    alert: Alert | None = None
    quiet: int = 0  # quiet finished windows in a row while open


def binomial_upper_tail(f: int, n: int, p: float) -> float:
    """P(X >= f) for X ~ Binomial(n, p), exactly (summed in log space from f
    up; the terms fall once past the mean, so few are needed when f is high)."""
    if f <= 0:
        return 1.0
    if f > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    log_nf = math.lgamma(n + 1)
    total = 0.0
    for x in range(f, n + 1):
        term = math.exp(
            log_nf - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * lp + (n - x) * lq
        )
        total += term
        if x > n * p and term < total * 1e-12:
            break
    return min(1.0, total)


class SpikeDetector:
    """One tenant's pages. Feed it with ``add`` (and ``tick`` as the tenant's
    clock moves); each call returns the alerts that opened or recovered."""

    def __init__(self, settings: SpikeSettings | None = None) -> None:
        self.settings = settings or SpikeSettings()
        # Least recently fed first, so the page to forget is at hand.
        self.pages: OrderedDict[str, PageState] = OrderedDict()
        self.clock = -math.inf

    def open_alerts(self) -> list[Alert]:
        return [s.alert for s in self.pages.values() if s.alert is not None]

    def baseline(self, page: str) -> float | None:
        state = self.pages.get(page)
        return None if state is None else self._rate(state)

    def add(self, page: str, ts: float, sessions: int = 0, frustrated: int = 0) -> list[Alert]:
        """``sessions`` more seen on ``page`` and ``frustrated`` more that turned
        frustrated there, at ``ts`` (the events' clock). Counts for a window
        already finished are too late to test and are dropped."""
        changes = self.tick(ts)
        state = self.pages.get(page)
        if state is None:
            state = self.pages[page] = PageState()
            if len(self.pages) > self.settings.max_pages:
                self._forget_oldest(changes)
        else:
            self.pages.move_to_end(page)
        index = self._index(ts)
        changes.extend(self._advance(page, state, index))
        current = state.windows[-1] if state.windows else None
        if current is None or current.index != index:
            return changes  # late: its window is finished
        current.sessions += sessions
        current.frustrated += frustrated
        self._bucket(state, ts, sessions, frustrated)
        if frustrated or sessions:
            opened = self._test(page, state)
            if opened is not None:
                changes.append(opened)
        return changes

    def tick(self, ts: float) -> list[Alert]:
        """Move the tenant's clock to ``ts`` (never back): windows that ended
        are finished on every page, so a page that went quiet still recovers."""
        if ts <= self.clock:
            return []
        same_window = self.clock > -math.inf and self._index(self.clock) == self._index(ts)
        self.clock = ts
        if same_window:
            return []
        index = self._index(ts)
        changes: list[Alert] = []
        for page, state in self.pages.items():
            changes.extend(self._advance(page, state, index))
        return changes

    # -- internals ---------------------------------------------------------------

    def _index(self, ts: float) -> int:
        return math.floor(ts / self.settings.window_s)

    def _rate(self, state: PageState) -> float:
        s = self.settings
        return (state.weighted_frustrated + s.prior_rate * s.prior_sessions) / (
            state.weighted_sessions + s.prior_sessions
        )

    def _advance(self, page: str, state: PageState, index: int) -> list[Alert]:
        """Finish the windows before ``index`` and make ``index`` current."""
        changes: list[Alert] = []
        if state.windows and state.windows[-1].index >= index:
            return changes
        for window in state.windows:
            if window.index < index and (
                state.folded_through is None or window.index > state.folded_through
            ):
                closed = self._finish(page, state, window)
                if closed is not None:
                    changes.append(closed)
        state.windows = [w for w in state.windows if w.index > index - SPANS]
        state.windows.append(_Window(index))
        return changes

    def _finish(self, page: str, state: PageState, window: _Window) -> Alert | None:
        """Fold a finished window into the baseline, or count it towards recovery."""
        s = self.settings
        last = state.folded_through
        state.folded_through = window.index
        alert = state.alert
        if alert is None:
            gap = 1 if last is None else window.index - last
            decay = 0.5 ** (gap * s.window_s / s.half_life_s)
            state.weighted_sessions = state.weighted_sessions * decay + window.sessions
            state.weighted_frustrated = state.weighted_frustrated * decay + window.frustrated
            return None
        if window.sessions == 0:
            return None
        if window.frustrated / window.sessions <= self._rate(state) + s.min_excess / 2:
            state.quiet += 1
        else:
            state.quiet = 0
        if state.quiet < s.recover_windows:
            return None
        state.alert, state.quiet = None, 0
        # Spans start afresh: the broken minutes must not reopen what just closed.
        state.buckets.clear()
        return Alert(
            page,
            "recovered",
            alert.started_at,
            alert.rate,
            alert.baseline,
            alert.sessions,
            alert.frustrated,
            recovered_at=(window.index + 1) * s.window_s,
        )

    def _bucket(self, state: PageState, ts: float, sessions: int, frustrated: int) -> None:
        index = math.floor(ts * BUCKETS / self.settings.window_s)
        buckets = state.buckets
        if buckets and buckets[-1].index >= index:
            # Out of order within the window: find its slice (it is recent).
            for b in reversed(buckets):
                if b.index == index:
                    b.sessions += sessions
                    b.frustrated += frustrated
                    return
                if b.index < index:
                    break
            return  # older than anything kept: its window's count has it
        buckets.append(_Window(index, sessions, frustrated))
        while buckets[0].index <= index - SPANS * BUCKETS:
            buckets.popleft()

    def _test(self, page: str, state: PageState) -> Alert | None:
        s = self.settings
        if state.alert is not None or state.weighted_sessions < s.min_history:
            return None
        p0 = self._rate(state)
        p_ref = min(1.0, p0 + 2 * math.sqrt(p0 * (1 - p0) / state.weighted_sessions))
        floor = max(p0 + s.min_excess, s.min_ratio * p0)
        if not state.buckets:
            return None
        newest = state.buckets[-1].index
        for span in range(1, SPANS + 1):  # the last 1, 2, 3 windows' worth of slices
            first = newest - span * BUCKETS + 1
            n = sum(b.sessions for b in state.buckets if b.index >= first)
            f = sum(b.frustrated for b in state.buckets if b.index >= first)
            opened = self._judge(page, state, p0, p_ref, floor, n, f, first)
            if opened is not None:
                return opened
        return None

    def _judge(
        self,
        page: str,
        state: PageState,
        p0: float,
        p_ref: float,
        floor: float,
        n: int,
        f: int,
        first: int,
    ) -> Alert | None:
        """Open an alert if ``f`` of ``n`` sessions in the span from slice
        ``first`` on is a jump that chance does not explain."""
        s = self.settings
        if n < s.min_sessions or f < floor * n or binomial_upper_tail(f, n, p_ref) > s.alpha:
            return None
        started = first * s.window_s / BUCKETS
        state.alert = Alert(page, "open", started, f / n, p0, n, f)
        state.quiet = 0
        return state.alert

    def _forget_oldest(self, changes: list[Alert]) -> None:
        """Bounded memory: the least recently fed page goes (an open alert on
        it is reported recovered, so nothing stays open for ever)."""
        page, state = self.pages.popitem(last=False)
        if state.alert is not None:
            a = state.alert
            changes.append(
                Alert(page, "recovered", a.started_at, a.rate, a.baseline, a.sessions,
                      a.frustrated, recovered_at=self.clock)
            )  # fmt: skip
