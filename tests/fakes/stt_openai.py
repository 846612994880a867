"""A fake OpenAI Realtime transcription server (GA): session.update, base64 µ-law, server VAD."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Mapping
from typing import Any

from tests.fakes.stt_common import Connection, FakeSttServer
from websockets.asyncio.server import ServerConnection

__all__ = ["FakeOpenAI"]


class FakeOpenAI(FakeSttServer):
    """Checks `?intent=transcription`, Bearer auth and the session; answers with GA events."""

    path = "/v1/realtime"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)
        self.session: dict[str, Any] | None = None

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.api_key}"

    def _event(self, kind: str, **fields: Any) -> str:
        return json.dumps({"type": kind, "event_id": f"event_{next(self._ids)}", **fields})

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        self.expect_query(conn, {"intent": "transcription"})
        self.check("model" not in conn.query, "model in a transcription URL")
        self.check("OpenAI-Beta" not in conn.headers, "beta header on a GA session")
        await ws.send(
            self._event("session.created", session={"type": "transcription", "id": "sess_1"})
        )
        script = conn.script
        assert script is not None
        item = ""
        uncommitted = False
        async for message in ws:
            data = json.loads(message)
            kind = data.get("type")
            if kind == "session.update":
                self._check_session(data.get("session", {}))
                self.session = data.get("session")
                await self.release_ready.wait()
                await ws.send(self._event("session.updated", session=data.get("session")))
                continue
            if self.session is None:
                self.problems.append(f"{kind} before session.update")
            if kind == "input_audio_buffer.append":
                audio = base64.b64decode(data["audio"])
                self.took_audio(ws, conn, audio)
                uncommitted = True
                for event, text in script.feed(audio):
                    if event == "started":
                        item = f"item_{next(self._ids)}"
                        await ws.send(
                            self._event(
                                "input_audio_buffer.speech_started", audio_start_ms=0, item_id=item
                            )
                        )
                    elif event == "partial":
                        await ws.send(self._delta(item, text))
                    else:
                        await ws.send(
                            self._event(
                                "input_audio_buffer.speech_stopped", audio_end_ms=0, item_id=item
                            )
                        )
                        await self._complete(ws, item, text)
                        uncommitted = False
            elif kind == "input_audio_buffer.commit":
                conn.messages.append(data)
                if not uncommitted:
                    await ws.send(
                        self._event(
                            "error",
                            error={
                                "type": "invalid_request_error",
                                "code": "input_audio_buffer_commit_empty",
                                "message": "buffer too small",
                                "param": None,
                            },
                        )
                    )
                    continue
                item = item if script.in_speech else f"item_{next(self._ids)}"
                text = script.finish()[1] if script.in_speech else ""
                await self._complete(ws, item, text)
                uncommitted = False
            else:
                self.problems.append(f"unexpected client event {kind}")

    async def _complete(self, ws: ServerConnection, item: str, text: str) -> None:
        await ws.send(
            self._event("input_audio_buffer.committed", item_id=item, previous_item_id=None)
        )
        await ws.send(
            self._event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item,
                content_index=0,
                transcript=text,
                usage={"type": "tokens", "input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
            )
        )

    def _delta(self, item: str, text: str) -> str:
        return self._event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item,
            content_index=0,
            delta=text,
        )

    def _check_session(self, session: dict[str, Any]) -> None:
        self.check(session.get("type") == "transcription", f"session.type {session.get('type')}")
        audio_in = session.get("audio", {}).get("input", {})
        self.check(
            audio_in.get("format") == {"type": "audio/pcmu"}, f"format {audio_in.get('format')}"
        )
        self.check(bool(audio_in.get("transcription", {}).get("model")), "no transcription model")
        self.check(audio_in.get("turn_detection", {}).get("type") == "server_vad", "no server VAD")
