"""Mock carrier media streams (SPEC §3.6, §5.1, §10.3) against a live gateway on 127.0.0.1.

With ``streaming.enabled`` a mock conversation call gets a ``streamUrl`` in ``voicecall.status``
once answered (``ws://<bind>:<port>{streamPath}/<token>`` without a public URL); a Twilio-format
media socket on it is heard by the STT and lands in the call's transcript. The token is single
use and checked in constant time; mock calls without streaming, and ended calls, report no URL.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.carriers.mock_stream_harness import MakeMockHarness, MockStreamHarness, mock_harnesses
from tests.streaming.media import frames, speech

from voicecall.calls.status import status_of_json
from voicecall.carriers.mock import MockCarrier
from voicecall.carriers.mock.stream import MockStreamProtocol, SingleUseStreamTokens
from voicecall.config import VoicecallConfig

HELLO = "Hello, thanks for calling."


@pytest.fixture
async def make_mock_harness(tmp_path: Path) -> AsyncIterator[MakeMockHarness]:
    """``await make_mock_harness(script=[...], streaming=True, **mock)``: a live mock gateway."""
    async with mock_harnesses(tmp_path) as make:
        yield make


def user_lines(h: MockStreamHarness, call_id: str) -> list[str]:
    """The caller's final transcript lines."""
    return [e.text for e in h.record(call_id).transcript if e.speaker == "user" and e.is_final]


async def answered_stream_url(h: MockStreamHarness, call_id: str) -> str:
    """Wait until status reports the call's stream URL; it is only there once answered."""
    seen: dict[str, Any] = {}

    async def has_url() -> bool:
        seen.update(await h.status(call_id))
        return "streamUrl" in seen

    await h.until_async(has_url)
    assert "answeredAt" in seen
    return str(seen["streamUrl"])


def webhook_port(h: MockStreamHarness) -> int:
    return int(h.gateway.config.serve.port)


# -- status -----------------------------------------------------------------------------------


async def test_stream_url_is_minted_at_answer_and_reported_by_status(
    make_mock_harness: MakeMockHarness,
) -> None:
    """No streamUrl before call.answered; after it ws://bind:port/voice/stream/<token>, once."""
    h = await make_mock_harness(simulate=False)  # the test answers through a mock webhook
    call_id = await h.start_call()
    before = await h.status(call_id)
    assert "streamUrl" not in before and "answeredAt" not in before
    pcid = before["providerCallId"]

    event = {"type": "call.answered", "callId": call_id, "providerCallId": pcid}
    assert await h.post_event(event) == 200
    after = await h.status(call_id)
    url = after["streamUrl"]
    prefix = f"ws://127.0.0.1:{webhook_port(h)}/voice/stream/"
    assert url.startswith(prefix)
    token = url.removeprefix(prefix)
    assert len(token) == 22 and "/" not in token  # 16 random bytes, base64url
    assert h.carrier.stream_url(pcid) == url
    assert list(after)[-1] == "streamUrl"  # after the §10.3 fields

    # A redelivered answer mints nothing new; ending the call withdraws the URL.
    assert await h.post_event(dict(event)) == 200
    assert (await h.status(call_id))["streamUrl"] == url
    assert await h.rpc("voicecall.end", {"callId": call_id}) == {"success": True}
    ended = await h.status(call_id)
    assert "endedAt" in ended and "streamUrl" not in ended
    async with h.media(url) as media:  # the call is over: nothing answers on its URL
        await media.start(pcid, None)
        assert await media.closed() == (1008, "Unknown call")


async def test_simulated_answer_mints_the_stream_url(make_mock_harness: MakeMockHarness) -> None:
    """The simulated callee's answer publishes the URL too."""
    h = await make_mock_harness()
    call_id = await h.start_call()
    url = await answered_stream_url(h, call_id)
    assert url.startswith(f"ws://127.0.0.1:{webhook_port(h)}/voice/stream/")


async def test_mock_call_without_streaming_has_no_stream(
    make_mock_harness: MakeMockHarness,
) -> None:
    """Streaming off: an answered mock call reports no streamUrl and stream sockets are refused."""
    h = await make_mock_harness(streaming=False)
    call_id = await h.start_call()

    async def answered() -> bool:
        return "answeredAt" in await h.status(call_id)

    await h.until_async(answered)
    await h.carrier.wait_delivered()
    status = await h.status(call_id)
    assert "streamUrl" not in status
    assert h.carrier.stream_protocol() is None and h.carrier.stream_tokens is None
    url = f"ws://127.0.0.1:{webhook_port(h)}/voice/stream/{secrets.token_urlsafe(16)}"
    async with h.media(url) as media:
        await media.start(status["providerCallId"], None)
        assert await media.closed() == (1008, "Unknown call")


