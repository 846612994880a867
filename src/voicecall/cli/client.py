"""The CLI's JSON-RPC client of a running gateway (SPEC §11.1 delegation and timeouts)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson

from voicecall.errors import RpcError, VoicecallError
from voicecall.server.listener import http_host

__all__ = ["GatewayUnreachable", "RpcClient", "rpc_url"]

DEFAULT_TIMEOUT_S = 5.0


class GatewayUnreachable(VoicecallError):
    """Nothing listens on the RPC address: the CLI may run a standalone runtime instead."""


def rpc_url(config: Any) -> str:
    """``http://<rpc.bind, loopback if wildcard>:<rpc.port>/rpc``."""
    return f"http://{http_host(config.rpc.bind)}:{config.rpc.port}/rpc"


class RpcClient:
    """Posts JSON-RPC requests; errors come back as RpcError (401 has code -32001)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self._token = token
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RpcClient:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def rpc(
        self, method: str, params: dict[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Any:
        """Call ``method``; the result, or RpcError / GatewayUnreachable."""
        if self._session is None:
            raise RuntimeError("RpcClient used outside 'async with'")
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session.post(
                    self.url, data=orjson.dumps(request), headers=headers
                ) as response:
                    status = response.status
                    body = await response.read()
        except aiohttp.ClientConnectorError as exc:
            raise GatewayUnreachable(f"no gateway at {self.url}: {exc}") from exc
        except TimeoutError as exc:
            raise RpcError(-32000, f"{method} timed out after {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise RpcError(-32000, f"{method} failed: {exc}") from exc
        if status == 401:
            raise RpcError(-32001, "Unauthorized")
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RpcError(-32000, f"gateway answered HTTP {status} without JSON") from exc
        if not isinstance(reply, dict):
            raise RpcError(-32000, f"gateway answered HTTP {status} with unexpected JSON")
        error = reply.get("error")
        if isinstance(error, dict):
            raise RpcError(
                int(error.get("code", -32000)), str(error.get("message")), error.get("data")
            )
        if status != 200:
            raise RpcError(-32000, f"gateway answered HTTP {status}")
        return reply.get("result")
