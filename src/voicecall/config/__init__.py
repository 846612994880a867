"""voicecall configuration: models, loading, validation, legacy rewrite, setup checks (§1)."""

from voicecall.config.doctor import DoctorResult, doctor, doctor_fix
from voicecall.config.exposure import is_private_host, private_webhook_message
from voicecall.config.loader import PROVIDER_NOT_SET_WARNING, LoadedConfig, load_config
from voicecall.config.merge import deep_merge
from voicecall.config.models import (
    DEFAULT_INBOUND_GREETING,
    MOCK_FROM_NUMBER,
    CarrierName,
    VoicecallConfig,
    derive_realtime_stream_path,
)
from voicecall.config.routes import CallSettings, resolve_route
from voicecall.config.secrets import api_key_for
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
from voicecall.config.setup_checks import Check, effective_model, setup_checks
from voicecall.config.validate import is_loopback_host, validate_setup

__all__ = [
    "DEFAULT_INBOUND_GREETING",
    "MOCK_FROM_NUMBER",
    "PROVIDER_NOT_SET_WARNING",
    "AgentConfig",
    "CallSettings",
    "CarrierName",
    "Check",
    "DoctorResult",
    "LoadedConfig",
    "MockConfig",
    "NumberRoute",
    "RealtimeConfig",
    "RpcConfig",
    "ServeConfig",
    "StreamingConfig",
    "TtsConfig",
    "VoicecallConfig",
    "api_key_for",
    "deep_merge",
    "derive_realtime_stream_path",
    "doctor",
    "doctor_fix",
    "effective_model",
    "is_loopback_host",
    "is_private_host",
    "load_config",
    "private_webhook_message",
    "resolve_route",
    "setup_checks",
    "validate_setup",
]