def test_status_reports_stream_url_for_live_mock_calls_only() -> None:
    """Other carriers' and ended calls' metadata never leaks a streamUrl into status."""
    live = {
        "callId": "c1",
        "provider": "mock",
        "state": "listening",
        "metadata": {"streamUrl": "ws://127.0.0.1:3334/voice/stream/tok"},
    }
    assert status_of_json(live)["streamUrl"] == "ws://127.0.0.1:3334/voice/stream/tok"
    assert "streamUrl" not in status_of_json({**live, "provider": "twilio"})
    assert "streamUrl" not in status_of_json({**live, "endedAt": 1})
    assert "streamUrl" not in status_of_json({**live, "metadata": {"streamUrl": 5}})


def test_stream_url_follows_the_public_url() -> None:
    """With an https publicUrl behind a path prefix the URL is wss on the public host."""
    config = VoicecallConfig.model_validate(
        {
            "provider": "mock",
            "publicUrl": "https://gw.example.com/edge/voice/webhook",
            "streaming": {"enabled": True, "streamPath": "/media/"},
        }
    )
    carrier = MockCarrier(config)
    assert carrier._stream_base_url() == "wss://gw.example.com/edge/media"


# -- frames and tokens --------------------------------------------------------------------------


def test_mock_frames_are_twilio_media_streams_with_the_token_in_the_path() -> None:
    """The codec is Twilio's (streamSid on every outbound frame); the token is a path segment."""
    protocol = MockStreamProtocol()
    assert protocol.carrier == "mock" and protocol.token_in_path is True
    start = (
        '{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"mock-c1",'
        '"customParameters":{}}}'
    )
    started: Any = protocol.parse(start)
    assert (started.stream_id, started.provider_call_id) == ("MZ1", "mock-c1")
    assert protocol.build_media("AAAA") == (
        '{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}}'
    )
    assert protocol.build_mark("m1") == '{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}'
    assert protocol.build_clear() == '{"event":"clear","streamSid":"MZ1"}'


def test_stream_tokens_are_single_use() -> None:
    """A matching token is consumed; a wrong one is refused and does not burn the right one."""
    tokens = SingleUseStreamTokens()
    token = tokens.mint("mock-c1")
    assert not tokens.check("mock-c1", "x" + token[1:])
    assert not tokens.check("mock-c1", None)
    assert tokens.check("mock-c1", token)
    assert not tokens.check("mock-c1", token)


# -- live media -----------------------------------------------------------------------------------


async def test_twilio_media_on_the_stream_url_becomes_the_callers_transcript(
    make_mock_harness: MakeMockHarness,
) -> None:
    """start + media frames on the minted URL reach the STT; the final is a user line."""
    h = await make_mock_harness(script=[HELLO])
    call_id = await h.start_call()
    url = await answered_stream_url(h, call_id)
    pcid = (await h.status(call_id))["providerCallId"]
    runtime: Any = h.gateway.runtime
    async with h.media(url) as media:
        await media.start(pcid, None)
        await h.until(lambda: runtime.current_stream_id(call_id) == media.stream_sid)
        await media.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h, call_id) == [HELLO])

        # While the stream is the callee, the simulated callee answers no listen turn.
        await h.carrier.start_listening(pcid, None)
        simulated = h.carrier.call(pcid)
        assert simulated is not None
        assert "reply" not in simulated.timers and not simulated.listening
    assert h.stt.connections and len(h.stt.audio) > 0
    assert not h.stt.problems
    kinds = [e["type"] for e in h.record(call_id).metadata["recentTalkEvents"]]
    assert "transcript.done" in kinds


async def test_without_a_stream_the_simulated_callee_still_answers_turns(
    make_mock_harness: MakeMockHarness,
) -> None:
    """Streaming on, no socket connected: continue is heard as text and answered by the script."""
    h = await make_mock_harness()
    call_id = await h.start_call()
    await answered_stream_url(h, call_id)
    result = await h.rpc("voicecall.continue", {"callId": call_id, "message": "Does 3pm work?"})
    assert result == {"success": True, "transcript": "Yes, that works for me."}


async def test_a_token_opens_one_stream_and_a_wrong_token_none(
    make_mock_harness: MakeMockHarness,
) -> None:
    """A second socket with the used token, or any socket with a wrong token, gets 1008."""
    h = await make_mock_harness()
    call_id = await h.start_call()
    url = await answered_stream_url(h, call_id)
    pcid = (await h.status(call_id))["providerCallId"]
    runtime: Any = h.gateway.runtime

    wrong = url.rpartition("/")[0] + "/" + secrets.token_urlsafe(16)
    async with h.media(wrong) as intruder:
        await intruder.start(pcid, None)
        assert await intruder.closed() == (1008, "Unauthorized stream")

    async with h.media(url) as first:
        await first.start(pcid, None)
        await h.until(lambda: runtime.current_stream_id(call_id) == first.stream_sid)
        async with h.media(url) as second:
            await second.start(pcid, None)
            assert await second.closed() == (1008, "Unauthorized stream")
        assert runtime.current_stream_id(call_id) == first.stream_sid  # not superseded
