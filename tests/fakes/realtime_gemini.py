"""A fake Gemini Live server: BidiGenerateContent over a TLS websocket on 127.0.0.1.

It speaks the protocol of ``shared/protocols/gemini-live.md`` and the google-genai captures:
the upgrade path ``/ws/google.ai.generativelanguage.{version}.GenerativeService.
BidiGenerateContent`` (a doubled leading slash tolerated, as the SDK's default base URL makes
one), the key in ``x-goog-api-key`` (a wrong or missing key is accepted at the upgrade and
closed in-band after the setup frame with code 1007, as the service reports errors), the
``setup`` frame first and ``setupComplete`` back. Client JSON is read the proto3 way: camelCase
and snake_case field names alike.

It records every connection (path, headers, the normalised setup, caller audio, client turns,
tool responses) and appends to ``problems`` whenever the client breaks the protocol. On a
``clientContent`` turn with ``turnComplete`` it streams a scripted reply (PCM16 24 kHz
``inlineData`` parts with ``outputTranscription`` words, then ``turnComplete``); tests drive the
rest: input transcriptions, ``interrupted``, tool calls, resumption handles, ``goAway``, a
dropped connection, raw garbage frames.

The SDK forces ``wss`` for API-key clients, so the fake serves TLS with a throwaway
self-signed certificate: aim a client at :attr:`FakeGeminiLive.base_url` and trust
:attr:`FakeGeminiLive.client_ssl`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import functools
import ipaddress
import itertools
import json
import re
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = [
    "API_KEY",
    "BAD_KEY_CLOSE_CODE",
    "BAD_KEY_REASON",
    "FakeGeminiLive",
    "GeminiConnection",
    "normalise",
    "proto_bytes",
    "tone_pcm16",
]

API_KEY = "gemini-test-key"
BAD_KEY_CLOSE_CODE = 1007
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."
OUTPUT_RATE_HZ = 24000
INPUT_MIME = "audio/pcm;rate=16000"

_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
_SETUP_FIELDS = {
    "model",
    "generationConfig",
    "systemInstruction",
    "tools",
    "sessionResumption",
    "contextWindowCompression",
    "inputAudioTranscription",
    "outputAudioTranscription",
    "realtimeInputConfig",
    "proactivity",
}
_DETECTION_FIELDS = {
    "disabled",
    "startOfSpeechSensitivity",
    "endOfSpeechSensitivity",
    "prefixPaddingMs",
    "silenceDurationMs",
}
_START = {"START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"}
_END = {"END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"}
_REALTIME_INPUT_FIELDS = {
    "audio",
    "mediaChunks",
    "audioStreamEnd",
    "video",
    "text",
    "activityStart",
    "activityEnd",
}
# Fields whose dict keys are user data (kept) or whose whole value is user data (untouched).
_MAP_FIELDS = {"properties"}
_OPAQUE_FIELDS = {"response", "args", "parametersJsonSchema", "responseJsonSchema"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalise(value: Any, *, _key: str = "") -> Any:
    """Client JSON with every field name in camelCase (proto3 JSON accepts both spellings)."""
    if isinstance(value, list):
        return [normalise(item, _key=_key) for item in value]
    if not isinstance(value, dict):
        return value
    if _key in _MAP_FIELDS:
        return {k: normalise(v) for k, v in value.items()}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key)
        out[name] = item if name in _OPAQUE_FIELDS else normalise(item, _key=name)
    return out


def proto_bytes(text: str) -> bytes:
    """A proto3 JSON ``bytes`` field: standard or URL-safe base64, padded or not (google-genai
    sends URL-safe)."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def tone_pcm16(
    seconds: float, rate_hz: int = OUTPUT_RATE_HZ, freqs: tuple[int, ...] = (440, 1000)
) -> bytes:
    """A loud-ish multi-tone test signal, PCM16 LE mono."""
    import numpy as np

    t = np.arange(round(seconds * rate_hz)) / rate_hz
    signal = np.zeros_like(t)
    for freq in freqs:
        signal += np.sin(2 * np.pi * freq * t) / len(freqs)
    return (signal * 12000).astype("<i2").tobytes()


