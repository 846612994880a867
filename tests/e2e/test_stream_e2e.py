"""`voicecall serve` with Twilio media streams: a caller's speech ends in the call record."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.stt_common import API_KEY
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.streaming.media import StreamingTwilio, TwilioMediaClient, frames, speech

pytestmark = pytest.mark.e2e

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
CALLEE = "+15550003333"
OPENING = "Hello, this is your assistant. Does 3pm work for you?"
ANSWER = "That works for me."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """A `voicecall serve` child on provider twilio with streaming through Deepgram."""

    def __init__(self, home: Path, twilio: StreamingTwilio, deepgram: FakeDeepgram) -> None:
        self.home = home
        self.rpc_port = free_port()
        port = free_port()
        config: dict[str, Any] = {
            "provider": "twilio",
            "fromNumber": FROM,
            "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": twilio.base_url},
            "publicUrl": f"http://127.0.0.1:{port}/voice/webhook",
            "webhookSecurity": {"allowPrivateWebhookUrl": True},
            "serve": {"port": port},
            "rpc": {"port": self.rpc_port},
            "streaming": {
                "enabled": True,
                "provider": "deepgram",
                "providers": {"deepgram": {"apiKey": API_KEY, "baseUrl": deepgram.base_url}},
            },
        }
        (home / "config.json5").write_text(json.dumps(config))
        env = {**os.environ, "VOICECALL_HOME": str(home)}
        env.pop("VOICECALL_CONFIG", None)
        env.pop("DEEPGRAM_API_KEY", None)
        self.log = open(home / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voicecall.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{self.rpc_port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError((self.home / "serve.log").read_text())

    async def rpc(self, session: aiohttp.ClientSession, method: str, **params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with session.post(f"http://127.0.0.1:{self.rpc_port}/rpc", json=body) as r:
            reply = await r.json()
        assert "result" in reply, reply
        return reply["result"]

    def records(self, call_id: str) -> list[dict[str, Any]]:
        raw = (self.home / "calls.jsonl").read_text().splitlines()
        return [
            r for r in (json.loads(line) for line in raw if line.strip()) if r["callId"] == call_id
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
async def parts(
    tmp_path: Path,
) -> AsyncIterator[tuple[Serve, StreamingTwilio, aiohttp.ClientSession]]:
    twilio = StreamingTwilio(ACCOUNT, TOKEN)
    await twilio.start()
    async with FakeDeepgram([ANSWER]) as deepgram, aiohttp.ClientSession() as session:
        serve = Serve(tmp_path, twilio, deepgram)  # type: ignore[arg-type]
        try:
            await serve.ready(session)
            yield serve, twilio, session
        finally:
            serve.stop()
            await twilio.close()


async def until(predicate: Any, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_outbound_conversation_transcribes_the_callee_over_a_media_stream(
    parts: tuple[Serve, StreamingTwilio, aiohttp.ClientSession],
) -> None:
    """The voice fetch gets T-STREAM; the callee's streamed answer is the record's user line."""
    serve, twilio, session = parts
    result = await serve.rpc(
        session, "voicecall.initiate", to=CALLEE, message=OPENING, mode="conversation"
    )
    call_id = result["callId"]
    sid = next(iter(twilio.calls))
    doc = await twilio.stream_doc(sid)
    assert doc.url.startswith("ws://127.0.0.1:") and doc.url.endswith("/voice/stream")
    async with TwilioMediaClient(session, doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(frames(speech("appointment")))

        def answered() -> bool:
            records = serve.records(call_id)
            return any(
                t["speaker"] == "user" and t["text"] == ANSWER for t in records[-1]["transcript"]
            )

        await until(answered)
        await twilio.hang_up(sid)
        assert await media.closed() == (1000, "Call ended")
    await until(lambda: serve.records(call_id)[-1].get("endedAt") is not None)
    record = serve.records(call_id)[-1]
    assert record["endReason"] == "completed"
    assert (
        record["transcript"][0]["speaker"] == "bot" and record["transcript"][0]["text"] == OPENING
    )
    assert [t["text"] for t in record["transcript"] if t["speaker"] == "user"] == [ANSWER]
