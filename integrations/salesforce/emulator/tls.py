"""A local certificate authority and server certificate for the offline org.

Made once in a directory and reused: `ca.pem` (what clients trust),
`server.pem` and `server-key.pem` (what the server presents, for 127.0.0.1
and localhost). The CA's key stays beside them so that an expired server
certificate can be issued again under the same CA.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=365)
# Issue a new server certificate when the old one has less than this left.
RENEW_BEFORE = timedelta(days=7)


@dataclass(frozen=True)
class CertificatePaths:
    ca: Path
    ca_key: Path
    certificate: Path
    key: Path


def ensure_certificates(directory: Path) -> CertificatePaths:
    """Make the CA and server certificate in `directory` unless they exist.

    A server certificate that expires within RENEW_BEFORE is made again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertificatePaths(
        ca=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        certificate=directory / "server.pem",
        key=directory / "server-key.pem",
    )
    now = datetime.now(UTC)

    if not (paths.ca.exists() and paths.ca_key.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, now=now)
        _write_key(paths.ca_key, ca_key)
        paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths.certificate.unlink(missing_ok=True)
    else:
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(paths.ca.read_bytes())

    if _needs_server_certificate(paths, now=now):
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _server_certificate(server_key, ca_key, ca_cert, now=now)
        _write_key(paths.key, server_key)
        paths.certificate.write_bytes(
            server_cert.public_bytes(serialization.Encoding.PEM)
        )
    return paths


def _needs_server_certificate(paths: CertificatePaths, *, now: datetime) -> bool:
    if not (paths.certificate.exists() and paths.key.exists()):
        return True
    certificate = x509.load_pem_x509_certificate(paths.certificate.read_bytes())
    return certificate.not_valid_after_utc - now < RENEW_BEFORE


def _ca_certificate(key: ec.EllipticCurvePrivateKey, *, now: datetime):
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Trig offline org local CA")]
    )
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
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
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key,
    ca_cert: x509.Certificate,
    *,
    now: datetime,
):
    public_key = key.public_key()
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Private keys are readable by their owner only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
