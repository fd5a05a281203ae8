"""A throw-away certificate authority for playground mTLS: EC P-256 keys, leaf certificates with
SPIFFE URI SANs (`spiffe://meshlab.local/ns/default/sa/<identity>`), valid for hours, not years.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "meshlab.local"


def spiffe_id(identity: str, *, namespace: str = "default") -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{identity}"


def dns_name(identity: str) -> str:
    return f"{identity}.{TRUST_DOMAIN}"


@dataclass(frozen=True, slots=True)
class CertFiles:
    """PEM files of one workload identity: its chain, its key, and the CA that signed it."""

    identity: str
    cert: Path
    key: Path
    ca: Path
    bundle: Path        # cert + key in one file (haproxy's `crt`)

    @property
    def uri(self) -> str:
        return spiffe_id(self.identity)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_secret(path: Path, data: bytes) -> None:
    """Write a key file that is 0600 from its first byte (no window in which others read it);
    an existing file is replaced, not reopened with its old mode."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        out.write(data)


class CertificateAuthority:
    """A CA generated at start-up; `issue(identity)` writes that identity's files."""

    def __init__(self, directory: Path, *, validity_h: float = 12.0) -> None:
        self.directory = directory
        self.validity = dt.timedelta(hours=validity_h)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshlab playground"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "meshlab playground CA")])
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + self.validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._issued: dict[str, CertFiles] = {}

    def issue(self, identity: str) -> CertFiles:
        """Files for `identity` (issued once, then reused)."""
        if identity in self._issued:
            return self._issued[identity]
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                        "meshlab playground")]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + self.validity)
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier(spiffe_id(identity)),
                x509.DNSName(dns_name(identity))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _pem_key(key)
        files = CertFiles(identity=identity, cert=self.directory / f"{identity}.pem",
                          key=self.directory / f"{identity}.key", ca=self.ca_path,
                          bundle=self.directory / f"{identity}.bundle.pem")
        files.cert.write_bytes(cert_pem)
        _write_secret(files.key, key_pem)
        _write_secret(files.bundle, cert_pem + key_pem)
        self._issued[identity] = files
        return files
