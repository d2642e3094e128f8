"""Feedback-loop learning: which intervention works for *this* tenant's visitors.

For every mood, each documented action gets a Beta-Bernoulli posterior over
"the visitor found it helpful", built from the tenant's feedback (``was_helpful``
true/false; unknown outcomes carry no evidence). The reference's mapping is the
prior: its action starts with pseudo-counts that favour it, every other action
starts flat. An action replaces the default only on real evidence:

* at least ``MIN_SAMPLES`` rated outcomes for it, and
* a posterior mean at least ``MARGIN`` above the default action's.

Pure and deterministic: the same feedback always gives the same policy, and
ties keep the default. Tenants never share evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sessionmood_client.types import ACTIONS, DEFAULT_ACTIONS, MoodLabel, SuggestedAction
from sessionmood_server.records import ActionCounts

# The default action's prior: as if it had helped 3 of 4 times already.
DEFAULT_PRIOR = (3.0, 1.0)
# Every other documented action starts uninformed (uniform Beta(1, 1)).
FLAT_PRIOR = (1.0, 1.0)
MIN_SAMPLES = 10
MARGIN = 0.1
LEARNED_SIGNAL = "action_learned_from_feedback"

Policy = dict[MoodLabel, SuggestedAction]


def posterior_mean(helpful: int, not_helpful: int, prior: tuple[float, float]) -> float:
    a, b = prior
    return (helpful + a) / (helpful + not_helpful + a + b)


def learn_policy(counts: Iterable[ActionCounts]) -> Policy:
    """Moods whose best action differs from the reference's default, and that action."""
    evidence: dict[tuple[str, str], tuple[int, int]] = {}
    for c in counts:
        if c.action in ACTIONS:
            h, n = evidence.get((c.mood, c.action), (0, 0))
            evidence[(c.mood, c.action)] = (h + c.helpful, n + c.not_helpful)
    policy: Policy = {}
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
    """The action to suggest for ``mood``; notes the learning in ``signals``."""
    learned = policy.get(mood)
    if learned is None or learned == action:
        return action
    if LEARNED_SIGNAL not in signals:
        signals.append(LEARNED_SIGNAL)
    return learned
