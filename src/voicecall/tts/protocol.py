"""What every provider's sans-IO protocol shares: settings parsing that names the bad key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from voicecall.errors import ConfigError

__all__ = ["ProviderSettings", "parse_settings"]


class ProviderSettings(BaseModel):
    """`tts.providers.<id>` as the provider reads it; unknown keys are the provider's own."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    api_key: str = Field(default="", validation_alias=AliasChoices("apiKey", "api_key"))


SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


def parse_settings(model: type[SettingsT], raw: Mapping[str, Any], provider_id: str) -> SettingsT:
    """Validates a raw provider map; a bad value is a ConfigError naming its key path."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        path = f"tts.providers.{provider_id}" + (f".{key}" if key else "")
        raise ConfigError(f"{path}: {first['msg']}") from None
