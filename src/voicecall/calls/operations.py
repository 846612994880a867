"""Requests on calls: initiate (admission, then persist and place), speak, continue, DTMF, end.

Each request validates against the call's current state and returns the carrier commands to
run; its waiter is resolved later, when the carrier result comes back (``results.py``).
"""

from __future__ import annotations

from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest, admit_outbound, match_route, validate_dtmf
from voicecall.calls.book import CallBook
from voicecall.calls.commands import Command
from voicecall.calls.live import LiveCall, Turn
from voicecall.calls.record import CallRecord
from voicecall.calls.session_keys import session_key_for_call
from voicecall.calls.state import CallState, EndReason
from voicecall.errors import CallError, UnknownCallError

__all__ = ["CallOperations"]


class CallOperations(CallBook):
    """The agent's and the CLI's requests on calls."""

    # ---- outbound --------------------------------------------------------------------------

    def initiate(
        self, request: OutboundRequest, *, waiter_id: str, now_ms: int
    ) -> tuple[str, list[Command]]:
        """Admit an outbound call: persist it (critical) then place it; the waiter gets the id."""
        self._check_running()
        admitted = admit_outbound(
            request,
            config=self._config,
            active_calls=self.active_call_count,
            webhook_url_configured=self._webhook_url_configured,
            supports_pre_connect_dtmf=self._supports_pre_connect_dtmf,
        )
        call_id = self._new_id()
        route = (
            match_route(self._config.numbers, admitted.from_number) if admitted.route_key else None
        )
        agent_id = request.agent_id or (route[1].agent_id if route else None)
        agent_id = agent_id or self._config.agent_id
        metadata: dict[str, Any] = {"mode": admitted.mode}
        if admitted.message:
            metadata["initialMessage"] = admitted.message
        if admitted.dtmf_sequence:
            metadata["dtmfSequence"] = admitted.dtmf_sequence
        if request.requester_session_key:
            metadata["requesterSessionKey"] = request.requester_session_key
        if admitted.route_key:
            metadata["numberRouteKey"] = admitted.route_key
        record = CallRecord.model_validate(
            {
                "callId": call_id,
                "provider": self._provider,
                "direction": "outbound",
                "state": CallState.INITIATED,
                "from": admitted.from_number,
                "to": admitted.to,
                "sessionKey": session_key_for_call(
                    agent_id=agent_id,
                    call_id=call_id,
                    remote_number=admitted.to,
                    scope=self._config.session_scope,
                    explicit_key=request.session_key,
                ),
                "agentId": agent_id,
                "startedAt": now_ms,
                "metadata": metadata,
            }
        )
        self._active[call_id] = LiveCall(record=record)
        op_id = self._op("place", call_id, waiter_id)
        return call_id, [
            self._persist(record, critical=True),
            cmd.PlaceCall(
                op_id=op_id,
                call_id=call_id,
                from_number=admitted.from_number,
                to_number=admitted.to,
                mode=admitted.mode,
                message=admitted.message,
                dtmf_sequence=admitted.dtmf_sequence,
            ),
        ]

    def abort_initiate(self, call_id: str) -> None:
        """Forget a call whose first persist failed (it was never dialled)."""
        self._active.pop(call_id, None)
        for op_id, op in list(self._ops.items()):
            if op.call_id == call_id:
                del self._ops[op_id]

    # ---- operations on a call ---------------------------------------------------------------

    def speak(
        self,
        call_id: str,
        text: str,
        *,
        waiter_id: str,
        now_ms: int,
        listen_after: bool = False,
        record_line: bool = True,
    ) -> list[Command]:
        """Speak ``text`` on a connected call; the waiter resolves when playback finished.

        ``record_line=False``: no bot transcript entry for ``text`` (a realtime call, where the
        model's own words come back as ``call.assistant-speech``, SPEC §7.4).
        """
        live = self._connected(call_id)
        return self._play(
            live,
            text,
            "speak",
            now_ms,
            waiter_id=waiter_id,
            listen=listen_after,
            record_line=record_line,
        )

    def continue_call(
        self, call_id: str, text: str, *, waiter_id: str, now_ms: int
    ) -> list[Command]:
        """Speak, then listen for the caller's answer; the waiter gets the transcript."""
        live = self._connected(call_id)
        if live.turn is not None:
            raise CallError("a turn is already in progress for this call")
        live.turn = Turn(token=self._new_id(), waiter_id=waiter_id, started_at_ms=now_ms)
        live.reply_id = None
        return self._play(live, text, "turn", now_ms, waiter_id=waiter_id)

    def send_dtmf(self, call_id: str, digits: str, *, waiter_id: str, now_ms: int) -> list[Command]:
        """Send DTMF digits on a connected call."""
        validate_dtmf(digits)
        live = self._connected(call_id)
        pcid = self._pcid(live)
        op_id = self._op("dtmf", call_id, waiter_id)
        return [cmd.SendDtmf(op_id=op_id, call_id=call_id, provider_call_id=pcid, digits=digits)]

    def end_call(self, call_id: str, *, waiter_id: str, now_ms: int) -> list[Command]:
        """Hang up and finalize with ``hangup-bot``; idempotent, concurrent requests share one."""
        self._check_running()
        live = self._active.get(call_id)
        if live is None:
            if call_id in self._ended:
                return [cmd.ResolveWaiter(waiter_id, {"success": True})]
            raise UnknownCallError(f"call not found: {call_id}")
        return self._begin_end(live, EndReason.HANGUP_BOT, now_ms, waiter_id)
