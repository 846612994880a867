"""The many-calls load test still runs: a quick pass (5 calls, 2 s) through the real tool.

It asserts that the tool finishes by itself, that every call stayed connected with audio flowing
both ways, and that the report has its fields. It asserts no timing or CPU numbers: machines
are shared and noisy; ``python -m benchmarks.load_calls`` is where the numbers come from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLS = 5

ROW_FIELDS = {
    "impl",
    "calls",
    "window_s",
    "cpu_pct",
    "cpu_us_per_call_s",
    "rss_idle_mib",
    "rss_mib",
    "rss_per_call_kib",
    "jitter_ms",
    "jitter_samples",
    "out_fps_per_call",
    "in_fps_per_call",
    "calls_up",
    "all_up",
    "inbound_sent",
    "inbound_to_stt",
    "malformed_frames",
    "jitter_lost",
    "generator_cpu_pct",
    "generator_lag_ms",
}


def test_quick_load_run_keeps_every_call_up_and_reports_each_field(tmp_path: Path) -> None:
    """5 calls for 2 s on the gateway and on the baseline: all stay up, the report is complete."""
    out = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.load_calls",
        "--calls",
        str(CALLS),
        "--seconds",
        "2",
        "--warmup",
        "0.5",
        "--utterance-s",
        "1",
        "--timeout",
        "90",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| impl | calls | CPU % of a core |" in done.stdout
    report = json.loads(out.read_text())
    rows = {row["impl"]: row for row in report["rows"]}
    assert set(rows) == {"voicecall", "baseline"}
    for row in rows.values():
        assert set(row) >= ROW_FIELDS, ROW_FIELDS - set(row)
        assert row["calls"] == CALLS
        assert row["all_up"] and row["calls_up"] == CALLS, row
        assert row["out_fps_per_call"] > 0 and row["in_fps_per_call"] > 0, row
        assert row["jitter_samples"] > 0 and set(row["jitter_ms"]) == {"p50", "p99", "max"}
        assert 0 < row["inbound_to_stt"] <= row["inbound_sent"], row
        assert row["cpu_us_per_call_s"] > 0 and row["rss_mib"] > 0
    gateway = rows["voicecall"]
    assert gateway["streams_open"] == CALLS
    assert gateway["clears"] == 0  # quiet callers never barge in on the bot's speech
    assert gateway["marks_echoed"] > 0  # outbound playback ran (frames + marks)
    assert gateway["speaks_failed"] == 0, gateway["notes"]
    assert [r["calls"] for r in report["ratios"]] == [CALLS]
    assert report["ratios"][0]["cpu_ratio"] > 0
