"""The shared carrier REST client: errors, retries, timeouts, redirects and host pinning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from voicecall.carriers.http import ApiRequest, CarrierApiError, CarrierHttp, basic_auth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A tiny local HTTP server whose one route answers from a list of handlers, in turn."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self.seen: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.base_url = ""

    async def route(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            (request.method, request.path_qs, await request.read(), dict(request.headers))
        )
        handler = self.handlers.pop(0) if len(self.handlers) > 1 else self.handlers[0]
        return await handler(request)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.base_url = f"http://127.0.0.1:{port}/api"
    yield srv
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def reply(status: int, body: Any = None, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


async def no_sleep(_: float) -> None:
    return None


def client(server: Server, session: aiohttp.ClientSession, **kw: Any) -> CarrierHttp:
    headers = {"Authorization": basic_auth("AC1", "tok")}
    return CarrierHttp("twilio", session, server.base_url, headers=headers, sleep=no_sleep, **kw)


async def test_form_request_reaches_base_path_with_auth(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A form POST goes to base URL + path with repeated keys and the Basic credentials."""
    server.handlers = [reply(201, {"sid": "CA1"})]
    form = [("To", "+1555"), ("Event", "a"), ("Event", "b")]
    response = await client(server, session).request(ApiRequest("POST", "/Calls.json", form=form))
    assert response.json() == {"sid": "CA1"}
    method, path, body, headers = server.seen[0]
    assert (method, path) == ("POST", "/api/Calls.json")
    assert body == b"To=%2B1555&Event=a&Event=b"
    assert headers["Authorization"] == basic_auth("AC1", "tok")


async def test_error_carries_status_message_and_code(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A 4xx raises '<carrier> API error <status>: <message>' with the carrier's code, once."""
    server.handlers = [reply(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})]
    with pytest.raises(CarrierApiError) as caught:
        await client(server, session).request(ApiRequest("GET", "/Calls/CA1.json"))
    assert str(caught.value) == "twilio API error 400: Invalid 'To' Phone Number"
    assert caught.value.code == 21211 and caught.value.status == 400
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            {"errors": [{"code": "90018", "title": "Call has already ended"}]},
            "Call has already ended",
            "90018",
        ),
        ({"api_id": "x", "error": "not found"}, "not found", None),
        ({"error": {"message": "bad", "code": 7}}, "bad", 7),
    ],
)
async def test_error_shapes_of_other_carriers(
    server: Server, session: aiohttp.ClientSession, body: Any, message: str, code: Any
) -> None:
    """Telnyx and Plivo error bodies yield their message and code too."""
    server.handlers = [reply(422, body)]
    with pytest.raises(CarrierApiError) as caught:
        await client(server, session).request(ApiRequest("GET", "/x"))
    assert caught.value.message == message and caught.value.code == code


async def test_idempotent_request_retried_on_5xx_and_429(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A GET answered 503 then 429 then 200 succeeds after two retries."""
    server.handlers = [
        reply(503, {"message": "busy"}),
        reply(429, None, **{"Retry-After": "0"}),
        reply(200, {"ok": 1}),
    ]
    response = await client(server, session).request(ApiRequest("GET", "/Calls/CA1.json"))
    assert response.json() == {"ok": 1} and len(server.seen) == 3


async def test_non_idempotent_request_not_retried(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A POST answered 500 fails at once (creating a call twice would dial twice)."""
    server.handlers = [reply(500, {"message": "oops"})]
    with pytest.raises(CarrierApiError, match="twilio API error 500: oops"):
        await client(server, session).request(ApiRequest("POST", "/Calls.json", form=[]))
    assert len(server.seen) == 1


async def test_retries_are_bounded(server: Server, session: aiohttp.ClientSession) -> None:
    """An idempotent request that keeps failing gives up after max_retries and reports 502."""
    server.handlers = [reply(502, {"message": "bad gateway"})]
    with pytest.raises(CarrierApiError, match="502"):
        await client(server, session, max_retries=3).request(ApiRequest("GET", "/x"))
    assert len(server.seen) == 4


async def test_redirect_not_followed(server: Server, session: aiohttp.ClientSession) -> None:
    """A 3xx answer is an error; the redirect target is never requested."""
    server.handlers = [reply(302, None, Location="http://example.invalid/steal")]
    with pytest.raises(CarrierApiError, match="unexpected redirect"):
        await client(server, session).request(ApiRequest("GET", "/x"))
    assert len(server.seen) == 1


async def test_requests_off_the_base_host_refused(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """A path that would move the request to another host is refused before sending."""
    origin = server.base_url.removesuffix("/api")
    http = CarrierHttp("twilio", session, origin, sleep=no_sleep)
    with pytest.raises(CarrierApiError, match="refusing request"):
        await http.request(ApiRequest("GET", "@evil.example/x"))
    assert server.seen == []


async def test_timeout_is_an_api_error(server: Server, session: aiohttp.ClientSession) -> None:
    """A carrier that does not answer within the timeout yields a status-0 API error."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return web.Response()

    server.handlers = [slow]
    with pytest.raises(CarrierApiError, match="timed out") as caught:
        await client(server, session, timeout_s=0.05).request(ApiRequest("POST", "/x", form=[]))
    assert caught.value.status == 0


async def test_not_found_is_flagged(server: Server, session: aiohttp.ClientSession) -> None:
    """A 404 raises with ``not_found`` set, for hangup callers that treat it as success."""
    server.handlers = [reply(404, {"code": 20404, "message": "not found"})]
    with pytest.raises(CarrierApiError) as caught:
        await client(server, session).request(ApiRequest("POST", "/Calls/CA9.json", form=[]))
    assert caught.value.not_found and caught.value.code == 20404
