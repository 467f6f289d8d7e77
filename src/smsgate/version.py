"""The running version, from the installed distribution's metadata (one source: pyproject.toml)."""

from __future__ import annotations

import importlib.metadata
import platform


def _installed() -> str:
    try:
        return importlib.metadata.version("smsgate")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


VERSION = _installed()


def info() -> dict[str, str]:
    """What ``GET /version`` and ``smsgate --version --json`` tell: ours, and the Python that runs it."""
    return {"name": "smsgate", "version": VERSION, "python": platform.python_version()}
