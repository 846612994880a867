"""Turns pydantic errors into SPEC §1.13 messages that name the key path, never a value."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

__all__ = ["format_path", "validation_problems"]

_KEY_MARKER = "[key]"

_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "missing": "is required",
}


def format_path(loc: Sequence[str | int]) -> str:
    """`("numbers", "+1555", "tts")` -> `numbers.+1555.tts`; list indexes as `[i]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _choices(expected: str) -> str:
    # pydantic renders Literal choices as "'a', 'b' or 'c'"; SPEC wants "a, b, c".
    return expected.replace("' or '", "', '").replace("'", "")


def _problem(error: dict[str, object]) -> str:
    loc = [p for p in error["loc"] if p != _KEY_MARKER]  # type: ignore[attr-defined]
    path = format_path(loc) or "config"
    kind = str(error["type"])
    ctx = error.get("ctx") or {}
    assert isinstance(ctx, dict)
    if kind == "extra_forbidden":
        return f"unknown config key {path}"
    if kind == "unknown_key":  # an unknown name in a map of known ids, e.g. tts.providers
        return f"unknown config key {path} (known: {ctx.get('known')})"
    if kind == "config":
        return f"{path} {error['msg']}"
    if kind == "literal_error":
        return f"{path} must be one of {_choices(str(ctx.get('expected', '')))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ops = {
            "greater_than": ("gt", ">"),
            "greater_than_equal": ("ge", ">="),
            "less_than": ("lt", "<"),
            "less_than_equal": ("le", "<="),
        }
        key, op = ops[kind]
        return f"{path} must be a number {op} {ctx.get(key)}"
    if kind in _TYPE_MESSAGES:
        return f"{path} {_TYPE_MESSAGES[kind]}"
    # pydantic's own text for anything else; inputs are excluded so no value can leak.
    return f"{path}: {error['msg']}"


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """One message per problem in `exc`, with paths under `prefix`, free of input values."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ([prefix] if prefix else []) + list(error["loc"])
        problems.append(_problem({**error, "loc": loc}))
    return problems
