"""Who is at the other end: the connection's peer, unless that peer is a reverse proxy the operator trusts.

``SMSGATE_TRUSTED_PROXIES`` lists those proxies (CIDRs; none by default). Only when the peer is one of them are
``Forwarded`` (RFC 7239; it wins when both are present) or ``X-Forwarded-For`` read, right to left: each hop was
added by the proxy after it, so the first address that is not a trusted proxy is the client. Anyone else's
forwarding headers are ignored: a client cannot choose the address its failed logins are counted under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDING = ("forwarded", "x-forwarded-for", "x-real-ip")


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The networks of ``SMSGATE_TRUSTED_PROXIES`` entries (an address is a /32 or /128); ValueError names a bad one."""
    out = []
    for raw in cidrs:
        try:
            out.append(ipaddress.ip_network(raw.strip(), strict=False))
        except ValueError:
            raise ValueError(f"SMSGATE_TRUSTED_PROXIES: {raw!r} is not an IP address or CIDR network") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def trusted(address: str, proxies: Sequence[Network]) -> bool:
    ip = _ip(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in proxies)


def _node(value: str) -> str:
    """The address of a ``Forwarded`` ``for=`` node: quotes, brackets and port taken off (``unknown`` stays)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    host, sep, port = value.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else value


def chain(headers: Headers) -> list[str]:
    """The forwarded-for addresses, client first, as the proxies wrote them."""
    forwarded = headers.getlist("forwarded")
    if forwarded:
        out = []
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                name, sep, value = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    out.append(_node(value))
        return out
    return [a.strip() for a in ",".join(headers.getlist("x-forwarded-for")).split(",") if a.strip()]


def client(peer: str | None, headers: Headers, proxies: Sequence[Network]) -> str:
    """The client's address: the peer, or, behind trusted proxies, the nearest hop that is not one of them."""
    if not peer:
        return "?"
    if not proxies or not trusted(peer, proxies):
        return peer
    hops = chain(headers)
    for hop in reversed(hops):
        if not trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def is_loopback(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and (
        ip.is_loopback
        or (isinstance(ip, ipaddress.IPv6Address) and bool(ip.ipv4_mapped and ip.ipv4_mapped.is_loopback))
    )


def local(peer: str | None, headers: Headers, proxies: Sequence[Network]) -> bool:
    """Whether the request comes from this machine itself: a loopback client, and (unless a trusted proxy vouches
    for the client) no forwarding headers, which would mean a proxy on loopback passing on someone else's request."""
    if not peer or not is_loopback(peer):
        return False
    if proxies and trusted(peer, proxies):
        return is_loopback(client(peer, headers, proxies))
    return not any(name in headers for name in FORWARDING)
