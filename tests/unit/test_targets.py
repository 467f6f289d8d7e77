"""Webhook target policy: which URLs may be registered, and which resolved addresses may be connected to."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from smsgate import errors
from smsgate.webhooks import targets

PUBLIC = [
    "https://hooks.example.com/sms?x=1",
    "http://93.184.216.34:8080/cb",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/cb",
    "HTTPS://Hooks.Example.COM./path",
]
PRIVATE = [
    "http://127.0.0.1/",
    "http://127.1:8080/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://localhost:9000/",
    "http://api.localhost/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://intranet/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.64.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://0.0.0.0:80/",
    "http://224.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest",
    "http://[fc00::5]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[ff02::1]/",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_pass(url: str) -> None:
    assert targets.check_url(" " + url + " ", allow_private=False) == url


@pytest.mark.parametrize("url", PRIVATE)
def test_private_urls_refused(url: str) -> None:
    with pytest.raises(targets.TargetRefused, match="refused"):
        targets.check_url(url, allow_private=False)
    assert targets.check_url(url, allow_private=True) == url  # the operator may allow them


@pytest.mark.parametrize(
    "url",
    ["", "   ", "ftp://example.com/", "javascript:alert(1)", "//example.com/x", "https:///nohost", "example.com/hook",
     "https://user:pw@example.com/", "https://example.com:99999/", "https://exa mple.com/", "https://example.com/\r\nX: y",
     "https://" + "a" * 2000 + ".com/"],
)  # fmt: skip
def test_malformed_urls(url: str) -> None:
    with pytest.raises(errors.InvalidUrl):
        targets.check_url(url, allow_private=True)


def test_parse_defaults_and_host_header() -> None:
    t = targets.parse("https://Hooks.Example.com/a?b=c")
    assert (t.scheme, t.host, t.port, t.path, t.key, t.host_header) == (
        "https", "hooks.example.com", 443, "/a?b=c", "hooks.example.com:443", "hooks.example.com"
    )  # fmt: skip
    t = targets.parse("http://[2001:db8::1]:8080")
    assert (t.host, t.port, t.path, t.host_header) == ("2001:db8::1", 8080, "/", "[2001:db8::1]:8080")


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """DNS cannot be reached from the test machine: answer from a table, and record what was asked."""
    asked: list[str] = []

    async def getaddrinfo(self: Any, host: str, port: int, **kw: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return asked


async def test_resolve_checks_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_dns(
        monkeypatch,
        {
            "good.example.com": ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"],
            "rebind.example.com": ["93.184.216.34", "10.0.0.1"],
            "meta.example.com": ["169.254.169.254"],
            "v6.example.com": ["fe80::1%eth0"],
        },
    )
    t = targets.parse("https://good.example.com/x")
    assert await targets.resolve(t, allow_private=False) == ["93.184.216.34", "2606:2800:220:1::1"]
    for host in ("rebind", "meta", "v6"):
        with pytest.raises(targets.TargetRefused, match="resolves to"):
            await targets.resolve(targets.parse(f"http://{host}.example.com/"), allow_private=False)
    assert await targets.resolve(targets.parse("http://rebind.example.com/"), allow_private=True) == [
        "93.184.216.34",
        "10.0.0.1",
    ]
    with pytest.raises(OSError):  # not a refusal: a name that does not resolve is retried later
        await targets.resolve(targets.parse("http://nxdomain.example.com/"), allow_private=False)
    # literals and internal names are decided without asking DNS
    assert await targets.resolve(targets.parse("http://127.1:9/"), allow_private=True) == ["127.0.0.1"]
    with pytest.raises(targets.TargetRefused):
        await targets.resolve(targets.parse("http://localhost/"), allow_private=False)
    with pytest.raises(targets.TargetRefused):
        await targets.resolve(targets.parse("http://[::ffff:169.254.169.254]/"), allow_private=False)
    assert "localhost" not in asked and "127.1" not in asked


def test_refusal_reasons() -> None:
    assert targets.refusal(ipaddress.ip_address("8.8.8.8")) is None
    assert "metadata" in (targets.refusal(ipaddress.ip_address("169.254.169.254")) or "")
    assert "metadata" in (targets.refusal(ipaddress.ip_address("fd00:ec2::254")) or "")
    assert "loopback" in (targets.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) or "")
    assert "private" in (targets.refusal(ipaddress.ip_address("192.168.0.1")) or "")


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::7f00:1", ["127.0.0.1"]),
        ("::ffff:0:a00:1", ["10.0.0.1"]),
        ("64:ff9b::808:808", ["8.8.8.8"]),
        ("64:ff9b:1:a9fe:a9:fe00::", ["169.254.169.254"]),
        ("2002:c0a8:101::", ["192.168.1.1"]),
        ("2606:2800:220:1::1", []),
    ],
)
def test_embedded_ipv4_is_decoded_in_every_prefix(address: str, embedded: list[str]) -> None:
    assert [str(a) for a in targets.embedded_ipv4(ipaddress.IPv6Address(address))] == embedded


def test_only_global_unicast_ipv6_is_public() -> None:
    assert targets.refusal(ipaddress.ip_address("2606:2800:220:1::1")) is None
    assert "2000::/3" in (targets.refusal(ipaddress.ip_address("64:ff9b::808:808")) or "")
    assert "2000::/3" in (targets.refusal(ipaddress.ip_address("4000::1")) or "")
