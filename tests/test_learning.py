"""Feedback-loop learning: per-tenant suggested actions that change only on evidence."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from sessionmood_server.learning import (
    LEARNED_SIGNAL,
    MIN_SAMPLES,
    UPLIFT_SIGNAL,
    apply_policy,
    learn_policy,
)
from sessionmood_server.records import ActionCounts, UpliftCounts
from tests.conftest import make_key

FRUSTRATED = [
    {"type": "rage_click", "x": 1, "y": 1},
    {"type": "error", "message": "Payment failed"},
    {"type": "error", "message": "Payment failed"},
    {"type": "rage_click", "x": 2, "y": 2},
]


def _frustrated(client: TestClient, h: dict[str, str], sid: str) -> dict[str, Any]:
    r = client.post(f"/v1/sessions/{sid}/events", json={"events": FRUSTRATED}, headers=h)
    assert r.json()["current_mood"] == "frustrated"
    return dict(r.json())


def _feedback(client: TestClient, h: dict[str, str], sid: str, action: str, ok: bool) -> None:
    r = client.post(
        f"/v1/sessions/{sid}/feedback",
        json={"action_taken": action, "was_helpful": ok},
        headers=h,
    )
    assert r.status_code == 200


def test_tenant_learns_tooltip_beats_chat_other_tenant_unaffected(client: TestClient) -> None:
    a = {"X-Api-Key": make_key(client)}
    b = {"X-Api-Key": make_key(client)}
    _frustrated(client, b, "b-probe")
    # Tenant A: live chat rarely helps its frustrated visitors, tooltips usually do.
    for i in range(20):
        _frustrated(client, a, f"chat{i}")
        _feedback(client, a, f"chat{i}", "show_live_chat", ok=i < 4)
    switched_after = None
    for i in range(20):
        _frustrated(client, a, f"tip{i}")
        _feedback(client, a, f"tip{i}", "show_tooltip", ok=i % 10 != 0)  # 90 % helpful
        mood = client.get(f"/v1/sessions/tip{i}/mood", headers=a).json()
        if mood["suggested_action"] == "show_tooltip" and switched_after is None:
            switched_after = i + 1
            assert LEARNED_SIGNAL in mood["signals"]
    # not before the minimum evidence, but as soon as it is there
    assert switched_after == MIN_SAMPLES
    fresh = _frustrated(client, a, "new-visitor")
    assert fresh["suggested_action"] == "show_tooltip"
    assert LEARNED_SIGNAL in fresh["signals"]
    # B's visitors still get the reference's action; its feedback is its own
    mood_b = client.get("/v1/sessions/b-probe/mood", headers=b).json()
    assert mood_b["suggested_action"] == "show_live_chat"
    assert LEARNED_SIGNAL not in mood_b["signals"]
    # the evidence is visible
    actions = client.get("/v1/analytics/actions", headers=a).json()["actions"]
    tip = next(x for x in actions if x["action"] == "show_tooltip")
    assert (tip["helpful"], tip["not_helpful"]) == (18, 2)


def _counts(mood: str, action: str, helpful: int, unhelpful: int) -> ActionCounts:
    return ActionCounts(mood, action, helpful + unhelpful, helpful, unhelpful)  # type: ignore[arg-type]


def test_no_evidence_no_change() -> None:
    assert learn_policy([]) == {}
    assert learn_policy([_counts("frustrated", "show_tooltip", 9, 0)]) == {}  # < MIN_SAMPLES


def test_default_keeps_ties_and_small_margins() -> None:
    # the default has helped as often as the challenger: no switch
    even = [
        _counts("frustrated", "show_live_chat", 15, 5),
        _counts("frustrated", "show_tooltip", 15, 5),
    ]
    assert learn_policy(even) == {}


def test_unknown_actions_are_ignored_and_learning_is_deterministic() -> None:
    data = [
        _counts("confused", "call_the_ceo", 50, 0),
        _counts("confused", "show_tooltip", 1, 19),
        _counts("confused", "show_recommendations", 19, 1),
        _counts("confused", "show_live_chat", 19, 1),
    ]
    first = learn_policy(data)
    assert first == learn_policy(list(reversed(data)))
    assert first["confused"] in {"show_recommendations", "show_live_chat"}
    assert first == {"confused": "show_live_chat"}  # documented order breaks the tie


def test_apply_policy() -> None:
    signals: list[str] = ["rage_click_detected"]
    assert apply_policy({}, "frustrated", "show_live_chat", signals) == "show_live_chat"
    assert signals == ["rage_click_detected"]
    assert (
        apply_policy({"frustrated": "show_tooltip"}, "frustrated", "show_live_chat", signals)
        == "show_tooltip"
    )
    assert signals == ["rage_click_detected", LEARNED_SIGNAL]


def test_publishable_key_feedback_never_steers_the_policy(client: TestClient) -> None:
    """A publishable key is public: whoever reads it off a page must not be able to
    make the server offer every frustrated visitor a discount."""
    h = {"X-Api-Key": make_key(client)}
    pk = client.post(
        "/v1/keys/publishable", json={"allowed_origins": ["https://shop.test"]}, headers=h
    ).json()["publishable_key"]
    attacker = {"X-Api-Key": pk}  # no Origin header: curl
    _frustrated(client, h, "bait")
    for _ in range(3 * MIN_SAMPLES):
        _feedback(client, attacker, "bait", "show_exit_offer", ok=True)
    victim = _frustrated(client, h, "victim")
    assert victim["suggested_action"] == "show_live_chat"
    assert LEARNED_SIGNAL not in victim["signals"]
    # ...while it still shows in the effectiveness analytics
    actions = client.get("/v1/analytics/actions", headers=h).json()["actions"]
    offer = next(a for a in actions if a["action"] == "show_exit_offer")
    assert offer["helpful"] == 3 * MIN_SAMPLES


# -- the uplift first (issue 27) ------------------------------------------------------


def _uplift(
    mood: str, action: str, treated: tuple[int, int], control: tuple[int, int]
) -> list[UpliftCounts]:
    return [
        UpliftCounts(mood, action, False, treated[0], treated[1], 0.0),  # type: ignore[arg-type]
        UpliftCounts(mood, action, True, control[0], control[1], 0.0),  # type: ignore[arg-type]
    ]


def test_an_action_that_hurts_is_dropped_for_no_action() -> None:
    policy = learn_policy([], _uplift("frustrated", "show_live_chat", (300, 3), (300, 40)))
    assert policy == {"frustrated": "no_action"} and policy.by_uplift == {"frustrated"}
    signals: list[str] = []
    assert apply_policy(policy, "frustrated", "show_live_chat", signals) == "no_action"
    assert signals == [UPLIFT_SIGNAL]


def test_an_action_that_hurts_gives_way_to_the_default_when_feedback_had_replaced_it() -> None:
    fb = [ActionCounts("frustrated", "show_tooltip", 30, 28, 2)]  # type: ignore[arg-type]
    assert learn_policy(fb) == {"frustrated": "show_tooltip"}
    policy = learn_policy(fb, _uplift("frustrated", "show_tooltip", (300, 3), (300, 40)))
    assert "frustrated" not in policy and policy.by_uplift == {"frustrated"}
    signals: list[str] = []
    assert apply_policy(policy, "frustrated", "show_live_chat", signals) == "show_live_chat"
    assert signals == [UPLIFT_SIGNAL]


def test_an_action_that_helps_is_kept_whatever_the_feedback() -> None:
    fb = [
        ActionCounts("frustrated", "show_live_chat", 30, 0, 30),  # type: ignore[arg-type]
        ActionCounts("frustrated", "show_tooltip", 30, 29, 1),  # type: ignore[arg-type]
    ]
    assert learn_policy(fb) == {"frustrated": "show_tooltip"}
    policy = learn_policy(fb, _uplift("frustrated", "show_live_chat", (300, 40), (300, 3)))
    assert "frustrated" not in policy and policy.by_uplift == {"frustrated"}


def test_an_unclear_uplift_leaves_the_feedback_in_charge() -> None:
    fb = [ActionCounts("frustrated", "show_tooltip", 30, 29, 1)]  # type: ignore[arg-type]
    policy = learn_policy(fb, _uplift("frustrated", "show_live_chat", (40, 4), (40, 3)))
    assert policy == {"frustrated": "show_tooltip"} and not policy.by_uplift
    signals: list[str] = []
    apply_policy(policy, "frustrated", "show_live_chat", signals)
    assert signals == [LEARNED_SIGNAL]
    # Only one group: nothing to compare.
    lone = [UpliftCounts("frustrated", "show_live_chat", False, 500, 0, 0.0)]  # type: ignore[arg-type]
    assert not learn_policy([], lone).by_uplift
