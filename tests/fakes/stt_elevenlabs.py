"""A fake ElevenLabs realtime STT server: `xi-api-key`, base64 µ-law chunks, VAD commits."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from tests.fakes.stt_common import Connection, FakeSttServer
from websockets.asyncio.server import ServerConnection

__all__ = ["FakeElevenLabs"]


class FakeElevenLabs(FakeSttServer):
    """Checks the query and chunk shape; reports a bad key in-band with `auth_error`."""

    path = "/v1/speech-to-text/realtime"
    reject_in_protocol = True

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("xi-api-key") == self.api_key

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        if not self.authorized(conn.headers):
            await ws.send(json.dumps({"message_type": "auth_error", "error": "Invalid API key"}))
            await ws.close(1008, "auth")
            return
        self.expect_query(
            conn,
            {
                "model_id": "scribe_v2_realtime",
                "audio_format": "ulaw_8000",
                "commit_strategy": "vad",
                "include_timestamps": "false",
            },
        )
        await self.release_ready.wait()
        await ws.send(
            json.dumps({"message_type": "session_started", "session_id": "s1", "config": {}})
        )
        script = conn.script
        assert script is not None
        async for message in ws:
            self.check(isinstance(message, str), "binary frame (audio goes in JSON)")
            data = json.loads(message)
            self.check(
                data.get("message_type") == "input_audio_chunk", f"unexpected {message[:80]!r}"
            )
            self.check(data.get("sample_rate") == 8000, f"sample_rate {data.get('sample_rate')}")
            audio = base64.b64decode(data.get("audio_base_64", ""))
            if audio:
                self.took_audio(ws, conn, audio)
            for kind, text in script.feed(audio):
                if kind == "partial":
                    await ws.send(json.dumps({"message_type": "partial_transcript", "text": text}))
                elif kind == "final":
                    await ws.send(
                        json.dumps({"message_type": "committed_transcript", "text": text})
                    )
            if data.get("commit"):
                conn.messages.append(data)
                text = script.finish()[1] if script.in_speech else ""
                await ws.send(json.dumps({"message_type": "committed_transcript", "text": text}))
