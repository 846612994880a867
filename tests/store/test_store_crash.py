"""A gateway killed mid-append leaves a store whose every complete line loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

from voicecall.store import CallStore

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from voicecall.store import CallStore

    async def main() -> None:
        store = CallStore(Path(sys.argv[1]))
        n = 0
        while True:
            n += 1
            text = "w" * (n * 7919 % 200_000)
            await store.append({"callId": f"c{n % 7}", "seq": n, "metadata": {"pad": text}})
            if n == 50:
                print("ready", flush=True)

    asyncio.run(main())
    """
)


async def test_sigkill_while_appending_leaves_every_complete_line_loadable(
    tmp_path: Path,
) -> None:
    """After SIGKILL mid-loop every newline-terminated line parses and the store keeps working."""
    path = tmp_path / "calls.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    sequences = [orjson.loads(line)["seq"] for line in complete]
    assert sequences == list(range(1, len(sequences) + 1))

    store = CallStore(path)
    latest = store.load_latest()
    assert max(record["seq"] for record in latest.values()) == sequences[-1]

    await store.append({"callId": "after-crash", "seq": 0})
    assert store.load_latest()["after-crash"] == {"callId": "after-crash", "seq": 0}