@functools.lru_cache(maxsize=1)
def _certificate() -> tuple[bytes, bytes]:
    """A throwaway self-signed certificate for 127.0.0.1 (PEM certificate, PEM key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voicecall fake gemini")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_ssl() -> ssl.SSLContext:
    cert, key = _certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
        (Path(tmp) / "cert.pem").write_bytes(cert)
        (Path(tmp) / "key.pem").write_bytes(key)
        context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
    return context


@dataclass
class GeminiConnection:
    """One accepted upgrade and what arrived on it."""

    path: str
    headers: Mapping[str, str]
    ws: ServerConnection
    setup: dict[str, Any] | None = None
    authorized: bool = True
    audio: bytearray = field(default_factory=bytearray)
    audio_messages: list[int] = field(default_factory=list)  # bytes of PCM per message
    turns: list[tuple[str, bool]] = field(default_factory=list)  # (text, turnComplete)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # normalised, in order
    closed: bool = False

    @property
    def resumed_handle(self) -> str | None:
        """The handle this connection's setup resumed (``sessionResumption.handle``)."""
        resumption = (self.setup or {}).get("sessionResumption")
        return resumption.get("handle") if isinstance(resumption, dict) else None


class FakeGeminiLive:
    """The fake service; ``async with FakeGeminiLive() as fake`` serves on an ephemeral port."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        api_version: str = "v1beta",
        reply_audio: bytes | None = None,
        reply_text: str = "Hello, this is the assistant.",
        chunk_ms: int = 40,
        issue_handles: bool = True,
        answer_setup: bool = True,
        http_status: int | None = None,
        refuse_after: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.path = _PATH.format(version=api_version)
        self.reply_audio = tone_pcm16(0.6) if reply_audio is None else reply_audio
        self.reply_text = reply_text
        self.chunk_bytes = OUTPUT_RATE_HZ * 2 * chunk_ms // 1000
        self.issue_handles = issue_handles
        self.answer_setup = answer_setup
        self.http_status = http_status
        self.refuse_after = refuse_after
        self.attempts = 0
        self.connections: list[GeminiConnection] = []
        self.problems: list[str] = []
        self.handles: list[str] = []
        self._handle_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._pending_calls: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self.client_ssl = ssl.create_default_context(cadata=_certificate()[0].decode())

    # -- server -----------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeGeminiLive:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=_server_ssl(),
            process_request=self._process_request,
            compression=None,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>`` (the SDK turns it into ``wss://``)."""
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"https://127.0.0.1:{port}"

    @property
    def current(self) -> GeminiConnection:
        """The newest connection."""
        assert self.connections, "no connection yet"
        return self.connections[-1]

    def check(self, ok: bool, problem: str) -> None:
        """Records a protocol violation by the client."""
        if not ok:
            self.problems.append(problem)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Waits until ``predicate()`` holds (re-checked when something arrives, and every 10 ms
        for conditions on the client's side)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.01):
                            await self._changed.wait()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        if self.refuse_after is not None and self.attempts > self.refuse_after:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable\n")
        if self.http_status is not None:
            return ws.respond(self.http_status, "rejected\n")
        path = re.sub(r"^/+", "/", request.path.split("?", 1)[0])
        if path != self.path:
            self.problems.append(f"unexpected path {request.path}")
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        conn = GeminiConnection(request.path, request.headers, ws)
        conn.authorized = request.headers.get("x-goog-api-key") == self.api_key
        self.connections.append(conn)
        await self._notify()
        try:
            await self._serve(ws, conn)
        except ConnectionClosed:
            pass
        finally:
            conn.closed = True
            await self._notify()

    # -- the protocol -----------------------------------------------------------------------------
    async def _serve(self, ws: ServerConnection, conn: GeminiConnection) -> None:
        first = await ws.recv()
        setup = self._parse(first)
        if setup is None or "setup" not in setup:
            self.problems.append("the first frame is not a setup")
            await ws.close(1007, "Invalid JSON payload received. Setup must be the first message.")
            return
        conn.setup = setup["setup"]
        if not conn.authorized:
            await ws.close(BAD_KEY_CLOSE_CODE, BAD_KEY_REASON)
            return
        self._check_setup(conn.setup)
        await self._notify()
        if not self.answer_setup:
            await ws.wait_closed()
            return
        await ws.send(json.dumps({"setupComplete": {}}))
        if self.issue_handles and isinstance(conn.setup.get("sessionResumption"), dict):
            await self.resumption_update(conn)
        async for frame in ws:
            message = self._parse(frame)
            if message is None:
                continue
            conn.messages.append(message)
            await self._client_message(conn, message)
            await self._notify()

    def _parse(self, frame: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(frame)
        except ValueError:
            self.problems.append(f"a frame that is not JSON: {frame[:80]!r}")
            return None
        if not isinstance(message, dict):
            self.problems.append(f"a frame that is not a JSON object: {frame[:80]!r}")
            return None
        result = normalise(message)
        assert isinstance(result, dict)
        return result

    async def _client_message(self, conn: GeminiConnection, message: dict[str, Any]) -> None:
        self.check(len(message) == 1, f"a client message with {sorted(message)}")
        if "realtimeInput" in message:
            self._realtime_input(conn, message["realtimeInput"])
        elif "clientContent" in message:
            complete = self._client_content(conn, message["clientContent"])
            if complete:
                await self.model_turn(conn)
        elif "toolResponse" in message:
            self._tool_response(conn, message["toolResponse"])
        elif "setup" in message:
            self.problems.append("a second setup on one connection")
        else:
            self.problems.append(f"unknown client message {sorted(message)}")

    def _realtime_input(self, conn: GeminiConnection, body: Any) -> None:
        if not isinstance(body, dict):
            self.problems.append("realtimeInput is not an object")
            return
        self.check(set(body) <= _REALTIME_INPUT_FIELDS, f"realtimeInput fields {sorted(body)}")
        self.check(len(body) == 1, f"realtimeInput sets {sorted(body)} at once")
        self.check("mediaChunks" not in body, "realtimeInput.mediaChunks is deprecated")
        audio = body.get("audio")
        if audio is None:
            return
        self.check(audio.get("mimeType") == INPUT_MIME, f"audio mimeType {audio.get('mimeType')}")
        try:
            pcm = proto_bytes(audio.get("data", ""))
        except (binascii.Error, ValueError, TypeError):
            self.problems.append("realtimeInput.audio.data is not base64")
            return
        self.check(len(pcm) % 2 == 0, f"odd PCM16 length {len(pcm)}")
        conn.audio += pcm
        conn.audio_messages.append(len(pcm))

    def _client_content(self, conn: GeminiConnection, body: Any) -> bool:
        if not isinstance(body, dict):
            self.problems.append("clientContent is not an object")
            return False
        complete = body.get("turnComplete", False)
        self.check(isinstance(complete, bool), "clientContent.turnComplete is not a bool")
        turns = body.get("turns", [])
        self.check(isinstance(turns, list), "clientContent.turns is not a list")
        for turn in turns if isinstance(turns, list) else []:
            self.check(turn.get("role") in ("user", "model"), f"turn role {turn.get('role')}")
            parts = turn.get("parts")
            if not isinstance(parts, list) or not parts:
                self.problems.append("a clientContent turn without parts")
                continue
            for part in parts:
                text = part.get("text") if isinstance(part, dict) else None
                self.check(isinstance(text, str) and bool(text), f"clientContent part {part}")
                if isinstance(text, str):
                    conn.turns.append((text, bool(complete)))
        return bool(complete)

    def _tool_response(self, conn: GeminiConnection, body: Any) -> None:
        responses = body.get("functionResponses") if isinstance(body, dict) else None
        if not isinstance(responses, list) or not responses:
            self.problems.append("toolResponse without functionResponses")
            return
        for response in responses:
            call_id = response.get("id")
            name = self._pending_calls.pop(call_id, None)
            self.check(name is not None, f"a function response for unknown call {call_id!r}")
            self.check(
                response.get("name") == name, f"function response name {response.get('name')}"
            )
            self.check(isinstance(response.get("response"), dict), "response is not an object")
            conn.tool_responses.append(response)

    def _check_setup(self, setup: dict[str, Any]) -> None:
        check = self.check
        check(
            set(setup) <= _SETUP_FIELDS,
            f"unknown setup fields {sorted(set(setup) - _SETUP_FIELDS)}",
        )
        model = setup.get("model")
        check(isinstance(model, str) and model.startswith("models/"), f"setup.model {model!r}")
        generation = setup.get("generationConfig") or {}
        check(
            generation.get("responseModalities") == ["AUDIO"],
            f"responseModalities {generation.get('responseModalities')}",
        )
        voice = (
            generation.get("speechConfig", {})
            .get("voiceConfig", {})
            .get("prebuiltVoiceConfig", {})
            .get("voiceName")
        )
        check(isinstance(voice, str) and bool(voice), "no prebuiltVoiceConfig.voiceName")
        instruction = setup.get("systemInstruction")
        if instruction is not None:
            parts = instruction.get("parts")
            check(
                isinstance(parts, list) and all(isinstance(p.get("text"), str) for p in parts),
                "systemInstruction.parts are not text parts",
            )
            check(instruction.get("role", "user") == "user", "systemInstruction.role")
        for tool in setup.get("tools") or []:
            check(set(tool) == {"functionDeclarations"}, f"tool fields {sorted(tool)}")
            for declaration in tool.get("functionDeclarations", []):
                self._check_declaration(declaration)
        for key in ("sessionResumption", "inputAudioTranscription", "outputAudioTranscription"):
            if key in setup:
                check(isinstance(setup[key], dict), f"{key} is not an object")
        handle = (setup.get("sessionResumption") or {}).get("handle")
        if handle is not None:
            check(handle in self.handles, f"resumed with a handle never issued: {handle!r}")
        if "contextWindowCompression" in setup:
            check(
                setup["contextWindowCompression"] == {"slidingWindow": {}},
                f"contextWindowCompression {setup['contextWindowCompression']}",
            )
        realtime = setup.get("realtimeInputConfig")
        if realtime is not None:
            detection = realtime.get("automaticActivityDetection")
            check(
                isinstance(detection, dict),
                "realtimeInputConfig without automaticActivityDetection",
            )
            detection = detection if isinstance(detection, dict) else {}
            check(set(detection) <= _DETECTION_FIELDS, f"activity detection {sorted(detection)}")
            start = detection.get("startOfSpeechSensitivity", "START_SENSITIVITY_UNSPECIFIED")
            end = detection.get("endOfSpeechSensitivity", "END_SENSITIVITY_UNSPECIFIED")
            check(start in _START, f"startOfSpeechSensitivity {start!r}")
            check(end in _END, f"endOfSpeechSensitivity {end!r}")
            for key in ("prefixPaddingMs", "silenceDurationMs"):
                value = detection.get(key, 0)
                check(isinstance(value, int) and value >= 0, f"{key} {value!r}")

    def _check_declaration(self, declaration: dict[str, Any]) -> None:
        name = declaration.get("name")
        self.check(
            isinstance(name, str)
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}", name) is not None,
            f"function name {name!r}",
        )
        self.check(bool(declaration.get("description")), f"function {name} has no description")
        parameters = declaration.get("parameters")
        if parameters is not None:
            self.check(
                str(parameters.get("type", "")).upper() == "OBJECT",
                f"function {name} parameters are not an OBJECT",
            )
            # Gemini rejects an OBJECT schema without properties.
            self.check(bool(parameters.get("properties")), f"function {name}: empty properties")

    # -- what tests make the server say -----------------------------------------------------------
    async def send(self, message: Mapping[str, Any], conn: GeminiConnection | None = None) -> None:
        """Sends one server message (camelCase JSON, as the service does)."""
        await (conn or self.current).ws.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes, conn: GeminiConnection | None = None) -> None:
        """Sends a frame as is (text for ``str``, binary for ``bytes``)."""
        await (conn or self.current).ws.send(frame)

    async def input_transcription(self, text: str, *, finished: bool = False) -> None:
        """What the server heard the caller say (a piece)."""
        body: dict[str, Any] = {"text": text}
        if finished:
            body["finished"] = True
        await self.send({"serverContent": {"inputTranscription": body}})

    async def interrupt(self) -> None:
        """The server's VAD heard the caller over the model."""
        await self.send({"serverContent": {"interrupted": True}})

    async def tool_call(
        self, name: str, args: Mapping[str, Any], call_id: str | None = None
    ) -> str:
        """The model calls a function; returns the call id."""
        call_id = call_id or f"fc-{next(self._call_ids)}"
        self._pending_calls[call_id] = name
        await self.send(
            {"toolCall": {"functionCalls": [{"id": call_id, "name": name, "args": dict(args)}]}}
        )
        return call_id

    async def resumption_update(self, conn: GeminiConnection | None = None) -> str:
        """Issues a new session resumption handle."""
        handle = f"handle-{next(self._handle_ids)}"
        self.handles.append(handle)
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}, conn)
        return handle

    async def go_away(self, time_left: str = "10s") -> None:
        """Warns the client that this connection will end."""
        await self.send({"goAway": {"timeLeft": time_left}})

    def drop(self) -> None:
        """Cuts the newest connection without a closing handshake (a network loss)."""
        transport = self.current.ws.transport
        assert transport is not None
        transport.abort()

    async def close(self, code: int = 1011, reason: str = "Internal error encountered.") -> None:
        """Closes the newest connection with a close frame."""
        await self.current.ws.close(code, reason)

    async def model_turn(
        self,
        conn: GeminiConnection | None = None,
        *,
        audio: bytes | None = None,
        text: str | None = None,
        inject: Mapping[int, Mapping[str, Any]] | None = None,
        interrupt_after: int | None = None,
    ) -> None:
        """Streams one model turn: audio parts with transcription words, then ``turnComplete``.

        ``inject`` sends extra server messages before the chunk of that index;
        ``interrupt_after`` stops after that many chunks with ``interrupted`` (the caller spoke).
        """
        conn = conn or self.current
        audio = self.reply_audio if audio is None else audio
        words = (self.reply_text if text is None else text).split()
        chunks = [audio[i : i + self.chunk_bytes] for i in range(0, len(audio), self.chunk_bytes)]
        for index, chunk in enumerate(chunks):
            if inject and index in inject:
                await self.send(inject[index], conn)
            if interrupt_after is not None and index == interrupt_after:
                await self.send({"serverContent": {"interrupted": True}}, conn)
                break
            data = base64.b64encode(chunk).decode()
            await self.send(
                {
                    "serverContent": {
                        "modelTurn": {
                            "parts": [
                                {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
                            ]
                        }
                    }
                },
                conn,
            )
            if index < len(words):
                word = words[index] if index + 1 < len(chunks) else " ".join(words[index:])
                await self.send(
                    {"serverContent": {"outputTranscription": {"text": " " + word}}}, conn
                )
            await asyncio.sleep(0)
        else:
            await self.send({"serverContent": {"generationComplete": True}}, conn)
        await self.send({"serverContent": {"turnComplete": True}}, conn)
        if self.issue_handles and isinstance((conn.setup or {}).get("sessionResumption"), dict):
            with contextlib.suppress(ConnectionClosed):  # a goAway'd client may be gone by now
                await self.resumption_update(conn)
        await self._notify()

    async def wait_connections(self, count: int, timeout_s: float = 10.0) -> None:
        """Waits until ``count`` connections have completed their setup."""
        await self.wait_for(
            lambda: len([c for c in self.connections if c.setup is not None]) >= count, timeout_s
        )

    async def wait_closed(self, conn: GeminiConnection, timeout_s: float = 10.0) -> None:
        """Waits until the client has closed ``conn``."""
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(timeout_s):
                await conn.ws.wait_closed()
