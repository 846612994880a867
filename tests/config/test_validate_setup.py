"""Setup validation (SPEC §1.13) and the `voicecall setup` checks (§11.1)."""

from __future__ import annotations

from typing import Any

import pytest

from voicecall.config import LoadedConfig, VoicecallConfig, setup_checks, validate_setup


def config_of(**raw: Any) -> VoicecallConfig:
    return VoicecallConfig.model_validate(raw)


def loaded_of(env: dict[str, str] | None = None, **raw: Any) -> LoadedConfig:
    config = config_of(**raw)
    return LoadedConfig(config=config, path=None, enabled=config.enabled, env=env or {})


def test_defaults_are_ready() -> None:
    """The offline mock default needs nothing more."""
    assert validate_setup(VoicecallConfig()) == []


@pytest.mark.parametrize(
    ("raw", "messages"),
    [
        (
            {"provider": "twilio"},
            [
                "fromNumber is required for provider twilio (or set TWILIO_FROM_NUMBER)",
                "twilio.accountSid is required (or set TWILIO_ACCOUNT_SID)",
                "twilio.authToken is required (or set TWILIO_AUTH_TOKEN)",
            ],
        ),
        (
            {"provider": "telnyx"},
            [
                "fromNumber is required for provider telnyx",
                "telnyx.apiKey is required (or set TELNYX_API_KEY)",
                "telnyx.connectionId is required (or set TELNYX_CONNECTION_ID)",
                "telnyx.publicKey is required unless skipSignatureVerification is true"
                " (or set TELNYX_PUBLIC_KEY)",
            ],
        ),
        (
            {"provider": "plivo", "fromNumber": "+15550001234"},
            [
                "plivo.authId is required (or set PLIVO_AUTH_ID)",
                "plivo.authToken is required (or set PLIVO_AUTH_TOKEN)",
            ],
        ),
        (
            {"realtime": {"enabled": True}, "streaming": {"enabled": True}},
            ["realtime.enabled and streaming.enabled cannot both be true; pick one audio mode"],
        ),
        (
            {"voicemail": {"detection": "twilio"}},
            ['voicemail.detection "twilio" requires provider twilio'],
        ),
        (
            {"tailscale": {"mode": "funnel", "port": 444}},
            ["tailscale.port must be one of 443, 8443, 10000 when using Funnel"],
        ),
        (
            {"tunnel": {"provider": "tailscale-funnel"}, "tailscale": {"port": 8080}},
            ["tailscale.port must be one of 443, 8443, 10000 when using Funnel"],
        ),
        (
            {"rpc": {"bind": "0.0.0.0"}},
            ["rpc.token is required when rpc.bind is not a loopback address"],
        ),
    ],
)
def test_validation_messages(raw: dict[str, Any], messages: list[str]) -> None:
    """Each incomplete setup yields the exact SPEC message(s) in order."""
    assert validate_setup(config_of(**raw)) == messages


def test_telnyx_public_key_not_needed_when_signatures_are_skipped() -> None:
    """skipSignatureVerification waives the Telnyx public key."""
    config = config_of(
        provider="telnyx",
        fromNumber="+15550001234",
        telnyx={"apiKey": "k", "connectionId": "c"},
        skipSignatureVerification=True,
    )
    assert validate_setup(config) == []


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_rpc_needs_no_token(bind: str) -> None:
    """A loopback control listener may run without a bearer token."""
    assert validate_setup(config_of(rpc={"bind": bind})) == []


def test_disabled_config_skips_validation() -> None:
    """A disabled config reports nothing even when incomplete."""
    assert validate_setup(config_of(enabled=False, provider="twilio")) == []


def test_mock_setup_checks_all_pass_offline() -> None:
    """The defaults pass every check, in SPEC order, with the offline responder noted."""
    checks = setup_checks(loaded_of(outbound={"defaultMode": "conversation"}))
    assert [c.id for c in checks] == [
        "enabled",
        "provider",
        "provider-config",
        "webhook-exposure",
        "mode",
        "agent",
    ]
    assert all(c.ok for c in checks)
    messages = {c.id: c.message for c in checks}
    assert messages["provider"] == "provider: mock (offline, no real calls)"
    assert messages["webhook-exposure"] == "mock provider: no public webhook needed"
    assert messages["mode"] == "audio mode: carrier-native speech"
    assert "offline deterministic responder" in messages["agent"]


def test_real_carrier_without_credentials_needs_attention() -> None:
    """A bare twilio config fails provider-config, exposure and (conversation) agent."""
    checks = setup_checks(loaded_of(provider="twilio", outbound={"defaultMode": "conversation"}))
    failed = {c.id: c.message for c in checks if not c.ok}
    assert failed["provider-config"].split("; ")[1] == (
        "twilio.accountSid is required (or set TWILIO_ACCOUNT_SID)"
    )
    assert failed["webhook-exposure"] == (
        "Set publicUrl or configure tunnel/tailscale so the carrier can reach /voice/webhook"
    )
    assert "agent" in failed


def test_model_credentials_from_env_satisfy_the_agent_check() -> None:
    """OPENAI_API_KEY makes the builtin agent ready for a real carrier."""
    checks = setup_checks(
        loaded_of(
            {"OPENAI_API_KEY": "sk"}, provider="twilio", outbound={"defaultMode": "conversation"}
        )
    )
    agent = checks[-1]
    assert agent.ok
    assert agent.message == "Response agent: main (model openai/gpt-4o-mini)"


def test_private_public_url_is_refused() -> None:
    """A loopback publicUrl fails exposure with the §4.6 text unless private URLs are allowed."""
    url = "http://127.0.0.1:3334/voice/webhook"
    refused = setup_checks(loaded_of(provider="twilio", publicUrl=url))[3]
    assert not refused.ok
    assert refused.message.startswith(f"webhook URL {url} points at a local or private address")
    allowed = setup_checks(
        loaded_of(
            provider="twilio", publicUrl=url, webhookSecurity={"allowPrivateWebhookUrl": True}
        )
    )[3]
    assert allowed.ok
    assert allowed.message == f"webhook: {url}"


def test_realtime_mode_notes_outbound_only() -> None:
    """Realtime with inboundPolicy disabled passes with the outbound-only note."""
    mode = setup_checks(loaded_of(realtime={"enabled": True, "provider": "google"}))[4]
    assert mode.ok
    assert mode.message == (
        'audio mode: realtime (google); realtime is outbound-only while inboundPolicy is "disabled"'
    )


def test_agent_error_and_disabled() -> None:
    """A runner load error fails the agent check; a disabled config fails `enabled` only."""
    assert setup_checks(loaded_of(), agent_error="cannot import x")[-1].message == "cannot import x"
    disabled = setup_checks(loaded_of(enabled=False))
    assert [(c.id, c.ok, c.message) for c in disabled] == [
        ("enabled", False, "voice calls are disabled")
    ]
