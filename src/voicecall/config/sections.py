"""Config objects below the top level: carriers, serving, audio, agent, rpc, mock (§1.3-§1.10)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from voicecall.config.base import ConfigModel
from voicecall.config.fields import (
    AbsoluteUrl,
    NonEmptyStr,
    NonNegativeInt,
    Port,
    PortOrEphemeral,
    PositiveInt,
    int_between,
)
from voicecall.config.tts_providers import TtsProviderMap, TtsProviderName

__all__ = [
    "TWILIO_REGION_HOSTS",
    "AgentConfig",
    "AgentContextConfig",
    "BargeInConfig",
    "FastContextConfig",
    "MockConfig",
    "MockOutcome",
    "NumberRoute",
    "OutboundConfig",
    "PlivoConfig",
    "RealtimeConfig",
    "RealtimeTool",
    "RealtimeToolParameters",
    "RecordingConfig",
    "RpcConfig",
    "ServeConfig",
    "StreamingConfig",
    "TailscaleConfig",
    "TelnyxConfig",
    "TtsConfig",
    "TtsOverride",
    "TunnelConfig",
    "TwilioConfig",
    "VoicemailConfig",
    "WebhookSecurityConfig",
]

# Provider-owned maps (SPEC §1.1): each provider validates its own object (TTS: see
# tts_providers, checked here too).
ProviderMap = dict[str, dict[str, Any]]

TWILIO_REGION_HOSTS = {
    "us1": "api.twilio.com",
    "ie1": "api.dublin.ie1.twilio.com",
    "au1": "api.sydney.au1.twilio.com",
}


class TwilioConfig(ConfigModel):
    """Twilio credentials and REST endpoint (SPEC §1.3)."""

    account_sid: str | None = None
    auth_token: str | None = None
    region: Literal["us1", "ie1", "au1"] = "us1"
    api_base_url: AbsoluteUrl | None = None

    def rest_base_url(self) -> str:
        """The REST base URL: `apiBaseUrl`, else `https://<region host>`."""
        return self.api_base_url or f"https://{TWILIO_REGION_HOSTS[self.region]}"


class TelnyxConfig(ConfigModel):
    """Telnyx Call Control credentials (SPEC §1.3)."""

    api_key: str | None = None
    connection_id: str | None = None
    public_key: str | None = None
    api_base_url: AbsoluteUrl = "https://api.telnyx.com/v2"


class PlivoConfig(ConfigModel):
    """Plivo credentials (SPEC §1.3)."""

    auth_id: str | None = None
    auth_token: str | None = None
    api_base_url: AbsoluteUrl = "https://api.plivo.com/v1"


class ServeConfig(ConfigModel):
    """The carrier-facing listener (SPEC §1.4); port 0 picks a free port."""

    port: PortOrEphemeral = 3334
    bind: NonEmptyStr = "127.0.0.1"
    path: NonEmptyStr = "/voice/webhook"
    hold_music_url: AbsoluteUrl = (
        "https://s3.amazonaws.com/com.twilio.music.classical/BusyStrings.mp3"
    )


class TunnelConfig(ConfigModel):
    """Tunnel exposure of the webhook listener (SPEC §1.4, §4.7)."""

    provider: Literal["none", "ngrok", "tailscale-serve", "tailscale-funnel"] = "none"
    ngrok_auth_token: str | None = None
    ngrok_domain: str | None = None
    allow_ngrok_free_tier_loopback_bypass: bool = False


class TailscaleConfig(ConfigModel):
    """Legacy Tailscale exposure (SPEC §1.4)."""

    mode: Literal["off", "serve", "funnel"] = "off"
    port: Port = 443
    path: str = "/voice/webhook"


class WebhookSecurityConfig(ConfigModel):
    """Forwarded-header trust and the private-URL escape hatch (SPEC §1.4, §4.5)."""

    allowed_hosts: list[str] = Field(default_factory=list)
    trust_forwarding_headers: bool = False
    trusted_proxy_ips: list[str] = Field(default_factory=list, alias="trustedProxyIPs")
    allow_private_webhook_url: bool = False


class StreamingConfig(ConfigModel):
    """Classic pipeline: carrier audio -> STT -> agent -> TTS (SPEC §1.5)."""

    enabled: bool = False
    provider: NonEmptyStr | None = None
    stream_path: NonEmptyStr = "/voice/stream"
    providers: ProviderMap = Field(default_factory=dict)
    pre_start_timeout_ms: PositiveInt = 5000
    max_pending_connections: PositiveInt = 32
    max_pending_connections_per_ip: PositiveInt = 4
    max_connections: PositiveInt = 128
    sentence_streaming: bool = True


class RealtimeToolParameters(ConfigModel):
    """JSON-schema parameters of a custom realtime tool."""

    type: Literal["object"] = "object"
    properties: dict[str, Any] = Field(default_factory=dict)
    required: list[str] | None = None


class RealtimeTool(ConfigModel):
    """A custom function tool offered to the realtime model (SPEC §1.6)."""

    type: Literal["function"] = "function"
    name: NonEmptyStr
    description: str = ""
    parameters: RealtimeToolParameters = Field(default_factory=RealtimeToolParameters)


def _at_least_one(value: object) -> object:
    if isinstance(value, list) and not value:
        raise PydanticCustomError("config", "must list at least one source")
    return value


def _default_sources() -> list[Literal["memory", "sessions"]]:
    return ["memory", "sessions"]


class FastContextConfig(ConfigModel):
    """Fast memory/session lookup before consulting the agent (SPEC §7.6)."""

    enabled: bool = False
    timeout_ms: PositiveInt = 800
    max_results: PositiveInt = 3
    sources: Annotated[list[Literal["memory", "sessions"]], BeforeValidator(_at_least_one)] = Field(
        default_factory=_default_sources
    )
    fallback_to_consult: bool = False


class AgentContextConfig(ConfigModel):
    """Identity and workspace files folded into realtime instructions (SPEC §1.6)."""

    enabled: bool = False
    max_chars: PositiveInt = 6000
    include_identity: bool = True
    include_workspace_files: bool = True
    files: list[str] = Field(default_factory=lambda: ["SOUL.md", "IDENTITY.md", "USER.md"])


class BargeInConfig(ConfigModel):
    """The local realtime barge-in gate (SPEC §7.5)."""

    rms_threshold: float = Field(default=0.035, gt=0, le=1)
    start_chunks: PositiveInt = 2
    stop_chunks: PositiveInt = 12


class RealtimeConfig(ConfigModel):
    """Full-duplex voice bridge (SPEC §1.6); `stream_path` is derived from `serve.path` if unset."""

    enabled: bool = False
    provider: NonEmptyStr | None = None
    stream_path: str = ""
    instructions: str | None = None
    tool_policy: Literal["safe-read-only", "owner", "none"] = "safe-read-only"
    consult_policy: Literal["auto", "substantive", "always"] = "auto"
    consult_thinking_level: (
        Literal["off", "minimal", "low", "medium", "high", "xhigh", "adaptive", "max", "ultra"]
        | None
    ) = None
    consult_fast_mode: bool | None = None
    consult_inline_wait_ms: NonNegativeInt = 1500
    tools: list[RealtimeTool] = Field(default_factory=list)
    fast_context: FastContextConfig = Field(default_factory=FastContextConfig)
    agent_context: AgentContextConfig = Field(default_factory=AgentContextConfig)
    prewarm: bool = True
    inactivity_timeout_ms: PositiveInt = 30000
    barge_in: BargeInConfig = Field(default_factory=BargeInConfig)
    farewell_max_wait_ms: PositiveInt = 15000
    providers: ProviderMap = Field(default_factory=dict)


class TtsConfig(ConfigModel):
    """Telephony TTS (SPEC §1.7); each `providers` object is checked, then kept as written."""

    provider: TtsProviderName = None
    providers: TtsProviderMap = Field(default_factory=dict)
    fallback: bool = True
    timeout_ms: PositiveInt = 8000


class TtsOverride(ConfigModel):
    """A route's or call's partial TTS object, deep-merged over the effective TTS (SPEC §1.10)."""

    provider: TtsProviderName = None
    providers: TtsProviderMap | None = None
    fallback: bool | None = None
    timeout_ms: PositiveInt | None = None


class VoicemailConfig(ConfigModel):
    """Twilio answering-machine detection (SPEC §1.8)."""

    detection: Literal["off", "twilio"] = "off"
    on_machine: Literal["leave-message", "hang-up"] = "leave-message"
    hold_opening_max_ms: PositiveInt = 30000
    machine_detection_speech_threshold_ms: Annotated[
        int, BeforeValidator(int_between(1000, 6000))
    ] = 6000
    machine_detection_speech_end_threshold_ms: Annotated[
        int, BeforeValidator(int_between(500, 5000))
    ] = 1200
    machine_detection_silence_timeout_ms: Annotated[
        int, BeforeValidator(int_between(2000, 10000))
    ] = 5000
    machine_detection_timeout_ms: Annotated[
        int, BeforeValidator(int_between(3000, 59000, multiple_of=1000))
    ] = 30000


class RecordingConfig(ConfigModel):
    """Opt-in call recording (SPEC §1.8)."""

    enabled: bool = False
    channels: Literal["mono", "dual"] = "mono"


_RUNNER = re.compile(r"^(builtin|python:[A-Za-z_][\w.]*:[A-Za-z_][\w.]*)$")
_MODEL_REF = re.compile(r"^[^/\s]+/\S+$")


def _runner(value: object) -> object:
    if not isinstance(value, str) or not _RUNNER.match(value):
        raise PydanticCustomError("config", 'must be "builtin" or "python:<module>:<attr>"')
    return value


def _model_ref(value: object) -> object:
    if not isinstance(value, str) or not _MODEL_REF.match(value):
        raise PydanticCustomError("config", "must be provider/model (e.g. openai/gpt-4o-mini)")
    return value


class AgentConfig(ConfigModel):
    """The auto-response agent (SPEC §1.9, §9)."""

    runner: Annotated[str, BeforeValidator(_runner)] = "builtin"
    name: NonEmptyStr | None = None
    default_model: Annotated[str, BeforeValidator(_model_ref)] = "openai/gpt-4o-mini"
    providers: ProviderMap = Field(default_factory=dict)
    history_turns: PositiveInt = 20


class RpcConfig(ConfigModel):
    """The control listener (SPEC §1.9, §11.3); port 0 picks a free port."""

    bind: NonEmptyStr = "127.0.0.1"
    port: PortOrEphemeral = 3335
    token: str | None = None


MockOutcome = Literal["answer", "busy", "no-answer", "voicemail", "failed"]


def _digit_keys(value: object) -> object:
    if isinstance(value, dict):
        for key in value:
            if not (isinstance(key, str) and key.isdigit()):
                raise PydanticCustomError("config", 'keys must be digit strings (e.g. "0486")')
    return value


class MockConfig(ConfigModel):
    """The offline mock carrier's simulated far end (SPEC §3.6)."""

    simulate: bool = True
    ring_ms: NonNegativeInt = 200
    answer_ms: NonNegativeInt = 600
    outcome: MockOutcome = "answer"
    outcomes_by_number_suffix: Annotated[dict[str, MockOutcome], BeforeValidator(_digit_keys)] = (
        Field(default_factory=dict)
    )
    speech_ms_per_char: NonNegativeInt = 5
    reply_ms: NonNegativeInt = 300
    script: list[str] = Field(
        default_factory=lambda: [
            "Yes, that works for me.",
            "Could you repeat the time?",
            "Thanks, goodbye.",
        ]
    )
    hangup_after_ms: PositiveInt | None = None


class OutboundConfig(ConfigModel):
    """Outbound call defaults (SPEC §1.2)."""

    default_mode: Literal["notify", "conversation"] = "notify"
    notify_hangup_delay_sec: NonNegativeInt = 3


class NumberRoute(ConfigModel):
    """Per-number overrides (SPEC §1.10); unset keys fall back to the global value."""

    inbound_greeting: str | None = None
    tts: TtsOverride | None = None
    agent_id: NonEmptyStr | None = None
    response_model: str | None = None
    response_system_prompt: str | None = None
    response_timeout_ms: PositiveInt | None = None
