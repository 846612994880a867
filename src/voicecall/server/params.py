"""Typed readers for JSON-RPC params whose errors name the offending field (-32602)."""

from __future__ import annotations

from typing import Any

from voicecall.errors import InvalidParamsError

__all__ = ["invalid_param", "optional_bool", "optional_str", "required_str"]


def invalid_param(field: str, message: str) -> InvalidParamsError:
    """An InvalidParamsError carrying the field name for ``error.data.field``."""
    error = InvalidParamsError(message)
    error.field = field  # type: ignore[attr-defined]
    return error


def required_str(params: dict[str, Any], field: str) -> str:
    """A non-empty string param, else a -32602 error naming ``field``."""
    value = params.get(field)
    if value is None or value == "":
        raise invalid_param(field, f"{field} is required")
    if not isinstance(value, str):
        raise invalid_param(field, f"{field} must be a string")
    return value


def optional_str(params: dict[str, Any], field: str) -> str | None:
    """A string param that may be absent (``null`` and ``""`` count as absent)."""
    value = params.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid_param(field, f"{field} must be a string")
    return value


def optional_bool(params: dict[str, Any], field: str, default: bool) -> bool:
    """A boolean param with a default."""
    value = params.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_param(field, f"{field} must be a boolean")
    return value
