"""The top-level voicecall config object (SPEC §1.2) with every default and constraint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from voicecall.config.base import ConfigModel
from voicecall.config.fields import E164, AbsoluteUrl, NonEmptyStr, NonNegativeInt, PositiveInt
from voicecall.config.sections import (
    AgentConfig,
    MockConfig,
    NumberRoute,
    OutboundConfig,
    PlivoConfig,
    RealtimeConfig,
    RecordingConfig,
    RpcConfig,
    ServeConfig,
    StreamingConfig,
    TailscaleConfig,
    TelnyxConfig,
    TtsConfig,
    TunnelConfig,
    TwilioConfig,
    VoicemailConfig,
    WebhookSecurityConfig,
)

__all__ = [
    "DEFAULT_INBOUND_GREETING",
    "MOCK_FROM_NUMBER",
    "CarrierName",
    "VoicecallConfig",
    "derive_realtime_stream_path",
]

CarrierName = Literal["twilio", "telnyx", "plivo", "mock"]
MOCK_FROM_NUMBER = "+15550000000"
DEFAULT_INBOUND_GREETING = "Hello! How can I help you today?"


def derive_realtime_stream_path(serve_path: str) -> str:
    """The realtime bridge path for a webhook path (SPEC §1.6 `realtime.streamPath`)."""
    if serve_path == "/":
        return "/voice/stream/realtime"
    if serve_path.endswith("/webhook"):
        return serve_path[: -len("/webhook")] + "/stream/realtime"
    return serve_path.rstrip("/") + "/stream/realtime"


class VoicecallConfig(ConfigModel):
    """The whole gateway config; `VoicecallConfig()` is the all-defaults offline mock setup."""

    enabled: bool = True
    provider: CarrierName = "mock"
    from_number: E164 | None = None
    to_number: E164 | None = None
    inbound_policy: Literal["disabled", "allowlist", "pairing", "open"] = "disabled"
    allow_from: list[E164] = Field(default_factory=list)
    inbound_greeting: str | None = None
    numbers: dict[E164, NumberRoute] = Field(default_factory=dict)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)
    max_duration_seconds: PositiveInt = 300
    stale_call_reaper_seconds: NonNegativeInt = 0
    silence_timeout_ms: PositiveInt = 800
    transcript_timeout_ms: PositiveInt = 180000
    ring_timeout_ms: PositiveInt = 30000
    max_concurrent_calls: PositiveInt = 1
    session_scope: Literal["per-phone", "per-call", "main"] = "per-phone"
    public_url: AbsoluteUrl | None = None
    skip_signature_verification: bool = False
    agent_id: NonEmptyStr = "main"
    response_model: NonEmptyStr | None = None
    response_system_prompt: str | None = None
    response_timeout_ms: PositiveInt = 30000
    store: NonEmptyStr | None = None
    # voicecall addition: fsync calls.jsonl after every appended record (durability over speed).
    store_fsync: bool = False
    twilio: TwilioConfig = Field(default_factory=TwilioConfig)
    telnyx: TelnyxConfig = Field(default_factory=TelnyxConfig)
    plivo: PlivoConfig = Field(default_factory=PlivoConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    tailscale: TailscaleConfig = Field(default_factory=TailscaleConfig)
    tunnel: TunnelConfig = Field(default_factory=TunnelConfig)
    webhook_security: WebhookSecurityConfig = Field(default_factory=WebhookSecurityConfig)
    streaming: StreamingConfig = Field(default_factory=StreamingConfig)
    realtime: RealtimeConfig = Field(default_factory=RealtimeConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
    voicemail: VoicemailConfig = Field(default_factory=VoicemailConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    rpc: RpcConfig = Field(default_factory=RpcConfig)
    mock: MockConfig = Field(default_factory=MockConfig)

    @model_validator(mode="after")
    def _fill_derived(self) -> VoicecallConfig:
        if self.provider == "mock" and self.from_number is None:
            self.from_number = MOCK_FROM_NUMBER
        if not self.realtime.stream_path:
            self.realtime.stream_path = derive_realtime_stream_path(self.serve.path)
        return self

    def store_dir(self, env: Mapping[str, str] | None = None) -> Path:
        """The data dir: `store`, else `$VOICECALL_HOME`, else `~/.voicecall` (`~` expanded)."""
        environ = os.environ if env is None else env
        raw = self.store or environ.get("VOICECALL_HOME") or "~/.voicecall"
        return Path(raw).expanduser().absolute()

    def greeting(self) -> str:
        """The inbound greeting, falling back to the SPEC default text."""
        return self.inbound_greeting or DEFAULT_INBOUND_GREETING

    def agent_name(self) -> str:
        """`agent.name`, defaulting to `agentId` (SPEC §1.9)."""
        return self.agent.name or self.agent_id
