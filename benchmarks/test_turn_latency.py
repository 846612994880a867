"""A quick run of the per-turn latency tool (3 turns): every stage row, sane values, no timings.

Asserts only shapes and orderings (machines are noisy): each stage has one value per turn, no
value is negative, and the record's stamps are in causal order (up to the 1 ms rounding of
``firstFrameAt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turn_latency import REQUIRED_STAGES, STAGES, main

TURNS = 3
# firstFrameAt is not read off the wall clock: it is back-computed from the event loop's clock
# and rounded to the ms (StreamSpeaker.settle in src/voicecall/streaming/speaker.py), so when
# the first frame goes out in the millisecond its audio arrived it can read 1 ms early.
FRAME_STAMP_SLACK_MS = 1


def test_the_tool_reports_every_stage_for_every_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "turns.json"
    assert main(["--turns", str(TURNS), "--warmup", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())

    assert report["turnsMeasured"] == TURNS
    assert report["fakeProblems"] == []
    stages = report["stages"]
    assert set(REQUIRED_STAGES) <= set(stages)
    for name, stats in stages.items():  # the optional stages too, when the gateway stamps them
        assert stats["count"] == TURNS, name
        slack = FRAME_STAMP_SLACK_MS if name == "firstAudioToFirstFrameMs" else 0
        assert stats["minMs"] >= -slack, (name, stats)
        assert stats["minMs"] <= stats["p50Ms"] <= stats["p99Ms"] <= stats["maxMs"], name

    assert len(report["turns"]) == TURNS
    for turn in report["turns"]:
        stamps = turn["stamps"]
        assert stamps["startedAt"] <= stamps["firstAudioAt"], stamps
        assert stamps["firstAudioAt"] <= stamps["firstFrameAt"] + FRAME_STAMP_SLACK_MS, stamps
        assert stamps["responseMs"] == stamps["firstFrameAt"] - stamps["startedAt"]
        assert turn["modelReceivedNs"] <= turn["modelFirstChunkNs"] <= turn["ttsReceivedNs"]
        assert turn["ttsReceivedNs"] <= turn["ttsFirstByteNs"] <= turn["frameArrivedNs"]
        assert turn["frameArrivedNs"] <= turn["frameHeardNs"]

    table = capsys.readouterr().out
    for stage in STAGES:
        if stage.name in stages:
            assert stage.label in table
