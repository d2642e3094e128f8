"""The engine's rule table: which events count toward which mood, how fast
they fade, the thresholds, and where each comes from.

Data, not machinery: :mod:`sessionmood_server.engine` compiles this table
into the views its hot path reads, and ``docs/engine.md`` shows it row by row
(``scripts/engine_rules_doc.py --write``). A new cue is one row here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sessionmood_client.types import MoodLabel

__all__ = [
    "ACTIVE",
    "ERROR_CLICK_S",
    "FAST_SCROLL_PX_S",
    "HOVER_HESITATION_MS",
    "INPUT_HESITATION_MS",
    "LONG_IDLE_MS",
    "RULES",
    "SAME_SPOT_PX",
    "SPOT_MEMORY",
    "Rule",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the rule table: which events count, how fast they fade, what they mean.

    An event counts when its type is in ``events`` and, if ``field`` is set, its
    value lies in ``[lo, hi)`` (or equals ``equals`` for string and boolean
    fields). Events without the field count only if ``when_missing`` is true: the
    API reference defines ``input_pause``, ``hover`` and ``idle`` as already past
    a client-side threshold, so a bare one is still a hesitation.

    A rule's *mood* is the one it pushes hardest. ``ongoing`` rules are patterns
    that hold only while they go on: a newer match of a ``suspends`` rule of
    mood X scales their evidence for other moods than X (and their
    counter-evidence) by ``1 - that rule's strength``. Cues suspend by default,
    patterns do not (their events are everyday activity) unless they are a
    phase of their own.
    """

    signal: str
    events: tuple[str, ...]
    half_life_s: float
    at: float  # decayed count where the rule starts to fire
    full: float  # decayed count where it fires fully (strength 1)
    weights: Mapping[MoodLabel, float]
    reason: str
    field: str | None = None
    lo: float = -math.inf
    hi: float = math.inf
    equals: str | bool | None = None
    when_missing: bool = False
    # Conjunction: strength is scaled by the strength of the rule with this signal.
    requires: str | None = None
    # "Nothing since": instead of a decayed count, track the newest matching
    # event; the rule holds (decaying from that event) only while no event of
    # these types is newer.
    unless_after: tuple[str, ...] = ()
    # "Right after": track the newest matching event; the rule holds (decaying
    # from it) only while it came at most ``within_s`` after the newest event
    # of these types ("the visitor's latest click was followed by an error").
    after: tuple[str, ...] = ()
    within_s: float = 0.0
    # "Again at the same spot": the rule holds (decaying from the newer of the
    # two) while two of its latest ``SPOT_MEMORY`` matches came at one spot.
    same_spot: bool = False
    ongoing: bool = False
    suspends: bool | None = None  # None: cues suspend, patterns do not
    # Where the cue and its threshold come from (shown in docs/engine.md).
    source: str = ""


# Thresholds from the landing page: input_pause >= 2.5 s and hover >= 2 s are
# hesitation, idle >= 10 s is disengagement.
INPUT_HESITATION_MS = 2500.0
HOVER_HESITATION_MS = 2000.0
LONG_IDLE_MS = 10_000.0
# Reading scrolls run at a few hundred px/s; thousands is flinging the page.
FAST_SCROLL_PX_S = 2000.0
# An error this soon after a click is that click's failure ("error click",
# Datadog: a click right before a JS error). A handler that throws does so at
# once and a failed request answers within its round trip; a background poll
# failing seconds later is not the visitor's action failing.
ERROR_CLICK_S = 1.5
# Two clicks this close (viewport px) without an element descriptor are on
# the same control (PostHog's rage radius); with ``target`` the descriptors decide.
SAME_SPOT_PX = 30.0
# How many of a ``same_spot`` rule's newest matches are compared.
SPOT_MEMORY = 3

# Frustration and confusion fade over about a minute: a visitor who rage-clicked
# ten minutes ago (10 half-lives) and has worked calmly since is not frustrated.
_SLOW = 60.0
# Pace and engagement patterns describe what the visitor is doing *now*.
_MEDIUM = 30.0
# "Fast, direct" is about the last few seconds only.
_FAST = 3.0

# Anything the visitor does on purpose; a blur with none of these after it is
# a form left behind.
ACTIVE = (
    "click", "rage_click", "scroll", "input_pause", "backtrack", "back_nav",
    "page_view", "error", "hover", "focus",
)  # fmt: skip

