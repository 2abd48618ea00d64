"""minidriver/ never imports emulator/ (design.md: host side and card side written apart), and only
minidriver/pcsc.py imports pyscard (``smartcard``)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "minidriver"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def package_of(path: Path) -> str:
    dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` (in ``package``) imports, anywhere (functions too)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module:
                names.add(module)
            names.update(f"{module}.{alias.name}" if module else alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "import_module",
            "__import__",
        ):
            names.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def test_the_walk_sees_the_whole_package() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in SOURCES}
    assert {"__init__.py", "iso7816.py", "pcsc.py", "protocol.py", "piv.py", "gp.py", "scp03.py"} <= names


def test_the_walk_would_catch_an_import() -> None:
    sample = (
        "import os\n"
        "from emulator.card import VirtualCard\n"
        "def f():\n"
        "    import smartcard.System\n"
        "    from ... import emulator\n"
        "    importlib.import_module('emulator.store')\n"
    )
    names = imported_modules(sample, "minidriver.cardmod")
    assert {"emulator.card", "smartcard.System", "emulator", "emulator.store"} <= names
    assert "minidriver.iso7816" in imported_modules("from ..iso7816 import SW\n", "minidriver.cardmod")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_imports_emulator(path: Path) -> None:
    bad = sorted(
        n for n in imported_modules(path.read_text(), package_of(path)) if n == "emulator" or n.startswith("emulator.")
    )
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_pcsc_imports_pyscard(path: Path) -> None:
    uses = sorted(
        n
        for n in imported_modules(path.read_text(), package_of(path))
        if n == "smartcard" or n.startswith("smartcard.")
    )
    if path == PACKAGE / "pcsc.py":
        assert uses, "pcsc.py is the pyscard module"
    else:
        assert not uses, f"{path.relative_to(ROOT)} imports {uses}; only minidriver/pcsc.py may"


HOST_MODULES = ("minidriver.iso7816", "minidriver.pcsc", "minidriver.protocol", "minidriver.piv", "minidriver.gp")


def test_importing_every_module_loads_no_emulator_code() -> None:
    """In a fresh interpreter: import minidriver and all its submodules, then look at sys.modules.

    A module that fails to import (work in progress elsewhere) is reported, not
    fatal: the AST test above still covers it. The host stack must import.
    """
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import minidriver\n"
        "failed = {}\n"
        "for m in pkgutil.walk_packages(minidriver.__path__, 'minidriver.', onerror=lambda name: None):\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as exc:\n"
        "        failed[m.name] = repr(exc)\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'failed': failed}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    modules, failed = result["modules"], result["failed"]
    for name in HOST_MODULES:
        assert name in modules and name not in failed, f"{name}: {failed.get(name, 'not imported')}"
    assert [m for m in modules if m == "emulator" or m.startswith("emulator.")] == []
