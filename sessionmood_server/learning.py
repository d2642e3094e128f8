"""Feedback-loop learning: which intervention works for *this* tenant's visitors.

For every mood, each documented action gets a Beta-Bernoulli posterior over
"the visitor found it helpful", built from the tenant's feedback (``was_helpful``
true/false; unknown outcomes carry no evidence). The reference's mapping is the
prior: its action starts with pseudo-counts that favour it, every other action
starts flat. An action replaces the default only on real evidence:

* at least ``MIN_SAMPLES`` rated outcomes for it, and
* a posterior mean at least ``MARGIN`` above the default action's.

Counterfactual evidence comes first. Where the tenant holds sessions out
(``PUT /v1/holdout``), the uplift of an action in a mood (treated against
held-out sessions, any conversion, ``uplift.compare``) decides wherever its
95 % interval excludes 0: an action that helps is kept whatever the feedback
says (the best of several, by its interval's lower end); one that hurts is
dropped (for the best-rated action that does not hurt, else ``no_action``).
Feedback decides only where the uplift is unclear. ``signals`` name the
evidence: ``action_chosen_by_uplift`` or ``action_learned_from_feedback``.

Pure and deterministic: the same feedback always gives the same policy, and
ties keep the default. Tenants never share evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sessionmood_client.types import ACTIONS, DEFAULT_ACTIONS, MoodLabel, SuggestedAction
from sessionmood_server.records import ActionCounts, UpliftCounts
from sessionmood_server.uplift import compare

# The default action's prior: as if it had helped 3 of 4 times already.
DEFAULT_PRIOR = (3.0, 1.0)
# Every other documented action starts uninformed (uniform Beta(1, 1)).
FLAT_PRIOR = (1.0, 1.0)
MIN_SAMPLES = 10
MARGIN = 0.1
LEARNED_SIGNAL = "action_learned_from_feedback"
UPLIFT_SIGNAL = "action_chosen_by_uplift"
POLICY_SIGNALS = (LEARNED_SIGNAL, UPLIFT_SIGNAL)


class Policy(dict[MoodLabel, SuggestedAction]):
    """Mood -> the action to suggest instead of the reference's; ``by_uplift``:
    the moods whose action the uplift chose (the others, the feedback)."""

    def __init__(
        self,
        actions: Mapping[MoodLabel, SuggestedAction] | None = None,
        by_uplift: Iterable[MoodLabel] = (),
    ) -> None:
        super().__init__(actions or {})
        self.by_uplift = frozenset(by_uplift)


def posterior_mean(helpful: int, not_helpful: int, prior: tuple[float, float]) -> float:
    a, b = prior
    return (helpful + a) / (helpful + not_helpful + a + b)


def learn_policy(counts: Iterable[ActionCounts], uplift: Iterable[UpliftCounts] = ()) -> Policy:
    """Moods whose best action differs from the reference's default, and that action."""
    feedback = _from_feedback(counts)
    verdicts = _uplift_verdicts(uplift)
    actions: dict[MoodLabel, SuggestedAction] = dict(feedback)
    chosen: list[MoodLabel] = []
    for mood, default in DEFAULT_ACTIONS.items():
        tried = verdicts.get(mood, {})
        helps = [(low, a) for a, (v, low) in tried.items() if v == "helps"]
        current = feedback.get(mood, default)
        if helps:
            best = max(helps, key=lambda h: (h[0], -ACTIONS.index(h[1])))[1]
        elif tried.get(current, ("unclear", 0.0))[0] == "hurts":
            # The best-rated action that does not hurt; the default is no
            # better known than the rest, so no action at all is the fallback.
            fallback = [a for a in (feedback.get(mood), default) if a and a != current]
            best = next(
                (a for a in fallback if tried.get(a, ("unclear",))[0] != "hurts"), "no_action"
            )
        else:
            continue
        chosen.append(mood)
        if best == default:
            actions.pop(mood, None)
        else:
            actions[mood] = best
    return Policy(actions, chosen)


def _uplift_verdicts(
    rows: Iterable[UpliftCounts],
) -> dict[MoodLabel, dict[SuggestedAction, tuple[str, float]]]:
    """Per mood and action: the uplift verdict and its interval's lower end."""
    groups: dict[tuple[MoodLabel, SuggestedAction], dict[bool, UpliftCounts]] = {}
    for row in rows:
        if row.mood is not None and row.action is not None:
            groups.setdefault((row.mood, row.action), {})[row.holdout] = row
    out: dict[MoodLabel, dict[SuggestedAction, tuple[str, float]]] = {}
    for (mood, action), by_group in groups.items():
        treated, control = by_group.get(False), by_group.get(True)
        if treated is None or control is None:
            continue
        c = compare(
            treated.sessions, treated.conversions, control.sessions, control.conversions, 0.02
        )
        out.setdefault(mood, {})[action] = (c.verdict, c.low if c.low is not None else 0.0)
    return out


def _from_feedback(counts: Iterable[ActionCounts]) -> dict[MoodLabel, SuggestedAction]:
    """Moods whose best-rated action differs from the reference's default."""
    evidence: dict[tuple[str, str], tuple[int, int]] = {}
    for c in counts:
        if c.action in ACTIONS:
            h, n = evidence.get((c.mood, c.action), (0, 0))
            evidence[(c.mood, c.action)] = (h + c.helpful, n + c.not_helpful)
    policy: dict[MoodLabel, SuggestedAction] = {}
    for mood, default in DEFAULT_ACTIONS.items():
        dh, dn = evidence.get((mood, default), (0, 0))
        best, best_mean = default, posterior_mean(dh, dn, DEFAULT_PRIOR)
        threshold = best_mean + MARGIN
        for action in ACTIONS:  # fixed order: deterministic tie-breaking
            if action == default:
                continue
            h, n = evidence.get((mood, action), (0, 0))
            if h + n < MIN_SAMPLES:
                continue
            mean = posterior_mean(h, n, FLAT_PRIOR)
            if mean >= threshold and mean > best_mean:
                best, best_mean = action, mean
        if best != default:
            policy[mood] = best
    return policy


def apply_policy(
    policy: Mapping[MoodLabel, SuggestedAction],
    mood: MoodLabel,
    action: SuggestedAction,
    signals: list[str],
) -> SuggestedAction:
    """The action to suggest for ``mood``; notes in ``signals`` which evidence
    chose it, when that was not the reference's mapping."""
    by_uplift = mood in getattr(policy, "by_uplift", ())
    learned = policy.get(mood)
    if by_uplift:
        signal = UPLIFT_SIGNAL
        learned = action if learned is None else learned
    elif learned is None or learned == action:
        return action
    else:
        signal = LEARNED_SIGNAL
    if signal not in signals:
        signals.append(signal)
    return learned
