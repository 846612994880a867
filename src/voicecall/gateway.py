"""The Gateway: one object that composes config, store, carrier, agent, runtime and listeners."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web

from voicecall.carriers.base import CallControl, CarrierContext
from voicecall.config import VoicecallConfig
from voicecall.errors import CallError, ConfigError
from voicecall.exposure import (
    REAL_CARRIERS,
    WebhookExposure,
    private_webhook_message,
    resolve_webhook_url,
    webhook_url_problem,
)
from voicecall.server.control import ControlState, build_control_app
from voicecall.server.listener import Listener
from voicecall.server.metered_store import MeteredStore
from voicecall.server.methods import RpcMethods
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.ports import GatewayRuntime
from voicecall.server.streams import StreamServer
from voicecall.server.webhook import WebhookState, build_webhook_app

__all__ = [
    "DISABLED_TEXT",
    "HTTP_SESSION",
    "STOPPING_TEXT",
    "Gateway",
    "RuntimeFactory",
    "is_loopback",
]

log = logging.getLogger(__name__)

DISABLED_TEXT = "voice calls are disabled"
STOPPING_TEXT = "voicecall runtime is stopping"
SETUP_INCOMPLETE_PREFIX = "voice call runtime not started: setup incomplete: "

HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)

RuntimeFactory = Callable[..., GatewayRuntime]
"""``factory(config, *, carrier, store, runner) -> runtime`` (CallRuntime's signature)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_runtime_factory(config: VoicecallConfig, **parts: Any) -> GatewayRuntime:
    from voicecall.runtime import CallRuntime

    runtime: GatewayRuntime = CallRuntime(config, **parts)
    return runtime


def _setup_problems(config: VoicecallConfig) -> list[str]:
    from voicecall.config import validate_setup

    return list(validate_setup(config))


class Gateway:
    """Runs voicecall inside any asyncio loop: ``await gw.start()`` … ``await gw.stop()``.

    With ``control=False`` no control listener is bound; callers use ``gw.call(method, params)``
    directly (the CLI's standalone mode). ``webhook=False`` skips the carrier listener, for hosts
    that mount ``gw.webhook_app`` into their own server.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        env: Mapping[str, str] | None = None,
        runner: Any = None,
        runtime_factory: RuntimeFactory | None = None,
        control: bool = True,
        webhook: bool = True,
        enabled: bool | None = None,
        config_path: Path | None = None,
        realtime_clock: Callable[[], float] | None = None,
        realtime_session_factory: Callable[..., Any] | None = None,
    ) -> None:
        loaded_config = getattr(config, "config", None)
        if isinstance(loaded_config, VoicecallConfig):
            self.config = loaded_config
            self.enabled = bool(getattr(config, "enabled", True)) if enabled is None else enabled
            self.warnings: list[str] = list(getattr(config, "warnings", []))
            self.config_path = config_path or getattr(config, "path", None)
        else:
            self.config = config if isinstance(config, VoicecallConfig) else VoicecallConfig()
            self.enabled = self.config.enabled if enabled is None else enabled
            self.warnings = []
            self.config_path = config_path
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.metrics = GatewayMetrics()
        self.methods = RpcMethods(self._runtime_source, continue_budget_ms=self._continue_budget_ms)
        self._runner_override = runner
        self._owned_runner: Any = None
        self._runtime_factory = runtime_factory or _default_runtime_factory
        self._with_control = control
        self._with_webhook = webhook
        self._control_state = ControlState(
            token=self.config.rpc.token,
            methods=self.methods,
            health=self.health,
            metrics=self.metrics,
        )
        self.control_app = self._build_control_app()
        self._control: Listener | None = None
        self._webhook: Listener | None = None
        self.webhook_app: web.Application | None = None
        self.runtime: GatewayRuntime | None = None
        self.store: Any = None
        self.unavailable: str | None = None
        self._carrier: Any = None
        self._exposure: WebhookExposure | None = None
        self._public_webhook_url: str | None = None
        self.streams: StreamServer | None = None
        self.realtime_streams: Any = None  # RealtimeStreamServer while realtime runs
        self.realtime_host: Any = None  # RealtimeHost while realtime runs
        # The realtime stream tokens' TTL clock (monotonic seconds; injectable for tests).
        self._realtime_clock = realtime_clock or time.monotonic
        # Tests only: builds the realtime provider sessions in place of
        # ``registry.create_realtime_session`` (same arguments), e.g. to trust a local fake's
        # TLS certificate. None (production) keeps the registry's factory.
        self._realtime_session_factory = realtime_session_factory
        self._started_at_s = 0.0
        self._stopping = False
        self._started = False
        self._lock = asyncio.Lock()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str | None:
        """``http://host:port/rpc`` of the control listener once bound."""
        return self._control.url("/rpc") if self._control and self._control.running else None

    @property
    def control_url(self) -> str | None:
        """``http://host:port`` of the control listener once bound."""
        return self._control.url() if self._control and self._control.running else None

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL carriers are given (SPEC §4.6: publicUrl, tunnel, Tailscale, local).

        Set once the runtime has started its listener and exposure; None otherwise.
        """
        return self._public_webhook_url

    @property
    def local_webhook_url(self) -> str | None:
        """The local webhook URL once the carrier listener is bound."""
        if self._webhook is None or not self._webhook.running:
            return None
        return self._webhook.url(self.config.serve.path)

    @property
    def http_session(self) -> aiohttp.ClientSession | None:
        """The one shared outbound HTTP session (lives from start to stop)."""
        return self.control_app.get(HTTP_SESSION)

    @property
    def has_pending_work(self) -> bool:
        """A call placed here or a continue wait is still in progress."""
        runtime = self.runtime
        busy = bool(runtime is not None and runtime.has_pending_work)
        return busy or self.methods.operations.pending > 0

    # -- state for the control routes ----------------------------------------------------------

    def _runtime_source(self) -> GatewayRuntime:
        if self._stopping:
            raise CallError(STOPPING_TEXT)
        if self.unavailable is not None:
            raise CallError(self.unavailable)
        if self.runtime is None:
            raise CallError("voicecall runtime is not running")
        return self.runtime

    def _continue_budget_ms(self) -> int:
        return self.config.transcript_timeout_ms + self.config.tts.timeout_ms + 30_000

    def store_error(self) -> str | None:
        """The store's last write error, or None when it is healthy."""
        store = self.store
        if store is None:
            return None
        if getattr(store, "healthy", True):
            return None
        return str(getattr(store, "last_error", None) or "store unavailable")

    def health(self) -> tuple[int, dict[str, Any]]:
        """The /healthz status and body (SPEC §11.3)."""
        try:
            runtime = self._runtime_source()
        except CallError as exc:
            return 503, {"ok": False, "error": str(exc)}
        store_error = getattr(runtime, "store_error", None) or self.store_error()
        body: dict[str, Any] = {
            "ok": store_error is None,
            "provider": self.config.provider,
            "activeCalls": runtime.active_call_count,
            "publicUrl": getattr(runtime, "public_url", None) or self.config.public_url,
            "uptimeSec": int(time.monotonic() - self._started_at_s),
            "store": "ok" if store_error is None else store_error,
        }
        if store_error is not None:
            body["error"] = f"store: {store_error}"
            return 503, body
        return 200, body

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Run one RPC method in-process (what ``POST /rpc`` does, minus HTTP)."""
        return await self.methods.call(method, params or {})

    # -- lifecycle -----------------------------------------------------------------------------

    async def _http_session_ctx(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            app[HTTP_SESSION] = session
            yield

    def _build_control_app(self) -> web.Application:
        # aiohttp apps cannot start twice, so every start() gets a fresh one.
        app = build_control_app(self._control_state)
        app.cleanup_ctx.append(self._http_session_ctx)
        return app

    def _check_control_bind(self) -> None:
        rpc = self.config.rpc
        if self._with_control and not is_loopback(rpc.bind) and not rpc.token:
            raise ConfigError("rpc.token is required when rpc.bind is not a loopback address")

    async def start(self) -> None:
        """Bind the control listener, then start the runtime (unless disabled or incomplete)."""
        async with self._lock:
            if self._started:
                return
            self._check_control_bind()
            self._stopping = False
            self._started_at_s = time.monotonic()
            for warning in self.warnings:
                log.warning("%s", warning)
            if self.config.skip_signature_verification:
                log.warning("SECURITY WARNING: webhook signature verification is disabled")
            # The control app is always set up (its cleanup_ctx owns the shared HTTP
            # session); its socket is bound only when this gateway serves RPC.
            rpc = self.config.rpc
            if self.control_app.frozen:
                self.control_app = self._build_control_app()
            self._control = Listener(
                self.control_app,
                bind=rpc.bind,
                port=rpc.port,
                in_use_message=(
                    "rpc port {port} is already in use; a running gateway "
                    "(voicecall serve) probably owns it"
                ),
            )
            await self._control.start(bind=self._with_control)
            try:
                await self._start_runtime()
            except BaseException:
                await self._stop_listeners()
                raise
            self._started = True

    async def _start_runtime(self) -> None:
        self.unavailable = None
        if not self.enabled:
            self.unavailable = DISABLED_TEXT
            log.info("voice calls are disabled; only the control listener runs")
            return
        problems = _setup_problems(self.config)
        if problems:
            self.unavailable = SETUP_INCOMPLETE_PREFIX + "; ".join(problems)
            log.error("%s", self.unavailable)
            return
        from voicecall.carriers import create_carrier
        from voicecall.store import CallStore

        store_dir = self.config.store_dir(self.env)
        store = CallStore(store_dir / "calls.jsonl", fsync=self.config.store_fsync)
        self.store = MeteredStore(store, self.metrics)
        self._carrier = create_carrier(self.config)
        runner = self._runner_override
        if runner is None:
            from voicecall.agent import load_runner

            runner = load_runner(self.config, self.env, session=self.http_session)
            self._owned_runner = runner  # closed with the runtime; a host's runner is its own
        runtime = self._runtime_factory(
            self.config, carrier=self._carrier, store=self.store, runner=runner
        )
        self.metrics.bind_runtime(self.config.provider, lambda: runtime.active_call_count)
        if self._with_webhook:
            # CallRuntime implements CallControl; GatewayRuntime (ports) names only a slice of it.
            state = WebhookState.from_config(
                self.config,
                carrier=self._carrier,
                control=cast(CallControl, runtime),
                metrics=self.metrics,
            )
            self.webhook_app = build_webhook_app(state)
            self._mount_streams(self.webhook_app, runtime)
            serve = self.config.serve
            self._webhook = Listener(
                self.webhook_app,
                bind=serve.bind,
                port=serve.port,
                in_use_message=(
                    "webhook port {port} is already in use; a running gateway "
                    "(voicecall serve) probably owns it"
                ),
            )
            await self._webhook.start()
        if not await self._expose_webhook():
            return
        self._carrier.attach(self._carrier_context())
        try:
            await runtime.start()
        except BaseException:
            await self._abandon_start()
            raise
        self.runtime = runtime

    def _mount_streams(self, app: web.Application, runtime: GatewayRuntime) -> None:
        """Media-stream upgrades on the webhook listener (SPEC §5.1), ahead of its routes."""
        barged_in = getattr(runtime, "caller_barged_in", None)
        self.streams = StreamServer(
            self.config,
            carrier=self._carrier,
            control=cast(Any, runtime),
            metrics=self.metrics,
            env=self.env,
            http_session=self.http_session,
            on_barge_in=barged_in if callable(barged_in) else None,
        )
        app.middlewares.append(self.streams.middleware)
        self._carrier.bind_stream_sender(self.streams.send_audio)
        set_closer = getattr(runtime, "set_stream_closer", None)
        if callable(set_closer):
            set_closer(self.streams.close_call_stream)
        set_speaker = getattr(runtime, "set_stream_speaker", None)
        if callable(set_speaker):  # speech on a live stream goes out on it (SPEC §8.2)
            set_speaker(self.streams.playback_for, self.streams.speaker)
        self._mount_realtime(app, runtime)

    def _mount_realtime(self, app: web.Application, runtime: GatewayRuntime) -> None:
        """The realtime bridge's sockets (SPEC §7.1, §7.2), when realtime is on and usable.

        Only carriers with a ``bind_realtime`` hook serve realtime documents (Twilio for now);
        without a usable provider the §1.14 warning is logged and calls stay classic.
        """
        if not self.config.realtime.enabled:
            return
        bind = getattr(self._carrier, "bind_realtime", None)
        if not callable(bind):
            log.warning("realtime is not supported on carrier %s yet", self.config.provider)
            return
        from voicecall.exposure.webhook_url import public_path_prefix, stream_host
        from voicecall.realtime.host import RealtimeHost
        from voicecall.realtime.registry import create_realtime_session, select_realtime_provider
        from voicecall.server.realtime_streams import RealtimeStreamServer

        selection = select_realtime_provider(self.config, self.env)
        if selection is None:
            return
        host = RealtimeHost(
            self.config,
            selection=selection,
            control=cast(Any, runtime),
            env=self.env,
            session_factory=self._realtime_session_factory or create_realtime_session,
        )
        server = RealtimeStreamServer(
            realtime_path=self.config.realtime.stream_path,
            on_admitted=host.on_admitted,
            protocol_factory=self._carrier.stream_protocol,
            prefix=public_path_prefix(self.config),
            public_host=lambda: stream_host(self._public_webhook_url or self.config.public_url),
            released=host.released,
            clock=self._realtime_clock,
            metrics=self.metrics,
        )
        self.realtime_host, self.realtime_streams = host, server
        app.middlewares.append(server.middleware)

        def mint(call_id: str, provider_call_id: str) -> str:
            token = server.mint(call_id, provider_call_id)
            host.minted(token, call_id, provider_call_id)  # pre-warm starts here (SPEC §7.3)
            return token

        bind(mint)
        classic = self.streams.close_call_stream if self.streams is not None else None

        def close_call_stream(call_id: str, stream_id: str) -> None:
            if classic is not None:
                classic(call_id, stream_id)
            host.close_call_stream(call_id, stream_id)

        set_closer = getattr(runtime, "set_stream_closer", None)
        if callable(set_closer):
            set_closer(close_call_stream)
        set_realtime_speaker = getattr(runtime, "set_realtime_speaker", None)
        if callable(set_realtime_speaker):  # voicecall.speak on a realtime call (SPEC §7.4)
            set_realtime_speaker(host.speak, host.is_realtime)

    async def _close_streams(self) -> None:
        realtime, self.realtime_streams = self.realtime_streams, None
        host, self.realtime_host = self.realtime_host, None
        if realtime is not None:
            await realtime.aclose()
        if host is not None:
            await host.aclose()
        bind = getattr(self._carrier, "bind_realtime", None)
        if realtime is not None and callable(bind):
            bind(None)
        streams, self.streams = self.streams, None
        if streams is not None:
            await streams.aclose()

    async def _expose_webhook(self) -> bool:
        """SPEC §4.7 after the webhook server: tunnel, Tailscale, then the public-URL rule.

        A failure undoes the start so far and raises; a private URL for a real carrier (without
        allowPrivateWebhookUrl) leaves the runtime setup-incomplete and returns False.
        """
        self._exposure = WebhookExposure(self.config, self.env)
        try:
            if self._webhook is not None:
                url = await self._exposure.start(self._webhook.port)
            else:
                url = resolve_webhook_url(self.config)
        except BaseException:
            await self._abandon_start()
            raise
        refusal = webhook_url_problem(self.config, url)
        if refusal is not None:
            await self._abandon_start()
            self.unavailable = SETUP_INCOMPLETE_PREFIX + refusal
            log.error("%s", self.unavailable)
            return False
        if self.config.provider in REAL_CARRIERS and private_webhook_message(url):
            log.warning("allowPrivateWebhookUrl: carriers get the private webhook URL %s", url)
        self._public_webhook_url = url
        return True

    async def _abandon_start(self) -> None:
        """Stop what a failed start already started: exposure, webhook listener, carrier."""
        exposure, self._exposure = self._exposure, None
        webhook, self._webhook = self._webhook, None
        carrier, self._carrier = self._carrier, None
        self._public_webhook_url = None
        try:
            await self._close_streams()
            if exposure is not None:
                await exposure.stop()
        finally:
            try:
                if webhook is not None:
                    await webhook.stop()
            finally:
                if carrier is not None:
                    await carrier.aclose()
                self.metrics.bind_runtime(self.config.provider, None)

    def _carrier_context(self) -> CarrierContext:
        """The shared HTTP session and the public webhook URL carriers put in their requests."""
        port = self._webhook.port if self._webhook is not None else None
        # The exposure step resolved it (tunnel/Tailscale included); recompute only without one.
        webhook_url = self._public_webhook_url or resolve_webhook_url(self.config, port=port)
        return CarrierContext(http_session=self.http_session, webhook_url=webhook_url)

    async def _stop_runtime(self) -> None:
        await self._close_streams()
        webhook, self._webhook = self._webhook, None
        if webhook is not None:
            await webhook.stop()
        exposure, self._exposure = self._exposure, None
        self._public_webhook_url = None
        if exposure is not None:
            await exposure.stop()
        runtime, self.runtime = self.runtime, None
        carrier, self._carrier = self._carrier, None
        if runtime is not None:
            await runtime.stop()  # the runtime closes its carrier
        elif carrier is not None:
            await carrier.aclose()
        runner, self._owned_runner = self._owned_runner, None
        close_runner = getattr(runner, "aclose", None)
        if callable(close_runner):
            await close_runner()
        self.metrics.bind_runtime(self.config.provider, None)

    async def _stop_listeners(self) -> None:
        await self._stop_runtime()
        control, self._control = self._control, None
        if control is not None:
            await control.stop()

    async def stop(self) -> None:
        """Drain per SPEC §2.9: refuse new work, stop the runtime, flush, close listeners."""
        async with self._lock:
            if not self._started:
                return
            self._stopping = True
            try:
                await self._stop_runtime()
                await self.methods.operations.aclose()
                await self._stop_listeners()
            finally:
                self._started = False

    async def reload(self, loaded: Any) -> None:
        """Stop the old runtime fully, then start one from ``loaded`` (SIGHUP, SPEC §1.1)."""
        async with self._lock:
            self._stopping = True
            try:
                await self._stop_runtime()
            finally:
                self._stopping = False
            self.config = loaded.config
            self.enabled = bool(loaded.enabled)
            self._control_state.token = self.config.rpc.token
            await self._start_runtime()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
