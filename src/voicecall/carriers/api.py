"""Carrier REST requests and errors as plain data, so protocol modules build them without I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voicecall.errors import CallError

__all__ = ["IDEMPOTENT_METHODS", "ApiRequest", "ApiResponse", "CarrierApiError"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One REST call: ``path`` is relative to the carrier's base URL (it starts with ``/``).

    ``form`` is sent as ``application/x-www-form-urlencoded`` (pairs, so list values are repeated
    keys), ``json_body`` as JSON; at most one of them. ``idempotent`` overrides the method's
    default (GET/HEAD/PUT/DELETE/OPTIONS are idempotent) for retries on 5xx/429.
    """

    method: str
    path: str
    form: Sequence[tuple[str, str]] | None = None
    json_body: Any = None
    query: Sequence[tuple[str, str]] = ()
    idempotent: bool | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        """Whether a 5xx/429 answer (or a transport failure) may be retried."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in IDEMPOTENT_METHODS


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful (2xx) carrier answer."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON (an empty body is ``None``)."""
        return json.loads(self.body) if self.body.strip() else None


class CarrierApiError(CallError):
    """A carrier REST call failed: ``<carrier> API error <status>: <message>``.

    ``status`` is the HTTP status (0 when no answer came back: timeout, refused connection,
    refused redirect); ``code`` is the carrier's own error code when it sent one.
    """

    remote = True

    def __init__(
        self, carrier: str, status: int, message: str, *, code: str | int | None = None
    ) -> None:
        self.carrier = carrier
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{carrier} API error {status}: {message}")

    @property
    def not_found(self) -> bool:
        """The resource does not exist (HTTP 404): for a hangup, the call is already gone."""
        return self.status == 404
