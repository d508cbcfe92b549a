"""The SuperLink's TLS: a certificate authority of the hub's own and a server certificate
it signs, made with ``cryptography``.

Nodes connect to the SuperLink over TLS (node authentication requires it) and trust only
this CA, whose PEM they get from ``GET /federated``. The server certificate names
127.0.0.1 and localhost and any host the operator gives, so a node reaching the hub by its
public name verifies it. Keys are written 0600, certificates 0644; files that exist are
reused (a new CA would orphan every node's copy), unless the hosts changed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from commonweal.ledger.files import private_directory, write_private

__all__ = ["Certificates", "ensure_certificates"]

_VALID = dt.timedelta(days=3650)


@dataclass(frozen=True)
class Certificates:
    """Paths of the CA certificate and the SuperLink's certificate and key."""

    ca: Path
    cert: Path
    key: Path


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in ["127.0.0.1", "localhost", *hosts]:
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        if name not in names:
            names.append(name)
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Commonweal hub CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
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
        .sign(key, hashes.SHA384())
    )
    write_private(directory / "ca.key", _key_pem(key))
    _write_public(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not an EC key; move the CA files away")
    return cert, key


def _server_names(path: Path) -> list[x509.GeneralName] | None:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (FileNotFoundError, ValueError, x509.ExtensionNotFound):
        return None


def ensure_certificates(directory: Path, hosts: list[str] | None = None) -> Certificates:
    """The CA and SuperLink certificate under ``directory`` (0700), made if missing; the
    server certificate is made again (by the same CA) when ``hosts`` add a name it lacks."""
    private_directory(directory)
    out = Certificates(
        directory / "ca.pem", directory / "superlink.pem", directory / "superlink.key"
    )
    if out.ca.exists() and (directory / "ca.key").exists():
        ca_cert, ca_key = _load_ca(directory)
    else:
        ca_cert, ca_key = _make_ca(directory)
    names = _names(hosts or [])
    have = _server_names(out.cert)
    if have is not None and out.key.exists() and all(n in have for n in names):
        return out
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Commonweal SuperLink")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    write_private(out.key, _key_pem(key))
    _write_public(out.cert, cert.public_bytes(serialization.Encoding.PEM))
    return out
