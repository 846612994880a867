"""The REST client every carrier shares: one aiohttp session, 15 s timeout, bounded retries.

A carrier builds :class:`~voicecall.carriers.api.ApiRequest` values (sans-IO, in its
``rest.py``) and sends them through a :class:`CarrierHttp` bound to its configured base URL:

- the process's one shared ``aiohttp.ClientSession`` is passed in, never created here;
- each attempt has a 15 s total timeout; redirects are not followed (a 3xx is an error);
- requests go only to the base URL's scheme, host and port (anything else is refused);
- idempotent requests are retried with exponential backoff on 5xx, 429 and transport errors
  (``Retry-After`` honoured, capped); non-idempotent ones are sent once;
- failures raise :class:`~voicecall.carriers.api.CarrierApiError`
  (``<carrier> API error <status>: <message>``, with the carrier's error code). A 404 is an
  error like any other: ``hangup`` callers treat ``exc.not_found`` as success.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from voicecall.carriers.api import ApiRequest, ApiResponse, CarrierApiError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ApiRequest",
    "ApiResponse",
    "CarrierApiError",
    "CarrierHttp",
    "ErrorParser",
    "basic_auth",
    "parse_error_body",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0
_MAX_RETRY_AFTER_S = 5.0
_MESSAGE_LIMIT = 300

ErrorParser = Callable[[int, bytes], tuple[str, str | int | None]]
"""``(status, body) -> (message, carrier error code)`` for a failed answer."""


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_error_body(status: int, body: bytes) -> tuple[str, str | int | None]:
    """Message and code from the error shapes of Twilio, Telnyx and Plivo (else the raw text).

    Twilio ``{"code", "message"}`` (and RFC 9457 ``{"code", "title", "detail"}``), Telnyx
    ``{"errors": [{"code", "title", "detail"}]}``, Plivo ``{"error": "..." | {...}}``.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            message = _first_text(first.get("detail"), first.get("title"), first.get("message"))
            return message or f"HTTP {status}", first.get("code")
        nested = data.get("error")
        if isinstance(nested, dict):
            message = _first_text(nested.get("message"), nested.get("detail"), nested.get("error"))
            return message or f"HTTP {status}", nested.get("code")
        message = _first_text(data.get("message"), data.get("detail"), data.get("title"), nested)
        code = data.get("code")
        if message is not None or code is not None:
            return message or f"HTTP {status}", code if isinstance(code, str | int) else None
    if text:
        return text[:_MESSAGE_LIMIT], None
    return f"HTTP {status}", None


class CarrierHttp:
    """Sends one carrier's REST requests over the shared session (see the module docstring)."""

    def __init__(
        self,
        carrier: str,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        error_parser: ErrorParser = parse_error_body,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.carrier = carrier
        self._session = session
        self._base = URL(base_url.rstrip("/"))
        if not self._base.is_absolute():
            raise ValueError(f"{carrier} base URL must be absolute: {base_url}")
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._parse_error = error_parser
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        """The base every request path is appended to."""
        return str(self._base)

    def url_for(self, request: ApiRequest) -> URL:
        """The absolute URL of ``request``; refuses anything off the base URL's origin."""
        url = URL(str(self._base) + request.path)
        if request.query:
            url = url.update_query(list(request.query))
        if url.origin() != self._base.origin():
            raise CarrierApiError(self.carrier, 0, f"refusing request to {url.origin()}")
        return url

    async def request(self, request: ApiRequest) -> ApiResponse:
        """Send ``request``; the 2xx answer, or CarrierApiError after the allowed retries."""
        url = self.url_for(request)
        attempts = 1 + (self._max_retries if request.retryable else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                status, body, headers = await self._send(request, url)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    reason = f"timed out after {self._timeout.total:g} s"
                if last:
                    raise CarrierApiError(self.carrier, 0, f"request failed: {reason}") from exc
                await self._sleep(self._delay(attempt, None))
                continue
            if 200 <= status < 300:
                return ApiResponse(status, body, headers)
            if 300 <= status < 400:
                location = headers.get("Location", "")
                raise CarrierApiError(self.carrier, status, f"unexpected redirect to {location}")
            if (status >= 500 or status == 429) and not last:
                log.info("%s API %s %s -> %s; retrying", self.carrier, request.method, url, status)
                await self._sleep(self._delay(attempt, headers.get("Retry-After")))
                continue
            message, code = self._parse_error(status, body)
            raise CarrierApiError(self.carrier, status, message, code=code)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    async def _send(self, request: ApiRequest, url: URL) -> tuple[int, bytes, dict[str, str]]:
        kwargs: dict[str, Any] = {}
        if request.form is not None:
            kwargs["data"] = aiohttp.FormData(list(request.form))
        elif request.json_body is not None:
            kwargs["json"] = request.json_body
        async with self._session.request(
            request.method.upper(),
            url,
            headers={**self._headers, **request.headers},
            allow_redirects=False,
            timeout=self._timeout,
            **kwargs,
        ) as response:
            body = await response.read()
            return response.status, body, dict(response.headers)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER_S)
            except ValueError:
                pass
        return float(self._backoff_s * (2**attempt))
