"""The §2.3 call-state table, checked exhaustively and by random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.state import (
    TERMINAL_STATES,
    CallState,
    EndReason,
    InvalidTransitionError,
    Outcome,
    next_state,
    rank,
)

NON_TERMINAL = [s for s in CallState if s not in TERMINAL_STATES]
ORDER = ["initiated", "ringing", "answered", "active", "speaking", "listening"]


def _expected(current: CallState, requested: CallState) -> Outcome:
    if current in TERMINAL_STATES:
        return Outcome.IGNORED
    if requested in TERMINAL_STATES:
        return Outcome.APPLIED
    if {current.value, requested.value} == {"speaking", "listening"}:
        return Outcome.APPLIED
    cur, req = ORDER.index(current.value), ORDER.index(requested.value)
    return Outcome.APPLIED if req > cur and not (cur == 4 and req == 5) else Outcome.IGNORED


@pytest.mark.parametrize("requested", list(CallState), ids=str)
@pytest.mark.parametrize("current", list(CallState), ids=str)
def test_every_state_pair_follows_the_spec_table(current: CallState, requested: CallState) -> None:
    """Each (state, requested state) pair is applied or ignored exactly as §2.3 says."""
    state, outcome = next_state(current, requested)
    assert outcome is _expected(current, requested)
    assert state is (requested if outcome is Outcome.APPLIED else current)


def test_end_reasons_are_exactly_the_terminal_states() -> None:
    """Every end reason names a terminal state and every terminal state is an end reason."""
    assert {r.state for r in EndReason} == TERMINAL_STATES
    assert {s.value for s in TERMINAL_STATES} == {
        "completed", "hangup-user", "hangup-bot", "timeout", "error",
        "failed", "no-answer", "busy", "voicemail",
    }  # fmt: skip


def test_a_pair_missing_from_the_table_raises() -> None:
    """A value that is not a call state cannot be looked up and raises."""
    with pytest.raises(InvalidTransitionError):
        next_state(CallState.RINGING, "bogus")  # type: ignore[arg-type]


def test_duplicates_and_out_of_order_updates_are_ignored() -> None:
    """A repeated or late 'ringing' after 'answered' does not move the call back."""
    state = CallState.INITIATED
    for requested in ["answered", "ringing", "answered", "initiated"]:
        state, _ = next_state(state, CallState(requested))
    assert state is CallState.ANSWERED


@given(st.lists(st.sampled_from(list(CallState)), max_size=40))
def test_random_sequences_never_leave_terminal_nor_move_backwards(
    sequence: list[CallState],
) -> None:
    """Whatever arrives, rank never decreases and a terminal state is final."""
    state = CallState.INITIATED
    for requested in sequence:
        before = state
        state, _ = next_state(state, requested)
        assert rank(state) >= rank(before)
        if before in TERMINAL_STATES:
            assert state is before
