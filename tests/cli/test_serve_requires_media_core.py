"""`voicecall serve` refuses to start without its compiled media core and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
sys.modules["voicecall._media"] = None  # as if the compiled core had not been built
from voicecall.cli import main
sys.exit(main(["serve"]))
"""


def test_serve_without_media_core_exits_with_reason(tmp_path: Path) -> None:
    """Without the compiled core, serve exits 1 with an error naming the core and the fix."""
    env = {**os.environ, "VOICECALL_HOME": str(tmp_path)}
    env.pop("VOICECALL_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "compiled media core" in proc.stderr
    assert "pip install" in proc.stderr
