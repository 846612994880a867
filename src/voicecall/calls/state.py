"""Call states, end reasons and the one table that says which state changes apply (SPEC §2.3).

Rules of the machine:

1. Non-terminal states are ordered ``initiated < ringing < answered < active < speaking,
   listening``; ``speaking`` and ``listening`` share a rank and alternate freely.
2. From a non-terminal state, a requested state of *higher* rank is applied, and every
   terminal state is applied (the terminal state is the end reason).
3. A requested state of the same or a lower rank is silently ignored: carriers deliver
   duplicates and out-of-order webhooks, and the call never moves backwards.
4. A terminal state absorbs everything; it is never left.
5. A (current, requested) pair missing from the table is a bug and raises.
"""

from __future__ import annotations

import enum

from voicecall.errors import CallError

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "CallState",
    "EndReason",
    "InvalidTransitionError",
    "Outcome",
    "is_terminal",
    "next_state",
    "rank",
]


class CallState(enum.StrEnum):
    """Where a call is; the terminal members double as end reasons."""

    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    ACTIVE = "active"
    SPEAKING = "speaking"
    LISTENING = "listening"
    COMPLETED = "completed"
    HANGUP_USER = "hangup-user"
    HANGUP_BOT = "hangup-bot"
    TIMEOUT = "timeout"
    ERROR = "error"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"


class EndReason(enum.StrEnum):
    """Why a call ended; each member names the terminal state it leaves the call in."""

    COMPLETED = "completed"
    HANGUP_USER = "hangup-user"
    HANGUP_BOT = "hangup-bot"
    TIMEOUT = "timeout"
    ERROR = "error"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"

    @property
    def state(self) -> CallState:
        """The terminal state this reason ends the call in."""
        return CallState(self.value)


class Outcome(enum.Enum):
    """What applying a requested state does."""

    APPLIED = "applied"
    IGNORED = "ignored"


class InvalidTransitionError(CallError, ValueError):
    """A state pair the transition table does not list (a bug in our code)."""


TERMINAL_STATES: frozenset[CallState] = frozenset(CallState(r.value) for r in EndReason)

_S = CallState
_NON_TERMINAL_RANK: dict[CallState, int] = {
    _S.INITIATED: 0,
    _S.RINGING: 1,
    _S.ANSWERED: 2,
    _S.ACTIVE: 3,
    _S.SPEAKING: 4,
    _S.LISTENING: 4,
}

# The §2.3 table, row by row: current state -> (applied, silently ignored).
_ROWS: dict[CallState, tuple[frozenset[CallState], frozenset[CallState]]] = {
    _S.INITIATED: (
        frozenset({_S.RINGING, _S.ANSWERED, _S.ACTIVE, _S.SPEAKING, _S.LISTENING}),
        frozenset({_S.INITIATED}),
    ),
    _S.RINGING: (
        frozenset({_S.ANSWERED, _S.ACTIVE, _S.SPEAKING, _S.LISTENING}),
        frozenset({_S.INITIATED, _S.RINGING}),
    ),
    _S.ANSWERED: (
        frozenset({_S.ACTIVE, _S.SPEAKING, _S.LISTENING}),
        frozenset({_S.INITIATED, _S.RINGING, _S.ANSWERED}),
    ),
    _S.ACTIVE: (
        frozenset({_S.SPEAKING, _S.LISTENING}),
        frozenset({_S.INITIATED, _S.RINGING, _S.ANSWERED, _S.ACTIVE}),
    ),
    _S.SPEAKING: (
        frozenset({_S.LISTENING}),
        frozenset({_S.INITIATED, _S.RINGING, _S.ANSWERED, _S.ACTIVE, _S.SPEAKING}),
    ),
    _S.LISTENING: (
        frozenset({_S.SPEAKING}),
        frozenset({_S.INITIATED, _S.RINGING, _S.ANSWERED, _S.ACTIVE, _S.LISTENING}),
    ),
}


def _build_table() -> dict[tuple[CallState, CallState], Outcome]:
    table: dict[tuple[CallState, CallState], Outcome] = {}
    for current, (applied, ignored) in _ROWS.items():
        for requested in applied | TERMINAL_STATES:
            table[(current, requested)] = Outcome.APPLIED
        for requested in ignored:
            table[(current, requested)] = Outcome.IGNORED
    for current in TERMINAL_STATES:
        for requested in CallState:
            table[(current, requested)] = Outcome.IGNORED
    return table


TRANSITIONS: dict[tuple[CallState, CallState], Outcome] = _build_table()


def is_terminal(state: CallState) -> bool:
    """Whether ``state`` is an end state (the call is over)."""
    return state in TERMINAL_STATES


def next_state(current: CallState, requested: CallState) -> tuple[CallState, Outcome]:
    """The state after requesting ``requested`` in ``current``, and whether it applied."""
    try:
        outcome = TRANSITIONS[(current, requested)]
    except KeyError:
        raise InvalidTransitionError(
            f"no transition from {current!r} to {requested!r} in the call state table"
        ) from None
    return (requested if outcome is Outcome.APPLIED else current), outcome


def rank(state: CallState) -> int:
    """Progress rank of a state: non-terminal order, terminals highest."""
    return _NON_TERMINAL_RANK.get(state, 5)
