"""Twilio media streams into a live gateway: audio to transcripts, auth, caps, grace, garbage."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from tests.streaming.conftest import GREETING, MakeHarness
from tests.streaming.media import Frame, frames, speech


def user_lines(record: object) -> list[str]:
    """The caller's final transcript lines of a record."""
    return [e.text for e in record.transcript if e.speaker == "user" and e.is_final]  # type: ignore[attr-defined]


@pytest.mark.parametrize("provider", ["deepgram", "openai"])
async def test_caller_utterance_becomes_final_user_transcript(
    make_harness: MakeHarness, provider: str
) -> None:
    """Speech streamed at real-time pace over Twilio ends as the caller's final transcript."""
    h = await make_harness(provider, script=["Hello, thanks for calling."])
    sid, doc = await h.inbound_call()
    assert doc.url.startswith("ws://") and doc.url.endswith("/voice/stream")
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h.record(sid)) == ["Hello, thanks for calling."])
    record = h.record(sid)
    bot = [e.text for e in record.transcript if e.speaker == "bot"]
    assert bot[0] == GREETING  # claimed once transcription was ready
    kinds = [e["type"] for e in record.metadata["recentTalkEvents"]]
    assert "session.started" in kinds and "transcript.done" in kinds
    snapshots = h.persisted(record.call_id)
    assert any(
        t["speaker"] == "user" and t["text"] == "Hello, thanks for calling."
        for t in snapshots[-1]["transcript"]
    )
    assert not h.stt.problems


async def test_bursts_gaps_and_duplicates_are_smoothed_and_counted(
    make_harness: MakeHarness,
) -> None:
    """Reordered, duplicated, bursty and missing frames still transcribe; /metrics counts them."""
    h = await make_harness("deepgram", script=["Yes.", "That works for me."])
    sid, doc = await h.inbound_call()
    clip = frames(speech("two_utterances"))
    plan: list[Frame | None] = []
    for index, frame in enumerate(clip):
        if index in (30, 31, 32):
            plan.append(None)  # three frames lost on the way
            continue
        plan.append(frame)
        if index % 25 == 0:
            plan.append(frame)  # duplicates
    late = clip[31]
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(plan[:100])
        burst = [f for f in plan[100:150] if f is not None]
        for frame in burst:  # a burst: half a second at once
            await media.media(frame)
        await media.media(late)  # far too late to be played
        await media.play(plan[150:])
        await h.until(lambda: user_lines(h.record(sid)) == ["Yes.", "That works for me."])
        text = await h.metrics()
    call_id = h.record(sid).call_id

    def counter(name: str) -> float:
        pattern = (
            rf'voicecall_media_jitter_frames_total\{{callId="{call_id}",counter="{name}"\}} (\S+)'
        )
        found = re.search(pattern, text)
        assert found is not None, text
        return float(found.group(1))

    assert counter("lost") == 3
    assert counter("concealed") == 3
    assert counter("late") == 1


async def test_garbage_frames_are_counted_and_never_crash_the_stream(
    make_harness: MakeHarness,
) -> None:
    """Bad JSON, bad base64, wrong sizes and unknown events are skipped; speech still arrives."""
    h = await make_harness("deepgram", script=["Hello, thanks for calling."])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.send_raw("{not json")
        await media.send_raw("[1, 2]")
        await media.send({"event": "media", "media": {"chunk": "1", "payload": "@@@@"}})
        await media.send({"event": "media", "media": {"chunk": "1", "payload": "AAAA"}})
        await media.send({"event": "media", "media": {"chunk": "x", "payload": "AAAA"}})
        await media.send({"event": "wobble"})
        await media.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h.record(sid)) == ["Hello, thanks for calling."])
        await media.stop()
        await media.closed()
    await h.until(
        lambda: (
            "voicecall_media_stream_malformed_frames_total" in h.gateway.metrics.render().decode()
        )
    )
    text = await h.metrics()
    for kind, count in (("json", 2), ("base64", 1), ("size", 1), ("field", 1), ("event", 1)):
        assert f'voicecall_media_stream_malformed_frames_total{{kind="{kind}"}} {count}.0' in text


