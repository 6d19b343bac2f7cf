"""The package's three rooms keep their walls (see labsmtp/__init__.py).

- ``protocol/`` imports nothing from ``lab/``, ``classroom/`` or the CLI, and no I/O
  module (socket, asyncio, ssl, threading, selectors): it decides what to answer.
- ``lab/`` imports nothing from ``classroom/`` or the CLI.
- the leaves (``errors``, ``style``, ``render``) import nothing from the rooms.
- no module is over 600 lines, the asyncio adapter (``lab/server.py``) over 400.

Imports are read with ``ast``, lazy ones inside functions included, so a wall
cannot be crossed quietly.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "labsmtp"
IO_MODULES = {"socket", "asyncio", "ssl", "threading", "selectors", "socketserver", "aiosmtpd"}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of every module ``path`` imports (top-level and lazy)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            # "from . import x" imports the submodule x
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def _files(room: str) -> list[pathlib.Path]:
    return sorted((PACKAGE / room).rglob("*.py"))


WALLS = {
    "protocol": ("labsmtp.lab", "labsmtp.classroom", "labsmtp.cli"),
    "lab": ("labsmtp.classroom", "labsmtp.cli"),
}


@pytest.mark.parametrize("room", sorted(WALLS))
def test_rooms_import_only_downwards(room):
    files = _files(room)
    assert files, f"labsmtp/{room}/ is empty"
    crossings = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in sorted(_imports(path))
        if name.startswith(WALLS[room])
    ]
    assert not crossings, "\n".join(crossings)


def test_protocol_does_no_io():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _files("protocol")
        for name in sorted(_imports(path))
        if name.split(".")[0] in IO_MODULES
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("leaf", ["errors.py", "style.py", "render.py"])
def test_leaves_import_no_room(leaf):
    names = _imports(PACKAGE / leaf)
    rooms = [
        n for n in names if n.startswith(("labsmtp.protocol", "labsmtp.lab", "labsmtp.classroom"))
    ]
    assert not rooms, rooms


def test_the_walls_are_checked_on_real_imports():
    # The checker itself must see a crossing: lab/server.py imports protocol (allowed),
    # and classroom/widgets.py imports lab (which the lab wall forbids in reverse).
    assert any(n.startswith("labsmtp.protocol") for n in _imports(PACKAGE / "lab" / "server.py"))
    assert any(n.startswith("labsmtp.lab") for n in _imports(PACKAGE / "classroom" / "widgets.py"))


# Issue 10: no module over 600 lines (the rooms stay readable), the asyncio adapter at
# most 400 (it only carries bytes between a socket and the sans-IO session).
MODULE_LIMIT = 600
ADAPTER_LIMIT = 400


def test_no_module_is_over_the_size_limit():
    sizes = {p: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    over = [f"{p.relative_to(PACKAGE.parent)}: {n}" for p, n in sizes.items() if n > MODULE_LIMIT]
    assert not over, f"over {MODULE_LIMIT} lines: " + ", ".join(sorted(over))
    adapter = sizes[PACKAGE / "lab" / "server.py"]
    assert adapter <= ADAPTER_LIMIT, f"lab/server.py has {adapter} lines"
