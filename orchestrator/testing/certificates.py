"""A throwaway certificate authority for the project's own TLS test brokers.

Its one job: at test time, write a fresh CA, one broker certificate and any number of client
certificates as PEM files, so that the broker and librdkafka can speak mutual TLS on loopback with
nothing checked in and nothing shared between runs. The broker certificate names ``127.0.0.1``
and ``localhost`` (librdkafka verifies the broker's host name by default, and so does the broker's
own inter-broker client), and it may authenticate as a client too (the broker logs in to itself
over the same listener). A client's private key is encrypted with its password, as a deployment's
would be, so that a test can check the password is never shown.

What it never does: produce anything fit for production (keys live in a temporary directory, the
broker's own key is not encrypted, the CA signs whatever it is asked to), or run outside tests:
``cryptography`` is a development dependency only.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "Issued"]

_VALID = datetime.timedelta(days=2)
_SKEW = datetime.timedelta(hours=1)  # a clock slightly behind still accepts a fresh certificate


@dataclass(frozen=True, slots=True)
class Issued:
    """One identity's files: its certificate (PEM) and its private key (PEM, PKCS#8)."""

    name: str
    certificate: Path
    key: Path
    password: str | None
    """The key's password, or None if the key is stored unencrypted (the broker's)."""

    @property
    def keystore(self) -> Path:
        """Key and certificate chain in one file: the broker's ``ssl.keystore.type=PEM``."""
        return self.key.with_suffix(".keystore.pem")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ksaga tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class CertificateAuthority:
    """A CA whose key lives only in this object; :meth:`issue` writes certificates it signs."""

    def __init__(self, directory: Path, *, now: datetime.datetime | None = None) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._now = now or datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._subject = _name("ksaga test CA")
        self._certificate = (
            self._builder(self._subject, self._key.public_key())
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
            .sign(self._key, hashes.SHA256())
        )
        self.certificate = directory / "ca.pem"
        self.certificate.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - _SKEW)
            .not_valid_after(self._now + _VALID)
        )

    def issue(self, name: str, *, password: str | None = None, server: bool = False) -> Issued:
        """Write ``<name>.pem`` and ``<name>.key`` (and, for a server, its PEM keystore).

        ``name`` becomes the certificate's CN (the broker's principal is ``User:CN=name,...``).
        A ``server`` certificate names the loopback host and may also act as a client.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = self._builder(_name(name), key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(
            self._key, hashes.SHA256()
        )
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password is not None
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        chain = certificate.public_bytes(
            serialization.Encoding.PEM
        ) + self._certificate.public_bytes(serialization.Encoding.PEM)
        issued = Issued(
            name, self.directory / f"{name}.pem", self.directory / f"{name}.key", password
        )
        issued.certificate.write_bytes(chain)
        issued.key.write_bytes(key_pem)
        issued.key.chmod(0o600)
        if server:
            issued.keystore.write_bytes(key_pem + chain)
            issued.keystore.chmod(0o600)
        return issued
