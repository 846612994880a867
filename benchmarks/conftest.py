"""Shared benchmark fixtures, and a summary of each group's times relative to our implementation."""

from __future__ import annotations

from collections import defaultdict
from types import ModuleType
from typing import Any

import pytest

from quality import load_audioop

#: The parameter id of our implementation in a benchmark group; every other entry is a baseline.
OURS_IDS = ("voicecall", "c")


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    """The stdlib ``audioop`` (or ``audioop-lts``), the baseline codec and ``ratecv``."""
    return load_audioop()


def _contender(bench: Any) -> str:
    """Who ran: the ``contender`` parameter if the test has one, else the whole parameter id."""
    who = (bench.params or {}).get("contender")
    return str(bench.param) if who is None else str(getattr(who, "name", who))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print, per benchmark group, each baseline's mean time / ours (> 1: ours is faster).

    The mean, not the median: soxr streams buffer and work in bursts (most 20 ms calls return
    nothing, every few calls one does all the filtering), so only the mean is the cost per frame.
    """
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session object
    benches = [b for b in getattr(session, "benchmarks", []) if b and b.group]
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in benches:
        groups[bench.group][_contender(bench)] = float(bench.stats.mean)
    lines = []
    for group, medians in sorted(groups.items()):
        ours = next((medians[k] for k in OURS_IDS if k in medians), None)
        if ours is None or len(medians) < 2:
            continue
        others = ", ".join(
            f"{name} {median / ours:.2f}x"
            for name, median in medians.items()
            if name not in OURS_IDS
        )
        lines.append(f"{group}: ours {ours * 1e6:.3f} us; {others}")
    if lines:
        terminalreporter.write_sep("-", "mean time relative to ours (> 1 means ours is faster)")
        for line in lines:
            terminalreporter.write_line(line)
