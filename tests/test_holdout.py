"""The holdout group hash (sessionmood_server/holdout.py): the split matches
the share, is fixed per key, and a visitor cannot pick a group without it."""

from __future__ import annotations

import uuid

import pytest

from sessionmood_server.holdout import MAX_SHARE, held_out, position

KEY = b"a deployment key"


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5])
def test_the_split_is_within_two_points_of_the_share_over_10000_ids(share: float) -> None:
    ids = [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(10_000)]
    held = sum(held_out(KEY, 42, sid, share) for sid in ids)
    assert abs(held / len(ids) - share) <= 0.02, held
    # Sequential ids, as a backend's user ids: still the share.
    counted = sum(held_out(KEY, 42, f"user_{i}", share) for i in range(10_000))
    assert abs(counted / 10_000 - share) <= 0.02, counted


def test_the_group_is_fixed_by_key_tenant_and_id() -> None:
    assert position(KEY, 1, "s") == position(KEY, 1, "s")
    assert position(KEY, 1, "s") != position(KEY, 2, "s")
    assert position(KEY, 1, "s") != position(b"another key", 1, "s")
    assert 0 <= position(KEY, 1, "s") < 1


def test_groups_nest_as_the_share_grows_and_none_is_held_out_at_zero() -> None:
    ids = [f"v{i}" for i in range(2000)]
    small = {sid for sid in ids if held_out(KEY, 3, sid, 0.1)}
    large = {sid for sid in ids if held_out(KEY, 3, sid, MAX_SHARE)}
    assert small < large
    assert not any(held_out(KEY, 3, sid, 0.0) for sid in ids)


def test_without_the_key_the_group_cannot_be_predicted() -> None:
    # An unkeyed guess (the same hash with an empty key) agrees with the keyed
    # group no more than chance would.
    ids = [f"guess{i}" for i in range(4000)]
    agree = sum(held_out(KEY, 5, s, 0.5) == held_out(b"", 5, s, 0.5) for s in ids)
    assert 0.45 < agree / len(ids) < 0.55
