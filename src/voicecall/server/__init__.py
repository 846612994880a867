"""The HTTP side of voicecall: carrier webhook listener, control listener, JSON-RPC, metrics."""

from voicecall.server.control import ControlState, build_control_app
from voicecall.server.methods import METHOD_NAMES, RpcMethods
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.webhook import WebhookState, build_webhook_app

__all__ = [
    "METHOD_NAMES",
    "ControlState",
    "GatewayMetrics",
    "RpcMethods",
    "WebhookState",
    "build_control_app",
    "build_webhook_app",
]
