"""The layering rules of DESIGN.md hold: sans-IO modules do no I/O, imports point downward only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import voicecall

PACKAGE = Path(voicecall.__file__).parent

# The sans-IO zone: stdlib (minus I/O and clocks), pydantic and voicecall.media only.
SANS_IO = [
    *sorted((PACKAGE / "calls").glob("*.py")),
    *sorted((PACKAGE / "config").glob("*.py")),
    *sorted(PACKAGE.glob("carriers/*/webhook.py")),
    PACKAGE / "errors.py",
]
FORBIDDEN_MODULES = {"asyncio", "aiohttp", "websockets", "uvloop", "socket", "requests", "httpx"}
FORBIDDEN_CALLS = {"time.sleep", "time.time", "time.monotonic", "datetime.now", "datetime.utcnow"}
SANS_IO_MAY_IMPORT = ("voicecall.calls", "voicecall.config", "voicecall.errors", "voicecall.media")


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = "voicecall." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rstrip(".").split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, node.lineno


def _calls(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                yield f"{owner.id}.{node.func.attr}", node.lineno


@pytest.mark.parametrize("path", SANS_IO, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_sans_io_module_does_no_io(path: Path) -> None:
    """A sans-IO module imports no event loop, socket or HTTP library and reads no clock."""
    problems = [
        f"line {line}: imports {module}"
        for module, line in _imports(path)
        if module.split(".")[0] in FORBIDDEN_MODULES
        or (module.startswith("voicecall") and not module.startswith(SANS_IO_MAY_IMPORT))
    ]
    problems += [
        f"line {line}: calls {name}" for name, line in _calls(path) if name in FORBIDDEN_CALLS
    ]
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_only_media_imports_the_compiled_core() -> None:
    """Only voicecall.media imports voicecall._media."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if "media" not in path.relative_to(PACKAGE).parts[:1]
        for module, line in _imports(path)
        if module.startswith("voicecall._media")
    ]
    assert not offenders


def test_nothing_below_the_cli_imports_it() -> None:
    """The CLI sits on top: no other module imports voicecall.cli."""
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "cli"
        for module, line in _imports(path)
        if module.startswith("voicecall.cli")
    ]
    assert not offenders
