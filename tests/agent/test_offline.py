"""The offline responder: deterministic replies with no network."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from voicecall.agent import OfflineResponder, RunRequest, build_user_message, spoken_reply


def _request(message: str) -> RunRequest:
    return RunRequest(
        session_key="agent:main:voice:1555",
        agent_id="main",
        run_id="voice:c1:1",
        model="openai/gpt-4o-mini",
        system_prompt="sys",
        message=message,
        timeout_ms=1000,
    )


async def _reply(message: str) -> str:
    return spoken_reply(await OfflineResponder().run(_request(message)))


async def test_reply_follows_the_output_contract() -> None:
    """The payload is exactly a JSON object with a spoken string."""
    result = await OfflineResponder().run(_request("I'd like a table for two."))
    [payload] = result.payloads
    document = json.loads(payload.text)
    assert list(document) == ["spoken"]
    assert "a table for two" in document["spoken"]


async def test_says_goodbye_when_the_caller_does() -> None:
    """A caller's goodbye gets a goodbye."""
    assert "Goodbye" in await _reply("Thanks, goodbye.")


async def test_echoes_a_question() -> None:
    """A question is acknowledged with its gist."""
    assert "could you repeat the time" in await _reply("Could you repeat the time?")


async def test_reads_only_the_current_caller_message() -> None:
    """The opening context is not mistaken for the caller's words."""
    framed = build_user_message("Yes, that works for me.", ["Goodbye and hello!"])
    reply = await _reply(framed)
    assert "yes, that works for me" in reply
    assert "Goodbye" not in reply


async def test_acknowledges_keypresses_and_silence() -> None:
    """DTMF messages and empty messages get sensible replies."""
    assert "1 2 3" in await _reply("[caller pressed keys: 123]")
    assert "didn't catch" in await _reply("   ")


@given(st.text(max_size=200))
async def test_same_input_same_output(message: str) -> None:
    """The responder is deterministic and always says something."""
    first = await _reply(message)
    assert first == await _reply(message)
    assert first
