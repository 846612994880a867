"""`tts.provider` and the `tts.providers.<id>` objects (SPEC §1.7, §8.3), checked strictly.

The TTS clients read their own object from the raw `tts.providers` map (through the registry),
so validation here never rewrites it: a valid map is kept exactly as written (key order is the
fallback order), and a bad one is reported with the full key path. Each model lists exactly the
keys its client reads, camelCase only; an unset key means the client's default (SPEC §1.7).
`microsoft` and `edge` are accepted as any object and never used for calls (SPEC §8.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from voicecall.config.base import ConfigModel
from voicecall.config.fields import absolute_url, int_between, non_empty

__all__ = [
    "ELEVENLABS_OUTPUT_FORMATS",
    "KNOWN_TTS_PROVIDERS",
    "LOCAL_TTS_DEFAULT_BINARY",
    "OPENAI_RESPONSE_FORMATS",
    "PCM_RATE_RANGE_HZ",
    "SPEED_WPM_RANGE",
    "TELEPHONY_TTS_PROVIDERS",
    "ElevenLabsTtsProviderConfig",
    "LocalTtsProviderConfig",
    "OpenAITtsProviderConfig",
    "TtsProviderMap",
    "TtsProviderName",
    "TtsProvidersConfig",
    "is_elevenlabs_output_format",
    "missing_local_binary_message",
    "unread_tts_keys",
]

# Providers that synthesize for calls, then those accepted but always skipped for calls.
TELEPHONY_TTS_PROVIDERS = ("openai", "elevenlabs", "local")
KNOWN_TTS_PROVIDERS = (*TELEPHONY_TTS_PROVIDERS, "microsoft", "edge")

# OpenAI `response_format` values played without a decoder: PCM16 24 kHz, WAV.
OPENAI_RESPONSE_FORMATS = ("pcm", "wav")
# What the elevenlabs client converts to µ-law 8 kHz (SPEC §8.3, voicecall.tts.audio); the value
# is also sent verbatim as the `output_format` query parameter, so only the canonical spelling.
ELEVENLABS_OUTPUT_FORMATS = ("ulaw_8000", "raw-8khz-8bit-mono-mulaw", "pcm", "pcm16", "wav")
# `pcm_<rate>`: the rates the media core resamples from (voicecall.media MIN/MAX_RATE_HZ).
PCM_RATE_RANGE_HZ = (8000, 48000)
# espeak-ng's speaking rate in words per minute (espeakRATE: "Values 80 to 450").
SPEED_WPM_RANGE = (80, 450)
LOCAL_TTS_DEFAULT_BINARY = "espeak-ng"
_DEBIAN_PACKAGE = "espeak-ng"

_PCM_RATE = re.compile(r"pcm_([1-9][0-9]*)")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("config", message)


def _one_of(choices: tuple[str, ...]) -> Callable[[object], object]:
    message = "must be one of " + ", ".join(choices)

    def check(value: object) -> object:
        if not isinstance(value, str) or value not in choices:
            raise _fail(message)
        return value

    return check


def _nullable(check: Callable[[object], object]) -> Callable[[object], object]:
    """`check`, except that an explicit `null` (the client's "not set") passes."""

    def nullable(value: object) -> object:
        return None if value is None else check(value)

    return nullable


def _string(value: object) -> object:
    if not isinstance(value, str):
        raise _fail("must be a string")
    return value


def is_elevenlabs_output_format(value: str) -> bool:
    """True for an `outputFormat` the elevenlabs client can turn into telephony µ-law."""
    if value in ELEVENLABS_OUTPUT_FORMATS:
        return True
    match = _PCM_RATE.fullmatch(value)
    low, high = PCM_RATE_RANGE_HZ
    return match is not None and low <= int(match.group(1)) <= high


_OUTPUT_FORMAT_MESSAGE = (
    "must be one of "
    + ", ".join(ELEVENLABS_OUTPUT_FORMATS)
    + ", pcm_<rate> (rate {}..{})".format(*PCM_RATE_RANGE_HZ)
)


def _output_format(value: object) -> object:
    if not isinstance(value, str) or not is_elevenlabs_output_format(value):
        raise _fail(_OUTPUT_FORMAT_MESSAGE)
    return value


# Unset (absent) is None; an explicit `null` is refused where the client needs a value.
ApiKey = Annotated[str | None, BeforeValidator(_string)]
BaseUrl = Annotated[str | None, BeforeValidator(absolute_url)]
Name = Annotated[str | None, BeforeValidator(non_empty)]
NullableName = Annotated[str | None, BeforeValidator(_nullable(non_empty))]
NullableText = Annotated[str | None, BeforeValidator(_nullable(_string))]
# `tts.provider`; unset (or null) picks the first configured of openai, elevenlabs.
TtsProviderName = Annotated[str | None, BeforeValidator(_nullable(_one_of(KNOWN_TTS_PROVIDERS)))]


class _ProviderObject(ConfigModel):
    # The keys the client reads (camelCase) are checked, with their paths in the errors. Other
    # keys pass through: provider-owned maps are handed to the provider raw (SPEC §1.1), and a
    # host document's `messages.tts` may carry keys for its own providers' needs.
    model_config = ConfigDict(populate_by_name=False, validate_by_name=False, extra="allow")


class OpenAITtsProviderConfig(_ProviderObject):
    """`tts.providers.openai`: `POST {baseUrl}/audio/speech` (key env `OPENAI_API_KEY`)."""

    api_key: ApiKey = None
    base_url: BaseUrl = None  # default https://api.openai.com/v1
    model: Name = None  # default gpt-4o-mini-tts
    voice: Name = None  # default alloy
    instructions: NullableText = None
    response_format: Annotated[str | None, BeforeValidator(_one_of(OPENAI_RESPONSE_FORMATS))] = (
        None  # default pcm (PCM16 24 kHz)
    )


class ElevenLabsTtsProviderConfig(_ProviderObject):
    """`tts.providers.elevenlabs` (key env `ELEVENLABS_API_KEY`); skipped for calls without
    `voiceId` (SPEC §8.3), which a number route may add."""

    api_key: ApiKey = None
    base_url: BaseUrl = None  # default https://api.elevenlabs.io
    voice_id: Name = None
    model_id: Name = None  # default eleven_multilingual_v2
    output_format: Annotated[str | None, BeforeValidator(_output_format)] = None  # ulaw_8000


class LocalTtsProviderConfig(_ProviderObject):
    """`tts.providers.local`: offline espeak-ng (no API key)."""

    binary: Name = None  # program name or path, default espeak-ng
    voice: NullableName = None  # espeak-ng `-v`
    speed_wpm: Annotated[int | None, BeforeValidator(_nullable(int_between(*SPEED_WPM_RANGE)))] = (
        None  # espeak-ng `-s`
    )


class TtsProvidersConfig(_ProviderObject):
    """The typed view of `tts.providers` (the config keeps the raw map)."""

    openai: OpenAITtsProviderConfig | None = None
    elevenlabs: ElevenLabsTtsProviderConfig | None = None
    local: LocalTtsProviderConfig | None = None
    microsoft: dict[str, Any] | None = None
    edge: dict[str, Any] | None = None


def _check_providers(value: object) -> object:
    """Validates every provider object; returns the map unchanged for the clients."""
    if not isinstance(value, dict):
        return value  # the declared map type reports "must be an object"
    # Unknown provider ids pass through too (the chain skips providers it cannot use, §8.3);
    # the known ones are checked. Errors keep their location below this field.
    TtsProvidersConfig.model_validate(value)
    return value


# `tts.providers` as the runtime sees it: provider id -> the raw object as written.
TtsProviderMap = Annotated[dict[str, dict[str, Any]], BeforeValidator(_check_providers)]


def missing_local_binary_message(binary: str) -> str:
    """The setup finding when espeak-ng is not on PATH (the local client's own wording)."""
    return (
        f"local TTS needs the {binary} program, which is not on PATH; install it "
        f"(Debian/Ubuntu: `apt-get install {_DEBIAN_PACKAGE}`, package {_DEBIAN_PACKAGE}) "
        "or configure another tts.provider"
    )


_PROVIDER_MODELS: dict[str, type[_ProviderObject]] = {
    "openai": OpenAITtsProviderConfig,
    "elevenlabs": ElevenLabsTtsProviderConfig,
    "local": LocalTtsProviderConfig,
}


def unread_tts_keys(providers: object, prefix: str = "tts.providers") -> list[str]:
    """Paths of keys under known provider objects that voicecall does not read.

    They pass through to the provider (SPEC §1.1), but a typo such as ``outpuFormat`` would
    otherwise go unnoticed, so loading the config warns about each one.
    """
    if not isinstance(providers, dict):
        return []
    unread: list[str] = []
    for provider_id, model in _PROVIDER_MODELS.items():
        block = providers.get(provider_id)
        if not isinstance(block, dict):
            continue
        known = {field.alias or name for name, field in model.model_fields.items()}
        unread += [f"{prefix}.{provider_id}.{key}" for key in block if key not in known]
    return unread
