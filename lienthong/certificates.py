"""The bus CA and agency certificates: issue, store with safe permissions, check."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lienthong.errors import ConfigurationError, Reason, SignatureError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072", "ed25519")

# Transport (TLS) identities: separate keys and certificates from the signing ones, used only to authenticate a
# connection to the broker. The broker maps a subject CN=<name>,OU=transport,O=lienthong to the Kafka principal
# User:<name> (lienthong/transport/local_broker.py), so a name holds only characters that mapping rule accepts.
TLS_UNIT = "transport"
TLS_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
TLS_HOSTS = ("127.0.0.1", "localhost")


def generate_key(key_type: str = "ecdsa-p256") -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa-2048", "rsa-3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigurationError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def write_private_key(path: Path, key: PrivateKey | x25519.X25519PrivateKey) -> None:
    """Write a PEM private key readable by its owner only (0600), whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)


def load_pem_key(path: Path) -> object:
    """A PEM private key from a file, with one clear error for a missing or unreadable file."""
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigurationError(f"private key {path} does not exist") from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM private key") from exc


def read_private_key(path: Path) -> PrivateKey:
    key = load_pem_key(path)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ConfigurationError(f"{path}: key type {type(key).__name__} is not accepted on the bus")
    return key


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"certificate {path} does not exist") from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM certificate") from exc


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the DER: how envelopes name certificates."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def agency_of(cert: x509.Certificate) -> str:
    """The agency code a certificate was issued to (its subject UID)."""
    values = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    if not values:
        raise SignatureError("certificate names no agency (no subject UID)", reason=Reason.SENDER_MISMATCH)
    return str(values[0].value)


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass
class BusCA:
    """The bus's certificate authority: issues agency certificates, signs the directory."""

    key: PrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "lienthong bus CA", years: int = 10) -> BusCA:
        key = generate_key("ecdsa-p256")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, folder: Path) -> BusCA:
        return cls(read_private_key(folder / "ca.key.pem"), read_certificate(folder / "ca.cert.pem"))

    @classmethod
    def load_or_create(cls, folder: Path) -> BusCA:
        if (folder / "ca.key.pem").exists():
            return cls.load(folder)
        ca = cls.create()
        ca.save(folder)
        return ca

    def save(self, folder: Path) -> None:
        write_private_key(folder / "ca.key.pem", self.key)
        write_certificate(folder / "ca.cert.pem", self.certificate)

    def issue(self, agency_code: str, agency_name: str, public_key: PublicKey, *,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> x509.Certificate:
        """Issue a signing certificate to an agency: subject UID is its code, usage digital signature."""
        usage = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)
        return self._issue_to_agency(agency_code, agency_name, public_key, usage, not_before, not_after)

    def issue_encryption(self, agency_code: str, agency_name: str, public_key: x25519.X25519PublicKey, *,
                         not_before: dt.datetime | None = None,
                         not_after: dt.datetime | None = None) -> x509.Certificate:
        """Issue an encryption certificate to an agency: an X25519 key, usage key agreement only.

        Confidential documents are encrypted to it; it can sign nothing, so it can never stand in for the
        agency's signing certificate, and the signing certificate is never used to encrypt."""
        usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=True, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)
        return self._issue_to_agency(agency_code, agency_name, public_key, usage, not_before, not_after)

    def _issue_to_agency(self, agency_code: str, agency_name: str,
                         public_key: PublicKey | x25519.X25519PublicKey, usage: x509.KeyUsage,
                         not_before: dt.datetime | None, not_after: dt.datetime | None) -> x509.Certificate:
        """An agency certificate (subject UID = agency code) for one key usage, two years by default."""
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.USER_ID, agency_code),
                             x509.NameAttribute(NameOID.COMMON_NAME, agency_name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong")])
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.certificate.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=2 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self.key, _sign_hash(self.key))
        )

    def issue_tls(self, name: str, public_key: PublicKey, *, server: bool = False,
                  hosts: tuple[str, ...] = TLS_HOSTS, days: int = 365) -> x509.Certificate:
        """A TLS certificate from the bus CA: client authentication, and server authentication for `hosts` if server.

        Key usage digitalSignature only (ECDHE key exchange); no contentCommitment, and it is never published in the
        directory, so it cannot stand in for an agency's signing certificate.
        """
        now = dt.datetime.now(dt.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder().subject_name(tls_subject(name)).issuer_name(self.certificate.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if server:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return builder.sign(self.key, _sign_hash(self.key))


def check_certificate(cert: x509.Certificate, ca_certificate: x509.Certificate, at: dt.datetime) -> None:
    """Raise SignatureError unless cert was issued by the CA and is valid at `at`."""
    check_issuer(cert, ca_certificate)
    check_validity(cert, at)


def check_issuer(cert: x509.Certificate, ca_certificate: x509.Certificate) -> None:
    """Raise SignatureError unless the CA's signature on cert holds (the same answer every time: cacheable)."""
    try:
        cert.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignatureError("certificate was not issued by the bus CA",
                             reason=Reason.CERTIFICATE_NOT_VALID) from exc


def check_validity(cert: x509.Certificate, at: dt.datetime) -> None:
    """Raise SignatureError unless cert is within its validity window at `at` and made for signatures."""
    if at < cert.not_valid_before_utc:
        raise SignatureError(f"certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                             reason=Reason.CERTIFICATE_NOT_VALID)
    if at > cert.not_valid_after_utc:
        raise SignatureError(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                             reason=Reason.CERTIFICATE_NOT_VALID)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureError("certificate has no key usage extension", reason=Reason.CERTIFICATE_NOT_VALID) from None
    if not usage.digital_signature:
        raise SignatureError("certificate is not for digital signatures", reason=Reason.CERTIFICATE_NOT_VALID)


def check_encryption_certificate(cert: x509.Certificate, ca_certificate: x509.Certificate,
                                 at: dt.datetime) -> x25519.X25519PublicKey:
    """The X25519 key of an encryption certificate the bus CA issued, valid at `at` and for key agreement only;
    raise SignatureError otherwise."""
    try:
        cert.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignatureError("encryption certificate was not issued by the bus CA",
                             reason=Reason.CERTIFICATE_NOT_VALID) from exc
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise SignatureError(f"encryption certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                             f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", reason=Reason.CERTIFICATE_NOT_VALID)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureError("certificate has no key usage extension", reason=Reason.CERTIFICATE_NOT_VALID) from None
    if not usage.key_agreement or usage.digital_signature:
        raise SignatureError("certificate is not an encryption certificate (key agreement only)",
                             reason=Reason.CERTIFICATE_NOT_VALID)
    key = cert.public_key()
    if not isinstance(key, x25519.X25519PublicKey):
        raise SignatureError(f"encryption certificate holds a {type(key).__name__}; the bus encrypts to X25519 keys",
                             reason=Reason.CERTIFICATE_NOT_VALID)
    return key


def check_tls_name(name: str) -> str:
    """A transport identity's name: letters, digits, '.', '_' and '-' (the broker's principal name)."""
    if not name or set(name) - TLS_NAME_CHARACTERS or len(name) > 64:
        raise ConfigurationError(f"TLS identity name {name!r} may hold only letters, digits, '.', '_' and '-' "
                                 "(at most 64)")
    return name


def tls_subject(name: str) -> x509.Name:
    """CN=<name>,OU=transport,O=lienthong (written most significant first, as RFC 4514 strings read)."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, TLS_UNIT),
                      x509.NameAttribute(NameOID.COMMON_NAME, check_tls_name(name))])


@dataclass(frozen=True)
class TlsFiles:
    """One transport identity on disk: the CA certificate it trusts, its certificate, its key (0600)."""

    ca: Path
    certificate: Path
    key: Path

    @classmethod
    def at(cls, folder: Path, name: str) -> TlsFiles:
        """Where identity `name` lives in `folder` (<home>/tls): <name>.cert.pem, <name>.key.pem, ca.cert.pem."""
        check_tls_name(name)
        return cls(folder / "ca.cert.pem", folder / f"{name}.cert.pem", folder / f"{name}.key.pem")

    def exist(self) -> bool:
        return self.ca.exists() and self.certificate.exists() and self.key.exists()


def write_tls_identity(ca: BusCA, folder: Path, name: str, *, server: bool = False,
                       hosts: tuple[str, ...] = TLS_HOSTS) -> TlsFiles:
    """Issue transport identity `name` with a new ECDSA P-256 key into `folder`; returns its files."""
    files = TlsFiles.at(folder, name)
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_key(files.key, key)  # also creates the folder, mode 0700
    write_certificate(files.certificate, ca.issue_tls(name, key.public_key(), server=server, hosts=hosts))
    write_certificate(files.ca, ca.certificate)
    return files


def ensure_tls_identity(ca: BusCA, folder: Path, name: str, *, server: bool = False) -> tuple[TlsFiles, bool]:
    """The identity's files, issued first if they are missing; the flag says whether it was issued now."""
    files = TlsFiles.at(folder, name)
    if files.exist():
        return files, False
    return write_tls_identity(ca, folder, name, server=server), True
