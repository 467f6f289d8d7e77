"""The one-way flow, as an import contract (issue #17): only ``store`` speaks SQL, the store knows nothing of the
layers that use it, and the use cases do not know the dispatcher (``runtime`` wires them together).

Every module's imports are read from its source (``ast``), including imports inside functions, so a violation
anywhere in a file fails here with the file and the import named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import smsgate

ROOT = Path(smsgate.__file__).parent

# (package or module the rule is about, what it may not import)
RULES = [
    ("smsgate.store", ("smsgate.connectors", "smsgate.api", "smsgate.webhooks", "smsgate.dispatch")),
    ("smsgate.services", ("smsgate.dispatch", "smsgate.api", "smsgate.connectors")),
    ("smsgate.core", ("smsgate.store", "smsgate.services", "smsgate.api", "smsgate.connectors")),
    ("smsgate.webhooks", ("smsgate.api", "smsgate.connectors", "smsgate.dispatch", "smsgate.services")),
    ("smsgate.dispatch", ("smsgate.api", "smsgate.services", "smsgate.webhooks")),
]


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def imports(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``from x import y`` counts as ``x`` and ``x.y``)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations() -> list[str]:
    out = []
    for module, path in modules():
        found = imports(module, path)
        where = path.relative_to(ROOT.parent)
        if not _within(module, "smsgate.store"):
            out += [f"{where} imports {n} (only smsgate.store speaks SQL)" for n in found if _within(n, "sqlalchemy")]
        for owner, forbidden in RULES:
            if _within(module, owner):
                out += [f"{where} imports {n} ({owner} may not)" for n in found for f in forbidden if _within(n, f)]
    return sorted(set(out))


def test_the_layers_import_only_downwards() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("smsgate.api.x", "import sqlalchemy as sa\n", "only smsgate.store speaks SQL"),
        ("smsgate.dispatch.x", "def f():\n    from sqlalchemy import select\n", "only smsgate.store speaks SQL"),
        ("smsgate.store.x", "from smsgate.connectors import base\n", "smsgate.store may not"),
        ("smsgate.store.x", "from ..api import app\n", "smsgate.store may not"),
        ("smsgate.services.x", "from smsgate.dispatch import dispatcher\n", "smsgate.services may not"),
    ],
)
def test_the_contract_sees_a_violation(tmp_path: Path, module: str, source: str, expected: str) -> None:
    """The checker itself: each kind of violation, in a file laid where the rule applies, is caught."""
    path = tmp_path / "smsgate" / Path(*module.split(".")[1:-1]) / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = imports(module, path)
    flagged = [n for n in found if _within(n, "sqlalchemy")] if "SQL" in expected else found
    owner = expected.split(" ")[0]
    rules = dict(RULES)
    assert flagged
    if "SQL" not in expected:
        assert any(_within(n, f) for n in found for f in rules[owner])
