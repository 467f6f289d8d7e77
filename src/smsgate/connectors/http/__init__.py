"""Connectors to HTTP SMS APIs: KPN SMS v1, Vonage, Kaarai, and a generic template (``connectors.http.base``).

``TYPES`` maps each ``[[connectors]]`` ``type`` to its settings class (with ``from_mapping``) and connector
class, for the configuration registry; ``build`` makes one from a table.
"""

from __future__ import annotations

from collections.abc import Mapping

from smsgate.connectors.http import generic, kaarai, kpn, vonage
from smsgate.connectors.http.base import HttpConnector
from smsgate.connectors.http.settings import HttpSettings

__all__ = ["TYPES", "HttpConnector", "HttpSettings", "build"]

TYPES: dict[str, tuple[type[HttpSettings], type[HttpConnector]]] = {
    "kpn": (kpn.KpnSettings, kpn.KpnConnector),
    "vonage": (vonage.VonageSettings, vonage.VonageConnector),
    "kaarai": (kaarai.KaaraiSettings, kaarai.KaaraiConnector),
    "http": (generic.GenericSettings, generic.GenericConnector),
}


def build(table: Mapping[str, object], *, public_url: str | None) -> HttpConnector:
    """The connector a ``[[connectors]]`` table of one of ``TYPES`` describes (ValueError if it is not valid)."""
    settings_cls, connector_cls = TYPES[str(table["type"])]
    return connector_cls(settings_cls.from_mapping(table), public_url=public_url)
