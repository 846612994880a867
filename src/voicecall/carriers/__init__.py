"""Carrier registry: maps a provider name to a lazily imported carrier class."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from voicecall.carriers.base import CallStatus, Carrier, EventSink
from voicecall.errors import ConfigError

__all__ = [
    "CARRIERS",
    "CallStatus",
    "Carrier",
    "CarrierEntry",
    "EventSink",
    "create_carrier",
    "load_carrier_class",
]


@dataclass(frozen=True, slots=True)
class CarrierEntry:
    """Where a carrier class lives and which pip extra its dependencies come from."""

    module: str
    attr: str
    extra: str | None = None


CARRIERS: dict[str, CarrierEntry] = {
    "mock": CarrierEntry("voicecall.carriers.mock.carrier", "MockCarrier"),
    "twilio": CarrierEntry("voicecall.carriers.twilio.carrier", "TwilioCarrier", "twilio"),
    "telnyx": CarrierEntry("voicecall.carriers.telnyx.carrier", "TelnyxCarrier", "telnyx"),
    "plivo": CarrierEntry("voicecall.carriers.plivo.carrier", "PlivoCarrier", "plivo"),
}


def load_carrier_class(name: str) -> type[Carrier]:
    """Import the class registered under ``name``; failures are ConfigErrors naming the fix."""
    entry = CARRIERS.get(name)
    if entry is None:
        known = ", ".join(sorted(CARRIERS))
        raise ConfigError(f"provider: unknown carrier {name!r} (expected one of {known})")
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing == entry.module or entry.module.startswith(f"{missing}."):
            raise ConfigError(f"provider: carrier {name!r} is not available in this build") from exc
        extra = entry.extra or name
        raise ConfigError(
            f"provider: carrier {name!r} needs the optional dependency {missing!r}; "
            f"install it with: pip install 'voicecall[{extra}]'"
        ) from exc
    cls = getattr(module, entry.attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Carrier)):
        raise ConfigError(f"provider: {entry.module}.{entry.attr} is not a Carrier")
    return cls


def create_carrier(config: Any) -> Carrier:
    """Build the carrier named by ``config.provider`` (unset or no config means ``mock``)."""
    name = getattr(config, "provider", None) or "mock"
    cls = load_carrier_class(str(name))
    carrier: Carrier = cls(config)  # type: ignore[call-arg]
    return carrier
