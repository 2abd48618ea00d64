"""A Python interpreter, with this checkout's packages, that another (non-root) user can run.

The tests that run vcard as another uid need one. The checkout's own virtualenv may not do: CI
may clone into a 0700 directory, and an interpreter may live under /root (pyenv). Then a copy is
made once per test session in a world-readable temporary directory: the checkout's packages
(``emulator``, ``minidriver``) and the virtualenv's site-packages, behind a small virtualenv on
the system's ``python3.X``. Nothing in the checkout is chmod'ed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from emulator.pytest_plugin import fail_or_skip

__all__ = ["REPO", "python_for_other_users"]

REPO = Path(__file__).resolve().parents[2]
PROBE = "import emulator, minidriver, smartcard, cryptography"
_cache: dict[str, str] = {}


def _works(prefix: list[str], python: str, extra: str = "") -> bool:
    """Can the user exec ``python`` from one of their own processes (as the daemon's start does)?"""
    probe = [*prefix, "sh", "-c", f'exec "$0" -c "{PROBE}{extra}"', python]
    return subprocess.run(probe, capture_output=True, cwd="/").returncode == 0


def _site_packages() -> Path:
    return next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())


def _portable_copy() -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = next((p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}") if os.access(p, os.X_OK)), None)
    if base is None:
        fail_or_skip(f"{sys.executable} cannot be run by another user and there is no /usr/bin/{version}")
    where = Path(tempfile.mkdtemp(prefix="vcard-other-user-py-"))
    atexit.register(shutil.rmtree, where, True)
    where.chmod(0o755)
    src = where / "src"
    for package in ("emulator", "minidriver"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    site = where / "site"
    shutil.copytree(_site_packages(), site, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    venv = where / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    # the copied sources first (PathFinder finds them before the editable install's finder, which
    # points into the checkout), then the copied site-packages
    (venv_site / "00-vcard-checkout.pth").write_text(f"{src}\nimport site; site.addsitedir({str(site)!r})\n")
    for d, _, files in os.walk(where):
        os.chmod(d, 0o755)
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)
    return str(venv / "bin" / "python")


def python_for_other_users(prefix: list[str], *, extra_probe: str = "") -> str:
    """``sys.executable`` if the user behind ``prefix`` can run it with our packages, else a copy."""
    if _works(prefix, sys.executable, extra_probe):
        return sys.executable
    if "copy" not in _cache:
        _cache["copy"] = _portable_copy()
    python = _cache["copy"]
    if not _works(prefix, python, extra_probe):
        fail_or_skip(f"no Python interpreter with this checkout's packages is usable by another user ({python})")
    return python
