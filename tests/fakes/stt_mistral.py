"""A fake Mistral Voxtral realtime server: session.created/update, base64 audio, text deltas."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from tests.fakes.stt_common import Connection, FakeSttServer
from websockets.asyncio.server import ServerConnection

__all__ = ["FakeMistral"]


class FakeMistral(FakeSttServer):
    """No turn detection: deltas as speech is heard, a segment only when the client flushes."""

    path = "/v1/audio/transcriptions/realtime"

    def __init__(self, *args: Any, segments: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.segments = segments
        self.flushes = 0

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.api_key}"

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        self.check(bool(conn.query.get("model")), "no model in the query")
        await ws.send(
            json.dumps(
                {
                    "type": "session.created",
                    "session": {
                        "request_id": "r1",
                        "model": conn.query.get("model"),
                        "audio_format": {"encoding": "pcm_s16le", "sample_rate": 16000},
                        "target_streaming_delay_ms": None,
                    },
                }
            )
        )
        script = conn.script
        assert script is not None
        updated = False
        said = ""  # text of the current utterance already sent as deltas
        async for message in ws:
            data = json.loads(message)
            kind = data.get("type")
            if kind == "session.update":
                fmt = data.get("session", {}).get("audio_format")
                self.check(
                    fmt == {"encoding": "pcm_mulaw", "sample_rate": 8000}, f"audio_format {fmt}"
                )
                self.check("target_streaming_delay_ms" in data.get("session", {}), "no delay")
                await self.release_ready.wait()
                await ws.send(
                    json.dumps({"type": "session.updated", "session": data.get("session")})
                )
                updated = True
                continue
            self.check(updated, f"{kind} before session.update")
            if kind == "input_audio.append":
                audio = base64.b64decode(data["audio"])
                self.took_audio(ws, conn, audio)
                for event, text in script.feed(audio):
                    if event == "partial":
                        said = text
                        await ws.send(
                            json.dumps({"type": "transcription.text.delta", "text": text})
                        )
                    elif event == "final":  # the model heard the rest; the turn is the client's
                        await ws.send(
                            json.dumps(
                                {"type": "transcription.text.delta", "text": text[len(said) :]}
                            )
                        )
                        said = text
            elif kind in ("input_audio.flush", "input_audio.end"):
                conn.messages.append(data)
                self.flushes += kind == "input_audio.flush"
                if script.in_speech:
                    text = script.finish()[1]
                    await ws.send(
                        json.dumps({"type": "transcription.text.delta", "text": text[len(said) :]})
                    )
                    said = text
                if said and self.segments:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "transcription.segment",
                                "text": said,
                                "start": 0.0,
                                "end": 1.0,
                                "speaker_id": None,
                            }
                        )
                    )
                said = ""
                if kind == "input_audio.end":
                    await ws.send(
                        json.dumps(
                            {
                                "type": "transcription.done",
                                "model": "voxtral",
                                "text": "",
                                "language": "en",
                                "segments": [],
                                "usage": {},
                            }
                        )
                    )
                    await ws.close()
                    return
            else:
                self.problems.append(f"unexpected message {kind}")
