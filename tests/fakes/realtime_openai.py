"""A fake OpenAI Realtime speech-to-speech server (GA protocol, SPEC §7.8).

Built from /work/shared/protocols/openai-realtime.md §0, §2, §3 and the capture
``oai_s2s_server.txt``. It listens on 127.0.0.1 (ephemeral port; ``base_url`` is
``http://127.0.0.1:<port>/v1``, what the SDK turns into ``ws://…/v1/realtime?model=…``) and:

- answers the upgrade with HTTP 401 unless ``Authorization: Bearer <api_key>``, 404 off
  ``/v1/realtime``; checks the ``model`` query and that no beta header is sent;
- sends ``session.created`` on connect, validates every ``session.update`` against the exact
  shape of SPEC §7.8 and answers ``session.updated`` (or an ``error`` with ``reject_session``;
  nothing while ``hold_ready`` is cleared);
- records every client event, and the caller audio of ``input_audio_buffer.append``;
- answers each ``response.create`` with the next :class:`ScriptedResponse`: audio deltas
  (µ-law, base64) with the transcript, or a function call, then ``response.done``; a held
  response pauses until ``release`` is set or it is cancelled (``response.cancel`` or a
  caller's ``speech_started``: ``response.done`` with status ``cancelled``);
- checks ``conversation.item.truncate`` against the audio it sent and
  ``function_call_output`` against the calls it made; a second ``response.create`` while a
  response is active gets the real server's ``conversation_already_has_active_response``;
- lets a test play the server's part: ``speech_started``, ``user_says`` (transcription delta
  and completed), any event, raw garbage, or an abrupt drop.

Every client mistake is appended to ``problems`` (tests assert it stays empty).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["API_KEY", "MODEL", "Connection", "FakeOpenAIRealtime", "ScriptedResponse"]

API_KEY = "sk-fake-realtime-key-0123456789"
MODEL = "gpt-realtime-2.1"
_TURN_DETECTION_REQUIRED = {
    "type": "server_vad",
    "create_response": True,
    "interrupt_response": True,
}


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (so checks report, not crash)."""
    return value if isinstance(value, dict) else {}


@dataclass
class ScriptedResponse:
    """What the fake model says in one response: audio and its transcript, or a tool call."""

    audio: bytes = b""
    transcript: str = ""
    tool: tuple[str, str] | None = None  # (name, arguments as sent: JSON text, maybe broken)
    hold: bool = False  # pause (after the first audio delta / before response.done)