# fmt: off
RULES: tuple[Rule, ...] = (
    # --- frustrated -------------------------------------------------------
    Rule("rage_click_detected", ("rage_click",), _SLOW, 0.0, 1.5,
         {"frustrated": 6.0, "decisive": -4.0},
         "Several rapid clicks on one spot: the strongest cue. The burst's own clicks"
         " are not fast, direct interaction, so it cancels that pace too.",
         source="landing page: rage_click -> frustrated (strong signal)"),
    Rule("repeated_errors", ("error",), _SLOW, 1.0, 2.0,
         {"frustrated": 6.0, "confused": -1.5},
         "Two or more recent errors: the visitor keeps failing, past mere confusion"
         " (landing page: 1 error -> confused, 2+ -> frustrated).",
         source="landing page: error -> frustrated (2+)"),
    Rule("error_encountered", ("error",), _SLOW, 0.0, 1.0,
         {"confused": 2.0, "frustrated": 1.0},
         "A single error leaves the visitor unsure what happened (landing page: 1 -> confused).",
         source="landing page: error -> confused (1)"),
    Rule("fast_scroll", ("scroll",), _MEDIUM, 0.0, 2.0,
         {"frustrated": 1.5, "confused": 0.5},
         "Flinging the page at thousands of px/s is frantic searching, not reading.",
         field="speed", lo=FAST_SCROLL_PX_S,
         source="landing page: scroll -> frustrated (fast); 2000 px/s is ours"),
    Rule("repeated_dead_click", ("click",), _SLOW, 0.0, 1.0,
         {"frustrated": 2.5},
         "A control that did not answer, clicked again (two of the latest three dead"
         " clicks on one spot): the visitor keeps trying what fails.",
         field="dead", equals=True, same_spot=True,
         source="API reference: frustrated = repeated failed actions; Sentry: rage ="
                " repeated dead clicks on one element"),
    Rule("dead_click_detected", ("click",), _SLOW, 0.0, 3.0,
         {"frustrated": 2.1},
         "Clicks on interactive-looking things that got no response: a cue, not a verdict."
         " Two on different controls stay under the floor; a third or another sign tips it.",
         field="dead", equals=True,
         source="tracker.js dead flag (PostHog, Sentry dead clicks: an issue to look at,"
                " not a visitor's state)"),
    Rule("error_click_detected", ("error",), _SLOW, 0.0, 1.0,
         {"frustrated": 0.8},
         "The newest error came within 1.5 s of the latest click: that click failed (Datadog's"
         " error click). Tips one error to frustrated only with another frustration cue.",
         after=("click", "rage_click"), within_s=ERROR_CLICK_S,
         source="Datadog error click; 1.5 s is ours"),
    Rule("back_navigation", ("back_nav",), _SLOW, 0.0, 1.0,
         {"confused": 2.0, "frustrated": 0.6},
         "Pressing back means the page was not what the visitor expected.",
         source="API reference: back_nav -> frustrated, confused"),
    # --- confused ---------------------------------------------------------
    Rule("high_page_churn", ("page_view",), _SLOW, 2.0, 4.0,
         {"confused": 2.0, "browsing": -1.5},
         "Many page views *with* back navigation is hunting, not relaxed exploring.",
         requires="back_navigation",
         source="landing page: page_view -> confused (4+, high churn)"),
    Rule("backtrack_detected", ("backtrack",), _SLOW, 0.0, 2.0,
         {"confused": 3.0},
         "Reversing up the page is re-reading: the content did not answer the question.",
         source="landing page: backtrack -> confused"),
    Rule("backtrack_detected", ("scroll",), _SLOW, 0.0, 2.0,
         {"confused": 2.0},
         "An upward scroll is a scroll reversal, the same cue as backtrack.",
         field="direction", equals="up",
         source="API reference: confused = scroll reversals"),
    Rule("hover_hesitation", ("hover",), _SLOW, 0.0, 2.0,
         {"confused": 3.5},
         "Hovering >= 2 s without clicking is hesitation over what an element does.",
         field="duration_ms", lo=HOVER_HESITATION_MS, when_missing=True,
         source="landing page: hover -> hesitation; 2 s is ours"),
    Rule("input_hesitation", ("input_pause",), _SLOW, 0.0, 2.0,
         {"confused": 3.5, "frustrated": 0.3},
         "Stopping >= 2.5 s mid-field: the visitor does not know what to enter (landing page).",
         field="duration_ms", lo=INPUT_HESITATION_MS, when_missing=True,
         source="landing page: input_pause -> confused (>= 2.5 s)"),
    # --- decisive ---------------------------------------------------------
    Rule("fast_direct_interactions", ("click", "focus", "page_view"), _FAST, 2.5, 4.5,
         {"decisive": 4.0, "focused": -1.0, "browsing": -1.0},
         "Clicks, focuses and navigations about a second apart or faster: no hesitation,"
         " which is neither relaxed browsing nor steady task work. Dead clicks do not count.",
         field="dead", equals=False, when_missing=True, ongoing=True, suspends=True,
         source="landing page: click -> decisive (rapid bursts)"),
    # --- browsing ---------------------------------------------------------
    Rule("multi_page_browse", ("page_view",), _SLOW, 1.0, 3.5,
         {"browsing": 3.0, "focused": -1.0},
         "Several page views in the last minute is exploring, not one task"
         " (landing page: 2+ -> browsing).",
         ongoing=True, suspends=True,
         source="landing page: page_view -> browsing (2+)"),
    Rule("casual_hover", ("hover",), _MEDIUM, 0.0, 2.0,
         {"browsing": 1.0},
         "Brief hovers are looking around, not hesitating.",
         field="duration_ms", hi=HOVER_HESITATION_MS, ongoing=True,
         source="landing page: hover -> browsing"),
    Rule("moderate_scroll", ("scroll",), _MEDIUM, 0.0, 3.0,
         {"browsing": 1.2, "focused": 0.5},
         "Steady scrolling is reading: relaxed exploring, or part of a task; never distress.",
         field="speed", hi=FAST_SCROLL_PX_S, when_missing=True, ongoing=True,
         source="API reference: scroll -> browsing; landing page: focused (steady)"),
    # --- disengaged -------------------------------------------------------
    Rule("long_idle", ("idle",), _SLOW, 0.0, 1.0,
         {"disengaged": 6.0},
         "No activity for >= 10 s: attention has drifted (landing page: idle >= 10 s),"
         " until the visitor is back (any deliberate action since).",
         field="duration_ms", lo=LONG_IDLE_MS, when_missing=True, unless_after=ACTIVE,
         source="landing page: idle -> disengaged (>= 10 s)"),
    Rule("short_idle", ("idle",), _SLOW, 0.0, 2.0,
         {"disengaged": 1.5},
         "Repeated short lapses in activity hint at drifting attention.",
         field="duration_ms", hi=LONG_IDLE_MS,
         source="API reference: idle -> disengaged"),
    Rule("form_abandoned", ("blur",), _SLOW, 0.0, 1.0,
         {"disengaged": 1.0},
         "A blur with no deliberate action since is a form left behind (blur without re-focus)."
         " Every blur starts out like this, so it suspends no pattern.",
         unless_after=ACTIVE, suspends=False,
         source="API reference: blur -> possibly abandoned"),
    # --- focused ----------------------------------------------------------
    Rule("steady_interaction_pattern", ("click",), _MEDIUM, 1.0, 4.0,
         {"focused": 2.0, "decisive": 0.5, "browsing": 0.3},
         "Clicks sustained over half a minute are task work (dead clicks are not).",
         field="dead", equals=False, when_missing=True, ongoing=True,
         source="landing page: focused = steady, task-oriented"),
    Rule("steady_interaction_pattern", ("focus", "blur"), _MEDIUM, 1.0, 4.0,
         {"focused": 2.0, "decisive": 0.3},
         "Moving in and out of form fields is sustained form completion.",
         ongoing=True, suspends=True,
         source="API reference: focused = sustained form interaction"),
    Rule("steady_interaction_pattern", ("input_pause",), _MEDIUM, 0.0, 2.0,
         {"focused": 1.0},
         "Pauses under 2.5 s while typing are ordinary typing rhythm.",
         field="duration_ms", hi=INPUT_HESITATION_MS, ongoing=True,
         source="landing page: confused only from 2.5 s"),
)
# fmt: on
