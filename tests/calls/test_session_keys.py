"""Session keys per §9.4."""

from __future__ import annotations

import pytest

from voicecall.calls.session_keys import session_key_for_call


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        ("global", "global"),
        ("UNKNOWN", "unknown"),
        ("main", "agent:bot:main"),
        ("agent:Bot:custom", "agent:bot:custom"),
        ("Team-Room", "agent:bot:team-room"),
    ],
)
def test_explicit_session_keys(explicit: str, expected: str) -> None:
    """An explicit key is kept, expanded or prefixed, and always lower-cased."""
    key = session_key_for_call(
        agent_id="Bot", call_id="C1", remote_number="+1555", explicit_key=explicit
    )
    assert key == expected


@pytest.mark.parametrize(
    ("scope", "remote", "expected"),
    [
        ("main", "+15550001111", "agent:bot:main"),
        ("per-call", "+15550001111", "agent:bot:voice:call:c1"),
        ("per-phone", "+1 (555) 000-1111", "agent:bot:voice:15550001111"),
        ("per-phone", "anonymous", "agent:bot:voice:call:c1"),
        ("per-phone", None, "agent:bot:voice:call:c1"),
    ],
)
def test_scoped_session_keys(scope: str, remote: str | None, expected: str) -> None:
    """Without an explicit key, the scope decides; per-phone without digits falls back per call."""
    key = session_key_for_call(
        agent_id="BOT",
        call_id="C1",
        remote_number=remote,
        scope=scope,  # type: ignore[arg-type]
    )
    assert key == expected