@dataclass
class Connection:
    """One accepted upgrade and what arrived on it."""

    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    ws: ServerConnection
    events: list[dict[str, Any]] = field(default_factory=list)  # every client event, in order
    audio: bytearray = field(default_factory=bytearray)
    appends: list[int] = field(default_factory=list)  # bytes per input_audio_buffer.append
    session: dict[str, Any] | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The client events of one type, in order."""
        return [e for e in self.events if e.get("type") == kind]


@dataclass
class _Active:
    response_id: str
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = "client_cancelled"


class FakeOpenAIRealtime:
    """The fake server; use as ``async with FakeOpenAIRealtime(...) as fake``."""

    def __init__(
        self,
        responses: list[ScriptedResponse] | None = None,
        *,
        api_key: str = API_KEY,
        model: str = MODEL,
        beta_names: bool = False,
        chunk_bytes: int = 800,
        reject_session: str | None = None,
    ) -> None:
        self.responses = list(responses or [])
        self.api_key = api_key
        self.model = model
        self.beta_names = beta_names  # audio events named the beta way (response.audio.*)
        self.chunk_bytes = chunk_bytes
        self.reject_session = reject_session
        self.hold_ready = asyncio.Event()  # cleared: session.update is never answered
        self.hold_ready.set()
        self.release = asyncio.Event()  # lets held responses finish
        self.connections: list[Connection] = []
        self.problems: list[str] = []
        self.attempts = 0
        self.item_audio: dict[str, bytes] = {}  # assistant audio sent, per item id
        self.calls: dict[str, str] = {}  # call_id -> tool name, for calls the model made
        self._ids = itertools.count(1)
        self._active: _Active | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._server: Server | None = None
        self._last_speech_item: str | None = None

    # ---- test side -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>/v1`, the `baseUrl` a test session uses."""
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def connection(self) -> Connection:
        """The latest accepted connection."""
        assert self.connections, "no connection yet"
        return self.connections[-1]

    @property
    def audio(self) -> bytes:
        """All caller audio received, over every connection."""
        return b"".join(bytes(c.audio) for c in self.connections)

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 20) -> None:
        """Returns once `condition()` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def send_event(self, kind: str, **fields: Any) -> None:
        """Sends a server event (with an event_id) on the latest connection."""
        await self.connection.ws.send(self._event(kind, **fields))

    async def send_raw(self, frame: str | bytes) -> None:
        """Sends a frame as is (text, or binary for bytes)."""
        await self.connection.ws.send(frame)

    async def speech_started(self) -> str:
        """The caller starts talking: server VAD's event, and (interrupt_response) a cancel."""
        item = self._new_id("item")
        self._last_speech_item = item
        await self.send_event(
            "input_audio_buffer.speech_started", audio_start_ms=1000, item_id=item
        )
        if self._active is not None:
            self._active.reason = "turn_detected"
            self._active.cancelled.set()
        return item

    async def user_says(self, text: str) -> str:
        """The caller's turn ends: committed, word-by-word transcription deltas, completed."""
        item = self._last_speech_item or self._new_id("item")
        self._last_speech_item = None
        await self.send_event("input_audio_buffer.speech_stopped", audio_end_ms=2600, item_id=item)
        await self.send_event("input_audio_buffer.committed", item_id=item, previous_item_id=None)
        for word in text.split(" "):
            await self.send_event(
                "conversation.item.input_audio_transcription.delta",
                item_id=item,
                content_index=0,
                delta=word + " ",
            )
        await self.send_event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item,
            content_index=0,
            transcript=text,
            usage={"type": "tokens", "input_tokens": 14, "output_tokens": 4, "total_tokens": 18},
        )
        return item

    def drop(self) -> None:
        """Abrupt network loss on the latest connection (no closing handshake)."""
        self.connection.ws.transport.abort()

    # ---- server ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._streams):
            task.cancel()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        parts = urlsplit(request.path)
        if parts.path != "/v1/realtime":
            self.problems.append(f"unexpected path {request.path}")
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            body = '{"error":{"type":"invalid_request_error","code":"invalid_api_key"}}\n'
            return ws.respond(HTTPStatus.UNAUTHORIZED, body)
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        parts = urlsplit(request.path)
        conn = Connection(parts.path, dict(parse_qsl(parts.query)), request.headers, ws)
        self.connections.append(conn)
        self._check(conn.query.get("model") == self.model, f"query model={conn.query.get('model')}")
        self._check("intent" not in conn.query, "intent in a speech-to-speech URL")
        self._check("OpenAI-Beta" not in conn.headers, "beta header on a GA session")
        self._changed.set()
        with contextlib.suppress(ConnectionClosed):
            await ws.send(
                self._event(
                    "session.created",
                    session={
                        "type": "realtime",
                        "object": "realtime.session",
                        "id": self._new_id("sess"),
                        "model": self.model,
                        "output_modalities": ["audio"],
                    },
                )
            )
            async for message in ws:
                await self._on_message(ws, conn, message)
        for task in list(self._streams):
            task.cancel()
        self._changed.set()

    async def _on_message(
        self, ws: ServerConnection, conn: Connection, message: str | bytes
    ) -> None:
        if isinstance(message, bytes):
            self.problems.append("binary frame from the client")
            return
        try:
            data = json.loads(message)
        except ValueError:
            self.problems.append(f"client frame is not JSON: {message[:80]!r}")
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self.problems.append(f"client event without a type: {message[:80]!r}")
            return
        conn.events.append(data)
        self._changed.set()
        kind = data["type"]
        if kind != "session.update" and conn.session is None:
            self.problems.append(f"{kind} before session.update")
        handler = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
        }.get(kind)
        if handler is None:
            self.problems.append(f"unexpected client event {kind}")
            await self._error(ws, "invalid_request_error", "unknown_event", f"Unknown event {kind}")
            return
        await handler(ws, conn, data)

    # ---- client events ---------------------------------------------------------------------

    async def _on_session_update(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        session = data.get("session")
        if not isinstance(session, dict):
            self.problems.append("session.update without a session object")
            return
        self._check_session(session)
        if self.reject_session is not None:
            await self._error(ws, "invalid_request_error", "invalid_value", self.reject_session)
            return
        await self.hold_ready.wait()
        conn.session = session
        effective = {
            **session,
            "object": "realtime.session",
            "id": "sess_1",
            "model": self.model,
        }
        await ws.send(self._event("session.updated", session=effective))

    async def _on_append(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        try:
            audio = base64.b64decode(data.get("audio", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            self.problems.append("input_audio_buffer.append with audio that is not base64")
            return
        self._check(set(data) <= {"type", "event_id", "audio"}, f"append fields {sorted(data)}")
        self._check(bool(audio), "empty input_audio_buffer.append")
        conn.audio += audio
        conn.appends.append(len(audio))

    async def _on_response_create(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        params = data.get("response")
        self._check(params is None or isinstance(params, dict), "response.create response field")
        if isinstance(params, dict):
            self._check(
                isinstance(params.get("instructions", ""), str), "response.instructions type"
            )
        if self._active is not None:
            self.problems.append("response.create while a response is active")
            await self._error(
                ws,
                "invalid_request_error",
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
            )
            return
        script = self.responses.pop(0) if self.responses else ScriptedResponse(b"\xff" * 800, "Hm.")
        active = _Active(self._new_id("resp"))
        self._active = active
        task = asyncio.create_task(self._stream(ws, script, active))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _on_response_cancel(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        if self._active is None:
            await self._error(
                ws,
                "invalid_request_error",
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
            )
            return
        self._active.reason = "client_cancelled"
        self._active.cancelled.set()

    async def _on_item_create(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        item = data.get("item")
        if not isinstance(item, dict):
            self.problems.append("conversation.item.create without an item")
            return
        kind = item.get("type")
        if kind == "function_call_output":
            call_id = item.get("call_id")
            self._check(call_id in self.calls, f"function_call_output for unknown call {call_id}")
            output = item.get("output")
            if not isinstance(output, str):
                self.problems.append("function_call_output output is not a string")
            else:
                try:
                    json.loads(output)
                except ValueError:
                    self.problems.append(f"function_call_output output is not JSON: {output!r}")
            self._check(set(item) == {"type", "call_id", "output"}, f"item fields {sorted(item)}")
        elif kind == "message":
            self._check(item.get("role") == "user", f"message role {item.get('role')}")
            content = item.get("content")
            ok = (
                isinstance(content, list)
                and len(content) == 1
                and isinstance(content[0], dict)
                and content[0].get("type") == "input_text"
                and isinstance(content[0].get("text"), str)
            )
            self._check(ok, f"message content {content!r}")
        else:
            self.problems.append(f"conversation.item.create of type {kind}")
            return
        item_id = self._new_id("item")
        added = {**item, "id": item_id, "object": "realtime.item", "status": "completed"}
        await ws.send(self._event("conversation.item.added", previous_item_id=None, item=added))
        await ws.send(self._event("conversation.item.done", previous_item_id=None, item=added))

    async def _on_truncate(
        self, ws: ServerConnection, conn: Connection, data: dict[str, Any]
    ) -> None:
        item_id = data.get("item_id")
        end_ms = data.get("audio_end_ms")
        sent = self.item_audio.get(item_id) if isinstance(item_id, str) else None
        problems = []
        if sent is None:
            problems.append(f"truncate of unknown item {item_id}")
        if data.get("content_index") != 0:
            problems.append(f"truncate content_index {data.get('content_index')}")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            problems.append(f"truncate audio_end_ms {end_ms!r}")
        elif sent is not None and end_ms > len(sent) // 8:
            problems.append(f"truncate audio_end_ms {end_ms} beyond the {len(sent) // 8} ms sent")
        if problems:
            self.problems.extend(problems)
            await self._error(ws, "invalid_request_error", "invalid_value", "; ".join(problems))
            return
        await ws.send(
            self._event(
                "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms
            )
        )

    # ---- responses -------------------------------------------------------------------------

    async def _stream(
        self, ws: ServerConnection, script: ScriptedResponse, active: _Active
    ) -> None:
        rid = active.response_id
        status = "completed"
        output: list[dict[str, Any]] = []
        try:
            await ws.send(
                self._event(
                    "response.created",
                    response={
                        "object": "realtime.response",
                        "id": rid,
                        "status": "in_progress",
                        "status_details": None,
                        "output": [],
                    },
                )
            )
            if script.tool is not None:
                done = await self._stream_tool(ws, script, active, output)
            else:
                done = await self._stream_audio(ws, script, active, output)
            status = "completed" if done else "cancelled"
            details = None if done else {"type": "cancelled", "reason": active.reason}
            self._active = None
            await ws.send(
                self._event(
                    "response.done",
                    response={
                        "object": "realtime.response",
                        "id": rid,
                        "status": status,
                        "status_details": details,
                        "output": output,
                        "usage": {"total_tokens": 10, "input_tokens": 6, "output_tokens": 4},
                    },
                )
            )
        except ConnectionClosed:
            pass
        finally:
            if self._active is active:
                self._active = None

    async def _pause(self, active: _Active) -> bool:
        """Waits for `release` or a cancel; True when released."""
        if active.cancelled.is_set():
            return False
        waits = [
            asyncio.ensure_future(self.release.wait()),
            asyncio.ensure_future(active.cancelled.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return not active.cancelled.is_set()

    async def _stream_audio(
        self, ws: ServerConnection, script: ScriptedResponse, active: _Active, output: list[Any]
    ) -> bool:
        rid = active.response_id
        item = self._new_id("item")
        message = {
            "id": item,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        audio_kind = "response.audio" if self.beta_names else "response.output_audio"
        transcript_kind = (
            "response.audio_transcript" if self.beta_names else "response.output_audio_transcript"
        )
        place = {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0}
        await ws.send(
            self._event("response.output_item.added", response_id=rid, output_index=0, item=message)
        )
        await ws.send(
            self._event(
                "response.content_part.added",
                **place,
                part={"type": "audio", "transcript": ""},
            )
        )
        self.item_audio[item] = b""
        chunks = [
            script.audio[i : i + self.chunk_bytes]
            for i in range(0, len(script.audio), self.chunk_bytes)
        ]
        words = script.transcript.split(" ") if script.transcript else []
        for index, chunk in enumerate(chunks):
            if active.cancelled.is_set():
                return self._cut(message, output)
            await ws.send(
                self._event(f"{audio_kind}.delta", **place, delta=base64.b64encode(chunk).decode())
            )
            self.item_audio[item] += chunk
            if index < len(words):
                await ws.send(
                    self._event(f"{transcript_kind}.delta", **place, delta=words[index] + " ")
                )
            if index == 0 and script.hold and not await self._pause(active):
                return self._cut(message, output)
        if active.cancelled.is_set():
            return self._cut(message, output)
        await ws.send(self._event(f"{audio_kind}.done", **place))
        await ws.send(self._event(f"{transcript_kind}.done", **place, transcript=script.transcript))
        part = {"type": "audio", "transcript": script.transcript}
        await ws.send(self._event("response.content_part.done", **place, part=part))
        done = {**message, "status": "completed", "content": [{"type": "output_audio", **part}]}
        await ws.send(
            self._event("response.output_item.done", response_id=rid, output_index=0, item=done)
        )
        output.append(done)
        return True

    @staticmethod
    def _cut(message: dict[str, Any], output: list[Any]) -> bool:
        output.append({**message, "status": "incomplete"})
        return False

    async def _stream_tool(
        self, ws: ServerConnection, script: ScriptedResponse, active: _Active, output: list[Any]
    ) -> bool:
        assert script.tool is not None
        name, arguments = script.tool
        rid = active.response_id
        item = self._new_id("item")
        call_id = self._new_id("call")
        call = {
            "id": item,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        await ws.send(
            self._event("response.output_item.added", response_id=rid, output_index=0, item=call)
        )
        place = {"response_id": rid, "item_id": item, "output_index": 0, "call_id": call_id}
        await ws.send(
            self._event("response.function_call_arguments.delta", **place, delta=arguments)
        )
        self.calls[call_id] = name
        await ws.send(
            self._event(
                "response.function_call_arguments.done", **place, name=name, arguments=arguments
            )
        )
        done = {**call, "status": "completed", "arguments": arguments}
        await ws.send(
            self._event("response.output_item.done", response_id=rid, output_index=0, item=done)
        )
        output.append(done)
        return not script.hold or await self._pause(active)

    # ---- helpers ---------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _event(self, kind: str, **fields: Any) -> str:
        return json.dumps({"type": kind, "event_id": self._new_id("event"), **fields})

    async def _error(self, ws: ServerConnection, kind: str, code: str, message: str) -> None:
        error = {"type": kind, "code": code, "message": message, "param": None, "event_id": None}
        await ws.send(self._event("error", error=error))

    def _check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def _check_session(self, session: dict[str, Any]) -> None:
        """The exact `session.update` shape of SPEC §7.8."""
        check = self._check
        check(
            set(session) == {"type", "instructions", "output_modalities", "audio", "tools"},
            f"session fields {sorted(session)}",
        )
        check(session.get("type") == "realtime", f"session.type {session.get('type')!r}")
        check(isinstance(session.get("instructions"), str), "session.instructions not a string")
        check(session.get("output_modalities") == ["audio"], "output_modalities not ['audio']")
        audio = _obj(session.get("audio"))
        check(set(audio) == {"input", "output"}, f"session.audio fields {sorted(audio)}")
        audio_in = _obj(audio.get("input"))
        check(
            set(audio_in) == {"format", "transcription", "turn_detection"},
            f"audio.input fields {sorted(audio_in)}",
        )
        check(
            audio_in.get("format") == {"type": "audio/pcmu"},
            f"input format {audio_in.get('format')}",
        )
        check(
            audio_in.get("transcription") == {"model": "gpt-4o-transcribe"},
            f"transcription {audio_in.get('transcription')}",
        )
        vad = _obj(audio_in.get("turn_detection"))
        check(
            {k: vad.get(k) for k in _TURN_DETECTION_REQUIRED} == _TURN_DETECTION_REQUIRED,
            f"turn_detection {vad}",
        )
        optional = set(vad) - set(_TURN_DETECTION_REQUIRED)
        check(
            optional <= {"threshold", "prefix_padding_ms", "silence_duration_ms"},
            f"turn_detection extra fields {sorted(optional)}",
        )
        if "threshold" in vad:
            value = vad["threshold"]
            check(
                isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1,
                f"threshold {value!r}",
            )
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if key in vad:
                value = vad[key]
                check(
                    isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                    f"{key} {value!r}",
                )
        audio_out = _obj(audio.get("output"))
        check(set(audio_out) == {"format", "voice"}, f"audio.output fields {sorted(audio_out)}")
        check(
            audio_out.get("format") == {"type": "audio/pcmu"},
            f"output format {audio_out.get('format')}",
        )
        check(isinstance(audio_out.get("voice"), str), "audio.output.voice not a string")
        tools = session.get("tools")
        if not isinstance(tools, list):
            self.problems.append("session.tools not a list")
            return
        for tool in tools:
            ok = (
                isinstance(tool, dict)
                and set(tool) == {"type", "name", "description", "parameters"}
                and tool["type"] == "function"
                and isinstance(tool["name"], str)
                and isinstance(tool["description"], str)
                and isinstance(tool["parameters"], dict)
                and tool["parameters"].get("type") == "object"
            )
            check(ok, f"tool {tool!r}")
