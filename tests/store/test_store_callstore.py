"""Behaviour of CallStore: round trips, envelopes, torn lines, failures and fsync."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.errors import StoreError
from voicecall.store import CallStore


def _record(call_id: str, state: str = "initiated", **extra: Any) -> dict[str, Any]:
    return {
        "callId": call_id,
        "provider": "mock",
        "direction": "outbound",
        "state": state,
        "from": "+15550001234",
        "to": "+15550005678",
        "startedAt": 1767225600000,
        "transcript": [],
        "processedEventIds": [],
        **extra,
    }


async def test_round_trip_keeps_last_snapshot_per_call(tmp_path: Path) -> None:
    """Appended snapshots reload as the newest snapshot of each call, with exact field names."""
    store = CallStore(tmp_path / "calls.jsonl")
    await store.append(_record("a"))
    await store.append(_record("b"))
    await store.append(_record("a", "answered", answeredAt=1767225604120, metadata={"mode": "x"}))
    latest = store.load_latest()
    assert latest == {
        "a": _record("a", "answered", answeredAt=1767225604120, metadata={"mode": "x"}),
        "b": _record("b"),
    }


async def test_each_append_is_one_compact_terminated_line(tmp_path: Path) -> None:
    """Every append adds exactly one compact UTF-8 JSON line ending in a newline."""
    path = tmp_path / "calls.jsonl"
    store = CallStore(path)
    await store.append(_record("a", transcript=[{"text": "héllo"}]))
    await store.append(_record("a", "ringing"))
    data = path.read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 3
    assert b" " not in lines[0].replace(b"+1555", b"")
    assert "héllo" in lines[0].decode("utf-8")


async def test_directory_and_file_are_private(tmp_path: Path) -> None:
    """The store directory is created 0700 and the file 0600."""
    path = tmp_path / "home" / "calls.jsonl"
    store = CallStore(path)
    await store.append(_record("a"))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_file_loads_empty(tmp_path: Path) -> None:
    """A store that never wrote anything restores no calls."""
    assert CallStore(tmp_path / "calls.jsonl").load_latest() == {}


def test_every_envelope_is_accepted(tmp_path: Path) -> None:
    """Raw records, {"call":…} and version-2 envelopes all restore; junk lines are skipped."""
    path = tmp_path / "calls.jsonl"
    lines = [
        orjson.dumps(_record("raw")),
        b"",
        b"   ",
        orjson.dumps({"call": _record("wrapped")}),
        b"{not json",
        b"[1, 2, 3]",
        b'{"noCallId": true}',
        orjson.dumps({"version": 2, "call": _record("v2"), "persistedAt": 5, "sequence": 9}),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    latest = CallStore(path).load_latest()
    assert set(latest) == {"raw", "wrapped", "v2"}
    assert latest["v2"] == _record("v2")


def test_final_line_without_newline_is_accepted(tmp_path: Path) -> None:
    """A complete final record lacking its newline still restores."""
    path = tmp_path / "calls.jsonl"
    path.write_bytes(orjson.dumps(_record("a")) + b"\n" + orjson.dumps(_record("b")))
    assert set(CallStore(path).load_latest()) == {"a", "b"}


async def test_torn_last_line_is_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Half a line left by a crash is skipped with a warning and every complete line is kept."""
    path = tmp_path / "calls.jsonl"
    store = CallStore(path)
    for n in range(5):
        await store.append(_record(f"c{n}"))
    torn = orjson.dumps(_record("torn", "ringing"))
    with path.open("ab") as handle:
        handle.write(torn[: len(torn) // 2])
    with caplog.at_level(logging.WARNING, logger="voicecall.store"):
        latest = CallStore(path).load_latest()
    assert set(latest) == {f"c{n}" for n in range(5)}
    assert any("torn" in message for message in caplog.messages)


async def test_append_after_torn_line_starts_a_fresh_line(tmp_path: Path) -> None:
    """After a crash left half a line, the next record is still written on a line of its own."""
    path = tmp_path / "calls.jsonl"
    store = CallStore(path)
    await store.append(_record("before"))
    with path.open("ab") as handle:
        handle.write(b'{"callId":"torn","sta')
    await CallStore(path).append(_record("after"))
    assert set(CallStore(path).load_latest()) == {"before", "after"}
    assert path.read_bytes().endswith(b"\n")


async def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    """Many concurrent appends all land as whole lines."""
    path = tmp_path / "calls.jsonl"
    store = CallStore(path)
    big = "x" * 100_000
    await asyncio.gather(*(store.append(_record(f"c{n}", metadata={"b": big})) for n in range(40)))
    lines = path.read_bytes().splitlines()
    assert len(lines) == 40
    assert {orjson.loads(line)["callId"] for line in lines} == {f"c{n}" for n in range(40)}


async def test_full_disk_raises_store_error_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC mid-write raises StoreError naming the path; the next append heals the store."""
    path = tmp_path / "calls.jsonl"
    store = CallStore(path)
    await store.append(_record("first"))
    real_write = os.write

    def full_disk_write(fd: int, data: bytes) -> int:
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk_write)
    with pytest.raises(StoreError) as caught:
        await store.append(_record("lost", transcript=[{"text": "y" * 1000}]))
    monkeypatch.undo()
    message = f"cannot write call record to {path}: No space left on device"
    assert str(caught.value) == message
    assert not store.healthy
    assert store.last_error == message

    await store.append(_record("second"))
    assert store.healthy
    assert store.last_error is None
    assert set(store.load_latest()) == {"first", "second"}


async def test_unwritable_directory_raises_store_error_and_recovers(tmp_path: Path) -> None:
    """A store dir that cannot be created gives StoreError with the path until it is fixed."""
    blocker = tmp_path / "home"
    blocker.write_text("a regular file where the store dir should be")
    path = blocker / "calls.jsonl"
    store = CallStore(path)
    with pytest.raises(StoreError, match=f"cannot write call record to {path}: Not a directory"):
        await store.append(_record("a"))
    assert not store.healthy
    assert store.last_error is not None and str(path) in store.last_error

    blocker.unlink()
    await store.append(_record("a"))
    assert store.healthy
    assert set(store.load_latest()) == {"a"}


async def test_read_only_store_raises_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only file system gives StoreError naming the file, and the store recovers after."""
    path = tmp_path / "calls.jsonl"
    real_open = os.open

    def read_only_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(file) == str(path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    store = CallStore(path)
    with pytest.raises(StoreError, match=f"cannot write call record to {path}: Read-only"):
        await store.append(_record("a"))
    assert not store.healthy
    monkeypatch.setattr(os, "open", real_open)
    await store.append(_record("a"))
    assert store.healthy
    assert set(store.load_latest()) == {"a"}


@pytest.mark.parametrize("fsync", [True, False])
async def test_fsync_option_syncs_each_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    """With fsync=True every append calls os.fsync on the store file; without, never."""
    path = tmp_path / "calls.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = CallStore(path, fsync=fsync)
    await store.append(_record("a"))
    await store.append(_record("b"))
    assert len(synced) == (2 if fsync else 0)


_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(
    snapshots=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.dictionaries(st.text(max_size=8), _json_values)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_round_trip_property(snapshots: list[tuple[str, dict[str, Any]]]) -> None:
    """Any JSON-shaped records reload exactly, the last snapshot of each callId winning."""
    expected: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = CallStore(Path(tmp) / "calls.jsonl")

        async def write_all() -> None:
            for call_id, fields in snapshots:
                record = {**fields, "callId": call_id}
                expected[call_id] = record
                await store.append(record)

        asyncio.run(write_all())
        assert store.load_latest() == expected


def test_public_names_are_exported() -> None:
    """The store package and its reports module export the names other code relies on."""
    import voicecall.store
    import voicecall.store.reports as reports

    assert voicecall.store.__all__ == ["CallStore"]
    expected = ["format_latency", "latency_report", "read_records", "status_from_store", "tail"]
    assert sorted(reports.__all__) == expected
    assert all(callable(getattr(reports, name)) for name in expected)