async def test_url_safe_base64_without_padding_is_accepted(make_harness: MakeHarness) -> None:
    """Payloads in the URL-safe alphabet without padding are decoded like canonical ones."""
    import base64

    h = await make_harness("deepgram", script=["Hello, thanks for calling."])
    sid, doc = await h.inbound_call()
    clip = [
        Frame(
            f.chunk,
            f.timestamp_ms,
            base64.urlsafe_b64encode(base64.b64decode(f.payload)).decode().rstrip("="),
        )
        for f in frames(speech("hello"))
    ]
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(clip)
        await h.until(lambda: user_lines(h.record(sid)) == ["Hello, thanks for calling."])
    assert "voicecall_media_stream_malformed_frames_total{" not in await h.metrics()


async def test_dtmf_on_the_stream_reaches_the_call(make_harness: MakeHarness) -> None:
    """A key pressed during the stream is recorded on the call."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.dtmf("7")
        await h.until(lambda: h.record(sid).metadata.get("dtmfReceived") == "7")


@pytest.mark.parametrize(
    ("call_sid", "token", "reason", "metric"),
    [
        ("CAunknown", "whatever", "Unknown call", "unknown_call"),
        ("known", "wrong-token", "Unauthorized stream", "unauthorized"),
        ("known", None, "Unauthorized stream", "unauthorized"),
        (None, "token", "Missing call id", "missing_call_id"),
    ],
)
async def test_start_is_authenticated(
    make_harness: MakeHarness, call_sid: str | None, token: str | None, reason: str, metric: str
) -> None:
    """A start for an unknown call, without a call id or with a bad token is closed with 1008."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid if call_sid == "known" else call_sid, token)
        assert await media.closed() == (1008, reason)
    assert f'voicecall_media_stream_rejections_total{{reason="{metric}"}} 1.0' in await h.metrics()
    assert h.record(sid).ended_at_ms is None


async def test_token_in_the_query_is_the_fallback(make_harness: MakeHarness) -> None:
    """Without a token parameter, ``?token=`` on the stream URL authenticates the start."""
    h = await make_harness("deepgram", script=["Hello, thanks for calling."])
    sid, doc = await h.inbound_call()
    async with h.media(f"{doc.url}?token={doc.token}") as media:
        await media.start(sid, None)
        await media.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h.record(sid)) == ["Hello, thanks for calling."])


async def test_second_start_closes_the_stream(make_harness: MakeHarness) -> None:
    """A second start on the same socket is closed with 1008 Duplicate start."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.start(sid, doc.token)
        assert await media.closed() == (1008, "Duplicate start")


async def test_no_start_in_time_closes_the_socket(make_harness: MakeHarness) -> None:
    """A socket that sends no valid start within preStartTimeoutMs is closed with 1008."""
    h = await make_harness("deepgram", preStartTimeoutMs=300)
    async with h.media(f"{h.webhook_url.rsplit('/voice/', 1)[0]}/voice/stream") as media:
        await media.connected()
        assert await media.closed() == (1008, "Start timeout")
    assert (
        'voicecall_media_stream_rejections_total{reason="start_timeout"} 1.0' in await h.metrics()
    )


async def test_pending_connections_per_ip_are_capped(make_harness: MakeHarness) -> None:
    """Over maxPendingConnectionsPerIp, a new socket is closed with 1013 before any start."""
    h = await make_harness("deepgram", maxPendingConnectionsPerIp=2)
    url = f"{h.webhook_url.rsplit('/voice/', 1)[0]}/voice/stream"
    async with h.media(url) as one, h.media(url) as two:
        await one.connected()
        await two.connected()
        await h.until(
            lambda: h.gateway.streams is not None and h.gateway.streams.pending_count == 2
        )
        async with h.media(url) as three:
            assert await three.closed() == (1013, "Too many pending media stream connections")
    text = await h.metrics()
    assert 'voicecall_media_stream_rejections_total{reason="max_pending_per_ip"} 1.0' in text


async def test_total_pending_connections_are_capped(make_harness: MakeHarness) -> None:
    """Over maxPendingConnections, a new socket is closed with 1013."""
    h = await make_harness("deepgram", maxPendingConnections=1)
    url = f"{h.webhook_url.rsplit('/voice/', 1)[0]}/voice/stream"
    async with h.media(url) as one:
        await one.connected()
        await h.until(
            lambda: h.gateway.streams is not None and h.gateway.streams.pending_count == 1
        )
        async with h.media(url) as two:
            assert await two.closed() == (1013, "Too many pending media stream connections")
    assert 'voicecall_media_stream_rejections_total{reason="max_pending"} 1.0' in await h.metrics()


async def test_connections_over_the_cap_are_refused_before_upgrading(
    make_harness: MakeHarness,
) -> None:
    """Over maxConnections, the upgrade is answered with HTTP 503."""
    h = await make_harness("deepgram", maxConnections=1)
    url = f"{h.webhook_url.rsplit('/voice/', 1)[0]}/voice/stream"
    async with h.media(url) as one:
        await one.connected()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await h.session.ws_connect(url)
        assert refused.value.status == 503
    assert (
        'voicecall_media_stream_rejections_total{reason="max_connections"} 1.0' in await h.metrics()
    )


async def test_oversized_frame_closes_with_1009(make_harness: MakeHarness) -> None:
    """A frame over 64 KiB closes the socket with 1009."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.send_raw("x" * (64 * 1024 + 1))
        code, _ = await media.closed()
        assert code == 1009


