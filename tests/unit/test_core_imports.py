from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import smsgate.core

FORBIDDEN = ("sqlalchemy", "httpx", "fastapi", "asyncio", "socket", "starlette", "pydantic", "redis")
OURS = {"encoding", "segments", "concat", "numbers", "networks", "senders", "pricing"}


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(smsgate.core.__path__, "smsgate.core."))


def test_all_core_modules_import() -> None:
    names = core_modules()
    assert {f"smsgate.core.{name}" for name in OURS} <= set(names)
    for name in names:
        importlib.import_module(name)


def imported_names(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add("smsgate.core." + (node.module or ""))  # relative: stays inside core
            elif node.module:
                found.add(node.module)
    return found


def test_core_imports_only_errors_from_smsgate() -> None:
    for path in Path(smsgate.core.__path__[0]).glob("*.py"):
        for name in imported_names(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "smsgate":
                assert name == "smsgate.errors" or name.startswith("smsgate.core"), f"{path.name} imports {name}"


def test_fresh_interpreter_loads_nothing_heavy() -> None:
    code = (
        f"import json, sys\nfor name in {core_modules()!r}: __import__(name)\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = json.loads(out)
    for name in loaded:
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"importing smsgate.core loads {name}"
        if top == "smsgate":
            assert name in ("smsgate", "smsgate.errors") or name.startswith("smsgate.core"), name
