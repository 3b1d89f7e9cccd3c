"""Throw-away PKI for the test registries, built with ``cryptography``.

* :func:`make_server_tls` writes a self-signed CA and a server certificate for
  ``127.0.0.1``, ``localhost`` and :data:`PROXIED_NAME` (IP and DNS subject alternative
  names) signed by it.
* :func:`make_token_signing` writes the token server's signing key and a self-signed
  certificate for it; the certificate is the registry's ``auth.token.rootcertbundle``.
* :func:`libtrust_kid` computes the key ID distribution 2.8 expects in a token's JOSE
  ``kid`` header (docker/libtrust ``KeyID``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SigningAlgorithm = Literal["RS256", "ES256"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_VALIDITY = dt.timedelta(days=2)
#: A name for a loopback registry that resolves nowhere (``.test`` is reserved, RFC 2606):
#: only a proxy that maps it (squid's ``hosts_file``) reaches the registry by it.
PROXIED_NAME = "registry.regshift.test"


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """PEM files for a TLS registry: trust ``ca_file``, serve ``cert_file`` + ``key_file``."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class SigningMaterial:
    """A token-signing key, its self-signed certificate (PEM) and its libtrust key ID."""

    private_key: PrivateKey
    algorithm: SigningAlgorithm
    cert_file: Path
    key_file: Path
    kid: str


def libtrust_kid(public_key: PublicKey) -> str:
    """Return the libtrust fingerprint of ``public_key``, as distribution matches ``kid``.

    Base32 of the first 30 bytes of SHA-256 over the DER SubjectPublicKeyInfo, without
    padding, in 12 groups of 4 characters joined by ``:``.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def make_server_tls(directory: Path) -> ServerTLS:
    """Write ``ca.pem``, ``server.pem`` and ``server-key.pem`` into ``directory``.

    The server certificate is valid for ``127.0.0.1`` (IP SAN), ``localhost`` and
    :data:`PROXIED_NAME` (DNS SANs).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("regshift-test CA")
    now = _now()
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder(_name("127.0.0.1"), ca_name, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName(PROXIED_NAME),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = ServerTLS(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(_private_pem(server_key))
    return files


def make_token_signing(directory: Path, algorithm: SigningAlgorithm = "RS256") -> SigningMaterial:
    """Write ``token-signing.pem`` (self-signed cert) and ``token-signing-key.pem``.

    ``RS256`` uses a 2048-bit RSA key, ``ES256`` a P-256 key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key: PrivateKey
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}")
    name = _name("regshift-test token signer")
    cert = (
        _builder(name, name, key.public_key(), _now())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "token-signing.pem"
    key_file = directory / "token-signing-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_private_pem(key))
    return SigningMaterial(
        private_key=key,
        algorithm=algorithm,
        cert_file=cert_file,
        key_file=key_file,
        kid=libtrust_kid(key.public_key()),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regshift tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: PublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
    )


def _private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
