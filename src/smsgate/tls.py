"""TLS for ``serve``: the operator's certificate files, or a self-signed one for 127.0.0.1/localhost.

The self-signed certificate lets HTTPS-only clients (the official ``vonage`` SDK always builds ``https://``
URLs) talk to a gateway on this machine with nothing but ``REQUESTS_CA_BUNDLE`` pointing at the file. It is
kept in the data dir and reused while it is valid, so that path stays the same from one start to the next.
``cryptography`` is imported only to make or read that certificate: a gateway without it, and every other command,
does without its ~40 ms of imports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import pathlib
import ssl

SELF_SIGNED_DIR = "tls"
NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1", "::1")
VALIDITY = dt.timedelta(days=825)  # the longest lifetime clients accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)


class TlsError(Exception):
    """One line naming the file and what is wrong with it."""


@dataclasses.dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: pathlib.Path
    key: pathlib.Path
    self_signed: bool = False


def load_checked(files: TlsFiles) -> ssl.SSLContext:
    """A server context from the files: a missing file, or a key that does not match, is a TlsError now,
    before the gateway starts, rather than a traceback from inside the HTTP server."""
    for what, path in (("certificate", files.cert), ("key", files.key)):
        if not path.is_file():
            raise TlsError(f"{path}: no such TLS {what} file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except PermissionError as exc:
        raise TlsError(f"{exc.filename or files.key}: cannot read ({exc.strerror})") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{files.cert} / {files.key}: not a matching PEM certificate and key ({exc.reason})") from None
    return ctx


def self_signed(data_dir: pathlib.Path) -> TlsFiles:
    """The data dir's self-signed certificate for 127.0.0.1/localhost, made (or renewed) when needed."""
    folder = data_dir / SELF_SIGNED_DIR
    files = TlsFiles(folder / "selfsigned-cert.pem", folder / "selfsigned-key.pem", self_signed=True)
    if files.key.is_file() and _still_good(files.cert):
        return files
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smsgate on localhost")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def _still_good(path: pathlib.Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(dt.UTC)
