"""Constrained field types whose errors read as the SPEC §1.13 validation messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "E164",
    "E164_PATTERN",
    "AbsoluteUrl",
    "NonEmptyStr",
    "NonNegativeInt",
    "Port",
    "PortOrEphemeral",
    "PositiveInt",
    "absolute_url",
    "int_between",
    "non_empty",
]

E164_PATTERN = re.compile(r"^\+[1-9]\d{1,14}$")


def _fail(message: str) -> PydanticCustomError:
    # The error type "config" tells errors.py to print "<path> <message>" verbatim.
    return PydanticCustomError("config", message)


def _require_int(value: object, message: str) -> int:
    # bool is an int subclass in Python; a config `true` is never a number.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(message)
    return value


def _positive(value: object) -> int:
    number = _require_int(value, "must be an integer greater than 0")
    if number <= 0:
        raise _fail("must be an integer greater than 0")
    return number


def _non_negative(value: object) -> int:
    number = _require_int(value, "must be an integer >= 0")
    if number < 0:
        raise _fail("must be an integer >= 0")
    return number


def int_between(low: int, high: int, *, multiple_of: int | None = None) -> Callable[[object], int]:
    """A validator for an int in ``low..high`` (inclusive), optionally a multiple of a step."""
    message = f"must be an integer between {low} and {high}"
    if multiple_of is not None:
        message += f" and a multiple of {multiple_of}"

    def check(value: object) -> int:
        number = _require_int(value, message)
        if not low <= number <= high or (multiple_of is not None and number % multiple_of):
            raise _fail(message)
        return number

    return check


def _e164(value: object) -> str:
    if not isinstance(value, str) or not E164_PATTERN.match(value):
        raise _fail("must be an E.164 number (e.g. +15550001234)")
    return value


def non_empty(value: object) -> str:
    """A validator for a string of at least one character."""
    if not isinstance(value, str) or not value:
        raise _fail("must be a non-empty string")
    return value


def absolute_url(value: object) -> str:
    """A validator for an absolute http(s) URL."""
    if not isinstance(value, str):
        raise _fail("must be an absolute http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail("must be an absolute http(s) URL")
    return value


PositiveInt = Annotated[int, BeforeValidator(_positive)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative)]
E164 = Annotated[str, BeforeValidator(_e164)]
NonEmptyStr = Annotated[str, BeforeValidator(non_empty)]
AbsoluteUrl = Annotated[str, BeforeValidator(absolute_url)]
Port = Annotated[int, BeforeValidator(int_between(1, 65535))]
# 0 asks the OS for a free port: used by tests and embedding hosts (a voicecall addition).
PortOrEphemeral = Annotated[int, BeforeValidator(int_between(0, 65535))]
