"""The effective configuration, as ``smsgate config check`` prints it: every setting after the environment,
the file and the defaults are merged, with secrets masked (passwords, secrets, tokens, URL passwords)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from smsgate.settings import Settings
from smsgate.store import engine as store_engine

MASK = "***"
_SECRET_WORDS = ("password", "secret", "token", "credential", "private_key")


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking key's string value and every URL password replaced by ``***``."""
    if isinstance(value, Mapping):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, key) for v in value]
    if isinstance(value, str):
        if value and is_secret(key):
            return MASK
        if "://" in value and "@" in value:
            return _mask_url(value)
    return value


def _mask_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def report(settings: Settings) -> dict[str, Any]:
    """What the gateway would run with: file, data dir, database, connectors, routing, every other setting."""
    from smsgate.connectors import registry

    connectors = []
    for table in settings.connectors or [{"type": "sandbox", "name": "sandbox"}]:
        kind = registry.lookup(table).name
        connectors.append({"name": table["name"], "type": kind, **masked({k: v for k, v in table.items()
                                                                           if k not in ("name", "type")})})  # fmt: skip
    names = [c["name"] for c in connectors]
    others = {
        k: masked(v, k)
        for k, v in settings.model_dump(mode="json").items()
        if k not in ("config", "data_dir", "database_url", "connectors", "routing")
    }
    return {
        "config_file": str(settings.config) if settings.config else None,
        "data_dir": str(settings.data_dir.resolve()),
        "database": store_engine.masked_url(settings.effective_database_url),
        "sandbox_only": all(c["type"] == "sandbox" for c in connectors),
        "connectors": connectors,
        "routing": {"default": settings.routing.get("default", names[0]), "rules": settings.routing.get("rules", [])},
        "settings": others,
    }


def lines(data: Mapping[str, Any]) -> list[str]:
    """The report for a person: headline first, then every setting as ``key = value``."""
    out = [
        f"configuration OK ({data['config_file'] or 'no config file: environment and defaults'})",
        f"data dir    {data['data_dir']}",
        f"database    {data['database']}",
        "connectors",
    ]
    for c in data["connectors"]:
        extra = ", ".join(f"{k}={_show(v)}" for k, v in c.items() if k not in ("name", "type"))
        out.append(f"  {c['name']} ({c['type']}){': ' + extra if extra else ''}")
    if data["sandbox_only"]:
        out.append("  (sandbox only: no real SMS leaves this machine)")
    rules = data["routing"]["rules"]
    out.append(f"routing     default -> {data['routing']['default']}" + (f"; {len(rules)} rule(s)" if rules else ""))
    for r in rules:
        match = ", ".join(f"{k}={v}" for k, v in r.items() if k != "connector")
        out.append(f"  {match} -> {r['connector']}")
    out.append("settings")
    out += [f"  {k} = {_show(v)}" for k, v in sorted(data["settings"].items())]
    return out


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) or value == "" else value
