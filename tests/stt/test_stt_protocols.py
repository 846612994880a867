"""The sans-IO provider protocols: connection setup, defaults, aliases, timers and transcripts."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from tests.stt.conftest import audio

import voicecall.stt
from voicecall.stt import FinalTranscript, PartialTranscript, SpeechStarted
from voicecall.stt.audio import AudioConverter, AudioFormat
from voicecall.stt.deepgram.protocol import DeepgramProtocol, DeepgramSettings
from voicecall.stt.elevenlabs.protocol import ElevenLabsProtocol, ElevenLabsSettings
from voicecall.stt.mistral.protocol import MistralProtocol, MistralSettings
from voicecall.stt.openai.protocol import OpenAIProtocol, OpenAISettings
from voicecall.stt.xai.protocol import XaiProtocol, XaiSettings

STT = Path(voicecall.stt.__file__).parent


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_deepgram_defaults_and_token_auth() -> None:
    """Deepgram connects to /v1/listen with nova-3, µ-law 8 kHz, interim, 800 ms and Token auth."""
    request = DeepgramProtocol(DeepgramSettings(api_key="k")).connect_request()
    assert request.url.startswith("wss://api.deepgram.com/v1/listen?")
    assert _query(request.url) == {
        "model": "nova-3",
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "800",
        "vad_events": "true",
    }
    assert request.headers == {"Authorization": "Token k"}


def test_deepgram_accepts_the_config_aliases() -> None:
    """`sttModel`, `endpointing`, `interim_results`, `sample_rate` and `linear16` are honoured."""
    settings = DeepgramSettings.model_validate(
        {
            "sttModel": "nova-2-phonecall",
            "endpointing": 300,
            "interim_results": False,
            "encoding": "linear16",
            "sample_rate": 16000,
            "language": "en",
        }
    )
    query = _query(DeepgramProtocol(settings).connect_request().url)
    assert query["model"] == "nova-2-phonecall"
    assert query["endpointing"] == "300"
    assert query["interim_results"] == "false"
    assert (query["encoding"], query["sample_rate"]) == ("linear16", "16000")
    assert query["language"] == "en"


def test_deepgram_keeps_an_idle_socket_alive() -> None:
    """A KeepAlive goes out after 5 s without audio, and audio postpones it."""
    protocol = DeepgramProtocol(DeepgramSettings(api_key="k"))
    protocol.connection_opened(100.0)
    protocol.tick(104.9)
    assert protocol.data_to_send() == []
    protocol.tick(105.0)
    assert protocol.data_to_send() == ['{"type":"KeepAlive"}']
    protocol.send_audio(b"\xff" * 160, 106.0)
    protocol.data_to_send()
    assert protocol.next_deadline() == 111.0


def test_deepgram_close_waits_for_finalize_then_closes_the_stream() -> None:
    """Close sends Finalize, and CloseStream once 4.9 s pass without a `from_finalize` result."""
    protocol = DeepgramProtocol(DeepgramSettings(api_key="k"))
    protocol.connection_opened(0.0)
    protocol.send_audio(b"\xff" * 160, 1.0)
    protocol.data_to_send()
    protocol.close(2.0)
    assert protocol.data_to_send() == ['{"type":"Finalize"}']
    protocol.tick(6.8)
    assert protocol.data_to_send() == []
    protocol.tick(6.9)
    assert protocol.data_to_send() == ['{"type":"CloseStream"}']


def _results(text: str, **flags: bool) -> str:
    return json.dumps(
        {"type": "Results", **flags, "channel": {"alternatives": [{"transcript": text}]}}
    )


def test_deepgram_segments_accumulate_into_one_final() -> None:
    """Interim results are partials; finalized segments join into one final at the endpoint."""
    protocol = DeepgramProtocol(DeepgramSettings(api_key="k"))
    protocol.connection_opened(0.0)
    protocol.events_received()
    protocol.receive(json.dumps({"type": "SpeechStarted", "timestamp": 0.1}), 1.0)
    protocol.receive(_results("hel", is_final=False), 1.0)
    protocol.receive(_results("hello there", is_final=True, speech_final=False), 1.0)
    protocol.receive(_results("how are", is_final=False), 1.0)
    protocol.receive(_results("how are you", is_final=True, speech_final=True), 1.0)
    protocol.receive(_results("bye", is_final=True), 1.0)
    protocol.receive(json.dumps({"type": "UtteranceEnd", "last_word_end": 2.0}), 1.0)
    assert protocol.events_received() == [
        SpeechStarted(),
        PartialTranscript("hel"),
        PartialTranscript("hello there"),
        PartialTranscript("hello there how are"),
        FinalTranscript("hello there how are you"),
        PartialTranscript("bye"),
        FinalTranscript("bye"),
    ]


def test_openai_session_update_has_the_spec_defaults() -> None:
    """OpenAI gets a transcription session: pcmu, gpt-4o-transcribe, server VAD 0.5/300/800."""
    protocol = OpenAIProtocol(OpenAISettings(api_key="k", language="en"))
    request = protocol.connect_request()
    assert request.url == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert request.headers == {"Authorization": "Bearer k"}
    protocol.connection_opened(0.0)
    [update] = protocol.data_to_send()
    assert json.loads(update) == {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 800,
                    },
                }
            },
        },
    }


def test_openai_pcm_is_24_khz_from_one_resample() -> None:
    """OpenAI `pcm` means PCM16 at 24 kHz: carrier audio is resampled once, 3 samples per input."""
    settings = OpenAISettings.model_validate(
        {"apiKey": "k", "encoding": "pcm", "sampleRate": 24000}
    )
    protocol = OpenAIProtocol(settings)
    protocol.connection_opened(0.0)
    session = json.loads(protocol.data_to_send()[0])["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    converter = AudioConverter(protocol.audio_format)
    clip = audio("hello")
    out = b"".join(converter.convert(clip[i : i + 160]) for i in range(0, len(clip), 160))
    expected = len(clip) * 3 * 2
    assert abs(len(out) - expected) <= 2 * 24000 * 5 // 1000  # within the resampler's delay


def test_openai_partials_are_per_item_and_finals_complete_them() -> None:
    """Deltas build one item's partial; `completed` gives its final; a failure is an error."""
    protocol = OpenAIProtocol(OpenAISettings(api_key="k"))
    protocol.connection_opened(0.0)

    def event(kind: str, **fields: object) -> None:
        protocol.receive(json.dumps({"type": kind, "event_id": "e", **fields}), 0.0)

    event("session.updated", session={})
    event("input_audio_buffer.speech_started", item_id="a", audio_start_ms=0)
    event("conversation.item.input_audio_transcription.delta", item_id="a", delta="Hel")
    event("conversation.item.input_audio_transcription.delta", item_id="a", delta="lo")
    event("conversation.item.input_audio_transcription.completed", item_id="a", transcript="Hello.")
    event(
        "conversation.item.input_audio_transcription.failed",
        item_id="b",
        error={"type": "server_error", "message": "boom"},
    )
    events = protocol.events_received()
    assert events[1:5] == [
        SpeechStarted(),
        PartialTranscript("Hel"),
        PartialTranscript("Hello"),
        FinalTranscript("Hello."),
    ]
    assert events[5].message == "openai: boom" and not events[5].fatal


