"""The sans-IO call manager: events, requests, timer expiries and carrier results in; commands out.

It owns every call's record and the rules of SPEC §2 (admission, dedupe, inbound policy,
modes, speak/continue/end, timers, restart recovery). It never awaits, sleeps or reads a clock:
each entry point takes ``now_ms`` and returns the commands the I/O pump must execute.
Carrier work is reported back through :meth:`CallManager.carrier_result` under the ``op_id``
of the command that asked for it.

The manager is assembled from parts that share one :class:`~voicecall.calls.book.CallBook`
(the calls and the primitives that change them):

- ``intake.py``      carrier events: dedupe, registering unknown calls, applying, speech/DTMF
- ``operations.py``  requests: initiate, speak, continue, DTMF, end
- ``results.py``     carrier results, dispatched by operation kind
- ``lifecycle.py``   media streams, timers, restart recovery, shutdown
- ``turns.py``       the turn metrics written into ``metadata.turns``
"""

from __future__ import annotations

from voicecall.calls.book import DEDUPE_CAPACITY
from voicecall.calls.intake import EventIntake
from voicecall.calls.lifecycle import STREAM_GRACE_MS, CallLifecycle
from voicecall.calls.operations import CallOperations
from voicecall.calls.results import CarrierResults

__all__ = ["DEDUPE_CAPACITY", "STREAM_GRACE_MS", "CallManager"]


class CallManager(EventIntake, CallOperations, CarrierResults, CallLifecycle):
    """Every call of one gateway, as plain data; see the module docstring for the contract."""
