"""Which URLs a webhook may go to, and the addresses we may connect to for them.

A webhook makes the gateway open a connection chosen by a customer, so an unchecked URL would let anyone reach
the gateway's own network (loopback admin ports, cloud metadata at 169.254.169.254, private services). The
rule is applied twice:

* at registration (``check_url``): the scheme must be http(s), and a host that is an IP literal (in any form
  ``inet_aton`` accepts: ``2130706433``, ``0x7f.1``…) or a well-known internal name must be public;
* at delivery (``resolve``): the host name is resolved, *every* address is checked, and the sender connects to
  one of the checked addresses itself, so a DNS answer that changes between check and connect (rebinding)
  cannot smuggle a private address in.

An IPv6 address is public only inside global unicast ``2000::/3``, and only if no IPv4 address it embeds (in any
prefix a translator decodes: IPv4-compatible, -mapped and -translated, NAT64 well-known and local-use, 6to4,
Teredo) is refused: a NAT64 or SIIT gateway on the path would otherwise carry the connection to that address.

``allow_private`` (``SMSGATE_WEBHOOKS_ALLOW_PRIVATE``) turns both checks off for gateways whose receivers live
on the same private network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import urllib.parse

from smsgate import errors

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that always point inside; refused without asking DNS.
INTERNAL_NAMES = ("localhost", "localhost.localdomain", "metadata.google.internal", "metadata")
INTERNAL_SUFFIXES = (".localhost", ".internal", ".local")
# Metadata services that some clouds put on addresses ``is_global`` does not flag.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 space with public hosts (RFC 4291 §2.4)
# Prefixes whose addresses carry an IPv4 address in their last 32 bits: IPv4-compatible (::a.b.c.d, deprecated),
# IPv4-mapped, IPv4-translated (::ffff:0:a.b.c.d, SIIT) and the well-known NAT64 prefix (RFC 6052).
LAST_32_BITS = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): IPv4 in bits 48-63 and 72-87


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``addr`` carries in a known embedding: a gateway on the path (NAT64, SIIT, 6to4, Teredo)
    may turn a connection to ``addr`` into one to these."""
    n = int(addr)
    out: list[ipaddress.IPv4Address] = []
    if any(addr in net for net in LAST_32_BITS) and n > 1:  # not :: or ::1 (refused as they are)
        out.append(ipaddress.IPv4Address(n & 0xFFFFFFFF))
    if addr in NAT64_LOCAL:
        packed = addr.packed
        out.append(ipaddress.IPv4Address(packed[6:8] + packed[9:11]))
    if addr.sixtofour is not None:
        out.append(addr.sixtofour)
    if addr.teredo is not None:
        out.extend(addr.teredo)  # (server, client)
    return out


class TargetRefused(errors.InvalidUrl):
    """The webhook target resolves to an address the gateway may not connect to."""


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A parsed webhook URL: what to connect to and what to say in ``Host``."""

    scheme: str
    host: str  # lower-case name or IP text, without brackets
    port: int
    path: str  # path + query, at least "/"

    @property
    def key(self) -> str:
        """The unit of per-target concurrency: one receiver = one host and port."""
        return f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """Split a webhook URL; InvalidUrl when it is not an absolute http(s) URL with a host."""
    if not isinstance(url, str) or not url.strip():
        raise errors.InvalidUrl("the webhook URL is empty")
    url = url.strip()
    if len(url) > 2000:
        raise errors.InvalidUrl("the webhook URL is longer than 2000 characters")
    if any(c in url for c in "\r\n\t ") or not url.isprintable():
        raise errors.InvalidUrl("the webhook URL contains spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidUrl(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise errors.InvalidUrl("the webhook URL must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise errors.InvalidUrl("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise errors.InvalidUrl("the webhook URL must not contain credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host.lower(), port or (443 if scheme == "https" else 80), path)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself, also in the legacy IPv4 forms resolvers accept (``127.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal(addr: IPAddress) -> str | None:
    """Why the gateway may not connect to ``addr`` (None when it is a public unicast address)."""
    if isinstance(addr, ipaddress.IPv6Address):
        for v4 in embedded_ipv4(addr):
            why = refusal(v4)
            if why:
                return f"{addr} embeds {why}"
    if addr in METADATA:
        return f"{addr} is a cloud metadata address"
    if isinstance(addr, ipaddress.IPv6Address) and addr not in GLOBAL_UNICAST:
        return f"{addr} is not a global unicast address (outside 2000::/3)"
    if addr.is_loopback:
        return f"{addr} is a loopback address"
    if addr.is_link_local:
        return f"{addr} is a link-local address"
    if addr.is_multicast:
        return f"{addr} is a multicast address"
    if addr.is_unspecified:
        return f"{addr} is not a host address"
    if addr.is_private or not addr.is_global:
        return f"{addr} is a private or reserved address"
    return None


def check_url(url: str, allow_private: bool) -> str:
    """The URL, stripped, if it may be registered as a webhook target; InvalidUrl otherwise.

    Host names are not resolved here (they are at every delivery): DNS can change after registration anyway.
    """
    target = parse(url)
    if not allow_private:
        addr = literal_address(target.host)
        if addr is not None:
            why = refusal(addr)
            if why:
                raise TargetRefused(f"webhook target refused: {why}")
        elif target.host in INTERNAL_NAMES or target.host.endswith(INTERNAL_SUFFIXES):
            raise TargetRefused(f"webhook target refused: {target.host} is an internal name")
        elif "." not in target.host:
            raise TargetRefused(f"webhook target refused: {target.host} is not a public host name")
    return url.strip()


async def resolve(target: Target, *, allow_private: bool, dns_timeout: float = 5.0) -> list[str]:
    """The addresses to connect to for ``target``, each one checked.

    TargetRefused if any address is refused (a name with one private address is not a public name);
    OSError when the name does not resolve (temporary: the delivery is retried).
    """
    addr = literal_address(target.host)
    if addr is not None:
        found = [addr]
    else:
        if not allow_private and (target.host in INTERNAL_NAMES or target.host.endswith(INTERNAL_SUFFIXES)):
            raise TargetRefused(f"webhook target refused: {target.host} is an internal name")
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
                dns_timeout,
            )
        except TimeoutError:
            raise OSError(f"resolving {target.host} timed out") from None
        found = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if ip not in found:
                found.append(ip)
        if not found:
            raise OSError(f"{target.host} has no addresses")
    if not allow_private:
        for ip in found:
            why = refusal(ip)
            if why:
                raise TargetRefused(f"webhook target refused: {target.host} resolves to {why}")
    return [str(ip) for ip in found]