def test_elevenlabs_defaults_and_silence_alias() -> None:
    """ElevenLabs uses scribe_v2_realtime, ulaw_8000, VAD commits; silence maps to seconds."""
    settings = ElevenLabsSettings.model_validate({"apiKey": "k", "endpointing": 500})
    request = ElevenLabsProtocol(settings).connect_request()
    assert request.url.startswith("wss://api.elevenlabs.io/v1/speech-to-text/realtime?")
    assert _query(request.url) == {
        "model_id": "scribe_v2_realtime",
        "audio_format": "ulaw_8000",
        "commit_strategy": "vad",
        "include_timestamps": "false",
        "include_language_detection": "false",
        "vad_silence_threshold_secs": "0.5",
    }
    assert request.headers == {"xi-api-key": "k"}


def test_elevenlabs_audio_chunk_matches_the_sdk_shape() -> None:
    """The hot-path chunk JSON equals the SDK's `input_audio_chunk` fields."""
    protocol = ElevenLabsProtocol(ElevenLabsSettings(api_key="k"))
    protocol.send_audio(b"\xff" * 4, 0.0)
    [chunk] = protocol.data_to_send()
    assert json.loads(chunk) == {
        "message_type": "input_audio_chunk",
        "audio_base_64": "/////w==",
        "commit": False,
        "sample_rate": 8000,
    }


