"""The built wheel carries the compiled core, and an install of it runs outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import voicecall

SOURCE_ROOT = Path(voicecall.__file__).resolve().parents[2]
PROBE = textwrap.dedent(
    """
    import base64, json, sysconfig
    import voicecall.media as media
    import voicecall._media.g711, voicecall._media.resample
    decoder = media.FrameDecoder(16000, "ulaw")
    pcm = decoder.decode(base64.b64encode(bytes(range(160))).decode()) + decoder.flush()
    print(json.dumps({
        "backend": media.BACKEND,
        "g711": voicecall._media.g711.__file__,
        "resample": voicecall._media.resample.__file__,
        "media": media.__file__,
        "purelib": sysconfig.get_paths()["purelib"],
        "platlib": sysconfig.get_paths()["platlib"],
        "samples": len(pcm) // 2,
    }))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_wheel_installs_and_runs_the_compiled_core_outside_the_source_tree(tmp_path: Path) -> None:
    """pip-installing the built wheel gives a voicecall.media backed by its own compiled modules."""
    assert (SOURCE_ROOT / "pyproject.toml").is_file(), "run the tests from a source checkout"
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(SOURCE_ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            # a private build dir: never race an editable rebuild in the tree's shared build/
            f"--config-settings=build-dir={tmp_path / 'build'}",
        ],
        check=True,
        timeout=240,
    )
    (wheel,) = wheels.glob("voicecall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("g711", "resample"):
        assert any(
            n.startswith(f"voicecall/_media/{module}") and n.endswith((".so", ".pyd"))
            for n in names
        ), f"{module} extension missing from {wheel.name}"

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    )
    # The dependencies come from this interpreter's site-packages, added as a plain path: not as a
    # site dir, whose .pth files (an editable install's import hook among them) would be run and
    # would send ``import voicecall`` back to the source tree.
    here = sysconfig.get_paths()
    (venv_site / "host-site-packages.pth").write_text(f"{here['purelib']}\n{here['platlib']}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = subprocess.run(
        [str(python), "-I", "-c", PROBE],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    site = Path(seen["platlib"]).resolve()
    assert str(site).startswith(str(venv.resolve())), site
    for key in ("g711", "resample", "media"):
        path = Path(seen[key]).resolve()
        assert path.is_relative_to(site), f"{key} imported from {path}, not the venv"
        assert not path.is_relative_to(SOURCE_ROOT), f"{key} imported from the source tree"
    assert seen["backend"] == "compiled"
    assert seen["samples"] == 320
