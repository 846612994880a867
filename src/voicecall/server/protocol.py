"""JSON-RPC 2.0 framing for the control listener (SPEC §11.2), kept free of I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from voicecall.errors import CallError, InvalidParamsError, RpcError

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RPC_BODY_LIMIT_BYTES",
    "SERVER_ERROR",
    "UNAUTHORIZED",
    "UNAUTHORIZED_BODY",
    "RpcRequest",
    "error_from_exception",
    "error_response",
    "parse_request",
    "result_response",
]

RPC_BODY_LIMIT_BYTES = 1024 * 1024

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
UNAUTHORIZED = -32001

UNAUTHORIZED_BODY: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": UNAUTHORIZED, "message": "Unauthorized"},
}

RequestId = str | int | float | None


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """A well-formed JSON-RPC request; ``is_notification`` when it carried no ``id``."""

    method: str
    params: dict[str, Any]
    request_id: RequestId
    is_notification: bool


def error_response(
    request_id: RequestId, code: int, message: str, data: Any = None
) -> dict[str, Any]:
    """Build a JSON-RPC error response object."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_response(request_id: RequestId, result: Any) -> dict[str, Any]:
    """Build a JSON-RPC success response object."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def parse_request(body: bytes) -> RpcRequest | dict[str, Any]:
    """Parse one request body; a dict return is the error response to send back."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error_response(None, PARSE_ERROR, f"Parse error: {exc}")
    if isinstance(document, list):
        return error_response(None, INVALID_REQUEST, "Invalid Request: batches are not supported")
    if not isinstance(document, dict):
        return error_response(None, INVALID_REQUEST, "Invalid Request: expected a JSON object")
    raw_id = document.get("id")
    request_id: RequestId = (
        raw_id if isinstance(raw_id, str | int | float) and not isinstance(raw_id, bool) else None
    )
    if "id" in document and raw_id is not None and request_id is None:
        return error_response(
            None, INVALID_REQUEST, "Invalid Request: id must be a string or number"
        )
    if document.get("jsonrpc") != "2.0":
        return error_response(request_id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    method = document.get("method")
    if not isinstance(method, str) or not method:
        return error_response(request_id, INVALID_REQUEST, "Invalid Request: method is required")
    params = document.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return error_response(
            request_id,
            INVALID_PARAMS,
            "params must be an object",
            {"code": "INVALID_REQUEST", "field": "params"},
        )
    return RpcRequest(method, params, request_id, "id" not in document)


def error_from_exception(request_id: RequestId, exc: BaseException) -> dict[str, Any]:
    """Map an exception raised by a method to its JSON-RPC error (SPEC §11.2)."""
    if isinstance(exc, RpcError):
        return error_response(request_id, exc.code, exc.message, exc.data)
    if isinstance(exc, InvalidParamsError):
        data: dict[str, Any] = {"code": "INVALID_REQUEST"}
        field = getattr(exc, "field", None)
        if isinstance(field, str):
            data["field"] = field
        return error_response(request_id, INVALID_PARAMS, str(exc), data)
    if isinstance(exc, CallError):
        return error_response(request_id, SERVER_ERROR, str(exc), {"code": "UNAVAILABLE"})
    return error_response(
        request_id, SERVER_ERROR, str(exc) or type(exc).__name__, {"code": "UNAVAILABLE"}
    )
