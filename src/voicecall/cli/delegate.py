"""Run an operation over RPC, or — only when no gateway answers — on a standalone runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from voicecall.cli.client import GatewayUnreachable, RpcClient, rpc_url
from voicecall.cli.output import CliError, Output
from voicecall.errors import ConfigError, RpcError, VoicecallError
from voicecall.gateway import Gateway

__all__ = ["Caller", "run_delegated"]

T = TypeVar("T")

_PENDING_POLL_S = 0.05


class Caller:
    """One way to reach the gateway's methods: remote over RPC or the in-process Gateway."""

    def __init__(self, client: RpcClient | None = None, gateway: Gateway | None = None) -> None:
        self.client = client
        self.gateway = gateway
        self.answered = False

    @property
    def standalone(self) -> bool:
        """True when the operation runs in this process."""
        return self.gateway is not None

    async def call(self, method: str, params: dict[str, Any], *, timeout_s: float = 5.0) -> Any:
        """Invoke ``method`` with ``params``."""
        if self.gateway is not None:
            return await self.gateway.call(method, params)
        assert self.client is not None
        result = await self.client.rpc(method, params, timeout_s=timeout_s)
        self.answered = True
        return result

    async def rpc(self, method: str, params: dict[str, Any]) -> Any:
        """The agent tool's client interface."""
        return await self.call(method, params)

    async def wait_idle(self, out: Output, text: str) -> None:
        """Standalone: keep the runtime alive while a call it placed or a wait is running."""
        gateway = self.gateway
        if gateway is None or not gateway.has_pending_work:
            return
        with out.spinner(text):
            while gateway.has_pending_work:
                await asyncio.sleep(_PENDING_POLL_S)


def _rpc_failure(exc: RpcError) -> CliError:
    if exc.code == -32001:
        return CliError(exc.message, hint="check rpc.token")
    return CliError(exc.message)


async def run_delegated(loaded: Any, out: Output, operation: Callable[[Caller], Awaitable[T]]) -> T:
    """Run ``operation`` against the running gateway, else a standalone one (SPEC §11.1)."""
    config = loaded.config
    async with RpcClient(rpc_url(config), config.rpc.token) as client:
        caller = Caller(client=client)
        try:
            return await operation(caller)
        except GatewayUnreachable:
            if caller.answered:
                raise CliError("the gateway stopped answering") from None
        except RpcError as exc:
            raise _rpc_failure(exc) from None
    gateway = Gateway(loaded, control=False)
    try:
        await gateway.start()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        standalone = Caller(gateway=gateway)
        try:
            result = await operation(standalone)
        except RpcError as exc:
            raise _rpc_failure(exc) from None
        except VoicecallError as exc:
            raise CliError(str(exc)) from None
        await standalone.wait_idle(out, "waiting for the call to finish")
        return result
    finally:
        await gateway.stop()
