"""voicecall configuration: models, loading, validation, legacy rewrite, setup checks (§1)."""

from voicecall.config.models import (
    DEFAULT_INBOUND_GREETING,
    MOCK_FROM_NUMBER,
    CarrierName,
    VoicecallConfig,
    derive_realtime_stream_path,
)
from voicecall.config.sections import (
    AgentConfig,
    MockConfig,
    NumberRoute,
    RealtimeConfig,
    RpcConfig,
    ServeConfig,
    StreamingConfig,
    TtsConfig,
)

__all__ = [
    "DEFAULT_INBOUND_GREETING",
    "MOCK_FROM_NUMBER",
    "AgentConfig",
    "CarrierName",
    "MockConfig",
    "NumberRoute",
    "RealtimeConfig",
    "RpcConfig",
    "ServeConfig",
    "StreamingConfig",
    "TtsConfig",
    "VoicecallConfig",
    "derive_realtime_stream_path",
]