async def test_other_paths_are_not_media_streams(make_harness: MakeHarness) -> None:
    """A websocket upgrade anywhere but the stream path is not accepted."""
    h = await make_harness("deepgram")
    url = f"{h.webhook_url.rsplit('/voice/', 1)[0]}/voice/elsewhere"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await h.session.ws_connect(url)
    assert refused.value.status == 404


async def test_reconnect_within_grace_keeps_the_call(make_harness: MakeHarness) -> None:
    """A stream that drops and reconnects within 2 s keeps the call and its transcription."""
    h = await make_harness("deepgram", script=["Hello, thanks for calling."])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as first:
        await first.start(sid, doc.token)
    async with h.media(doc.url) as second:
        await second.start(sid, doc.token)
        await asyncio.sleep(2.5)  # longer than the grace
        assert h.record(sid).ended_at_ms is None
        await second.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h.record(sid)) == ["Hello, thanks for calling."])


async def test_newer_stream_supersedes_and_the_stale_close_is_ignored(
    make_harness: MakeHarness,
) -> None:
    """A second stream for the call closes the first; the first's close does not end the call."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as first, h.media(doc.url) as second:
        await first.start(sid, doc.token)
        await h.until(lambda: bool(h.gateway.streams and h.gateway.streams.streams()))
        await second.start(sid, doc.token)
        assert await first.closed() == (1000, "Superseded by a newer stream")
        await asyncio.sleep(2.5)  # longer than the grace
        assert h.record(sid).ended_at_ms is None
        runtime = h.gateway.runtime
        assert runtime is not None
        assert runtime.current_stream_id(h.record(sid).call_id) == second.stream_sid  # type: ignore[attr-defined]


async def test_stream_gone_past_grace_ends_the_call(make_harness: MakeHarness) -> None:
    """When the only stream closes and none comes back within 2 s, the call ends."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    call_id = h.record(sid).call_id
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await h.until(lambda: bool(h.gateway.streams and h.gateway.streams.streams()))
    runtime = h.gateway.runtime
    assert runtime is not None
    await h.until(lambda: runtime.get_record(call_id).ended_at_ms is not None)  # type: ignore[attr-defined]
    assert runtime.get_record(call_id).end_reason == "hangup-bot"  # type: ignore[attr-defined]


async def test_transcription_that_cannot_connect_fails_the_stream_and_the_call(
    make_harness: MakeHarness,
) -> None:
    """A provider that refuses the key closes the stream with 1011 and ends the call in error."""
    h = await make_harness("deepgram", stt_api_key="another-key")
    sid, doc = await h.inbound_call()
    call_id = h.record(sid).call_id
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        assert await media.closed() == (1011, "STT connection failed")
    runtime = h.gateway.runtime
    assert runtime is not None
    await h.until(lambda: runtime.get_record(call_id).ended_at_ms is not None)  # type: ignore[attr-defined]
    assert runtime.get_record(call_id).end_reason == "error"  # type: ignore[attr-defined]


async def test_shutdown_closes_streams_with_1001(make_harness: MakeHarness) -> None:
    """Stopping the gateway closes open media streams with 1001 and keeps the call up."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await h.until(lambda: bool(h.gateway.streams and h.gateway.streams.streams()))
        stopping = asyncio.ensure_future(h.gateway.stop())
        assert await media.closed() == (1001, "Server shutting down")
        await stopping