def test_mistral_flushes_after_silence_and_settles_500_ms_later() -> None:
    """The local gate flushes when the caller stops; deltas become final 500 ms after the flush."""
    settings = MistralSettings.model_validate({"apiKey": "k", "silenceDurationMs": 300})
    protocol = MistralProtocol(settings)
    assert _query(protocol.connect_request().url) == {
        "model": "voxtral-mini-transcribe-realtime-2602"
    }
    protocol.connection_opened(0.0)
    protocol.receive(json.dumps({"type": "session.created", "session": {}}), 0.0)
    [update] = protocol.data_to_send()
    assert json.loads(update)["session"] == {
        "audio_format": {"encoding": "pcm_mulaw", "sample_rate": 8000},
        "target_streaming_delay_ms": 800,
    }
    protocol.receive(json.dumps({"type": "session.updated", "session": {}}), 0.0)
    clip = audio("goodbye")
    for i in range(0, len(clip), 160):
        protocol.send_audio(clip[i : i + 160], 1.0)
    sent = [json.loads(m)["type"] for m in protocol.data_to_send()]
    assert sent.count("input_audio.flush") == 1
    protocol.receive(json.dumps({"type": "transcription.text.delta", "text": "Good"}), 2.0)
    protocol.receive(json.dumps({"type": "transcription.text.delta", "text": "bye."}), 2.2)
    protocol.tick(2.69)
    assert not any(isinstance(e, FinalTranscript) for e in protocol.events_received()[2:])
    protocol.tick(2.7)
    assert protocol.events_received() == [FinalTranscript("Goodbye.")]


def test_xai_defaults_and_bearer_auth() -> None:
    """xAI connects to /v1/stt with µ-law 8 kHz, interim results, 800 ms endpointing, Bearer."""
    request = XaiProtocol(XaiSettings(api_key="k", language="en")).connect_request()
    assert request.url.startswith("wss://api.x.ai/v1/stt?")
    assert _query(request.url) == {
        "sample_rate": "8000",
        "encoding": "mulaw",
        "interim_results": "true",
        "endpointing": "800",
        "language": "en",
    }
    assert request.headers == {"Authorization": "Bearer k"}


def test_converter_passes_ulaw_through_and_makes_alaw() -> None:
    """µ-law 8 kHz goes out unchanged; A-law is one transcode of the same length."""
    frame = audio("hello")[4000:4160]
    assert AudioConverter(AudioFormat()).convert(frame) is frame
    assert len(AudioConverter(AudioFormat("alaw")).convert(frame)) == 160


SANS_IO = [
    STT / "events.py",
    STT / "audio.py",
    STT / "protocol.py",
    *sorted(STT.glob("*/protocol.py")),
]
FORBIDDEN = {"asyncio", "aiohttp", "websockets", "openai", "socket", "time"}


@pytest.mark.parametrize("path", SANS_IO, ids=lambda p: str(p.relative_to(STT)))
def test_protocol_modules_do_no_io(path: Path) -> None:
    """Protocol modules import no event loop, socket, websocket client, SDK or clock."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
    assert not [m for m in modules if m.split(".")[0] in FORBIDDEN]
