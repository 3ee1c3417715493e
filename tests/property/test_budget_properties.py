"""Properties of the per-tick send budget and the priority policy (dunning.budget)."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.budget import Candidate, load_sending_policy, priority_key, tick_budget

POLICY = load_sending_policy()

rates = st.floats(min_value=0.001, max_value=2000, allow_nan=False)
minutes = st.integers(min_value=1, max_value=240)
shard_counts = st.integers(min_value=1, max_value=100)


@settings(max_examples=300, deadline=None)
@given(rate=rates, ttl=minutes, tick=minutes, shards=shard_counts, tick_number=st.integers(0, 10_000))
def test_the_shards_budgets_never_add_up_to_more_than_the_identity_can_send(
    rate: float, ttl: int, tick: int, shards: int, tick_number: int
) -> None:
    horizon = min(ttl, tick) * 60
    total = sum(
        tick_budget(rate, timedelta(minutes=ttl), timedelta(minutes=tick), shards, i, tick_number)
        for i in range(shards)
    )
    assert total == math.floor(rate * horizon)
    assert total <= rate * horizon


@settings(max_examples=200, deadline=None)
@given(rate=rates, shards=shard_counts, start=st.integers(0, 10_000))
def test_every_shard_gets_a_turn_within_as_many_ticks_as_there_are_shards(
    rate: float, shards: int, start: int
) -> None:
    ttl = tick = timedelta(minutes=15)
    if math.floor(rate * 900) < 1:
        return  # an identity that cannot send one message a tick has nothing to share
    for shard in range(shards):
        got = [tick_budget(rate, ttl, tick, shards, shard, start + n) for n in range(shards)]
        assert sum(got) >= 1, shard


candidates = st.builds(
    Candidate,
    step_offset_days=st.integers(-5, 60),
    next_contact_at=st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    held_back=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(candidates, min_size=2, max_size=30))
def test_a_loan_held_back_for_budget_goes_before_any_loan_that_was_not(batch: list[Candidate]) -> None:
    ordered = sorted(batch, key=lambda c: priority_key(POLICY, c))
    first_fresh = next((i for i, c in enumerate(ordered) if not c.held_back), len(ordered))
    assert all(c.held_back for c in ordered[:first_fresh])
    assert not any(c.held_back for c in ordered[first_fresh:])
