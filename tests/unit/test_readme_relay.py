"""The README's "Relay to your KPN / Vonage / Kaarai account" configs are valid as printed."""

from __future__ import annotations

import pathlib
import re
import textwrap
import tomllib

from smsgate.connectors import registry
from smsgate.core import routing

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def relay_blocks() -> list[dict[str, object]]:
    text = README.read_text()
    section = text.split("## Relay to your KPN / Vonage / Kaarai account", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```toml\n(.*?)^\1```", section, flags=re.S | re.M)
    return [tomllib.loads(textwrap.dedent(body)) for _indent, body in blocks]


def test_the_relay_configs_in_the_readme_load() -> None:
    full, generic = relay_blocks()
    names = set()
    for table in [*full["connectors"], *generic["connectors"]]:  # type: ignore[misc]
        connector = registry.build(table, registry.Defaults(public_url="https://sms.example.com"))
        names.add(connector.name)
    router = routing.Router.from_mapping(full["routing"], fallback="vonage")  # type: ignore[arg-type]
    assert router.connectors() <= names
    assert {r.route.strategy for r in router.rules} == {"failover", "weighted"}
