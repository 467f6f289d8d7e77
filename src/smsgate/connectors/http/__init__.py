"""Connectors to HTTP SMS APIs: KPN SMS v1, Vonage, Kaarai, and a generic template (``connectors.http.base``).

``TYPES`` maps each ``[[connectors]]`` ``type`` to its settings class (with ``from_mapping``) and connector
class, for the configuration registry (``connectors.registry``), which builds them.
"""

from __future__ import annotations

from smsgate.connectors.http import generic, kaarai, kpn, vonage
from smsgate.connectors.http.base import HttpConnector
from smsgate.connectors.http.settings import HttpSettings

__all__ = ["TYPES", "HttpConnector", "HttpSettings"]

TYPES: dict[str, tuple[type[HttpSettings], type[HttpConnector]]] = {
    "kpn": (kpn.KpnSettings, kpn.KpnConnector),
    "vonage": (vonage.VonageSettings, vonage.VonageConnector),
    "kaarai": (kaarai.KaaraiSettings, kaarai.KaaraiConnector),
    "http": (generic.GenericSettings, generic.GenericConnector),
}
