"""An agency gateway's keys and certificates on disk: private keys mode 0600, never logged."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x25519

from lienthong.agencies import check_agency_code
from lienthong.certificates import (
    PrivateKey,
    load_pem_key,
    read_certificate,
    read_private_key,
    write_certificate,
    write_private_key,
)
from lienthong.confidential import RecipientKey
from lienthong.errors import ConfigurationError, NotFoundError
from lienthong.signing import Signer


def read_encryption_key(path: Path) -> x25519.X25519PrivateKey:
    """An X25519 private key (PEM, PKCS#8); any other key type is refused."""
    key = load_pem_key(path)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigurationError(f"{path}: an encryption key must be X25519, not {type(key).__name__}")
    return key


class KeyStore:
    """Per agency: its signing key `<folder>/<code>.key.pem` (0600) and certificate `<code>.cert.pem`, and its
    encryption key `<code>.enc.key.pem` (0600) and certificate `<code>.enc.cert.pem`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, code: str) -> tuple[Path, Path]:
        check_agency_code(code)
        return self.folder / f"{code}.key.pem", self.folder / f"{code}.cert.pem"

    def save(self, code: str, key: PrivateKey, cert: x509.Certificate) -> Path:
        key_path, cert_path = self._paths(code)
        write_private_key(key_path, key)
        write_certificate(cert_path, cert)
        return key_path

    def has(self, code: str) -> bool:
        key_path, cert_path = self._paths(code)
        return key_path.exists() and cert_path.exists()

    def signer(self, code: str) -> Signer:
        key_path, cert_path = self._paths(code)
        if not key_path.exists():
            raise NotFoundError(f"no private key for agency {code} in {self.folder}; "
                                "create one with `lienthong agency add`")
        return Signer(read_private_key(key_path), read_certificate(cert_path))

    def _encryption_paths(self, code: str) -> tuple[Path, Path]:
        check_agency_code(code)
        return self.folder / f"{code}.enc.key.pem", self.folder / f"{code}.enc.cert.pem"

    def save_encryption(self, code: str, key: x25519.X25519PrivateKey, cert: x509.Certificate) -> Path:
        key_path, cert_path = self._encryption_paths(code)
        write_private_key(key_path, key)
        write_certificate(cert_path, cert)
        return key_path

    def has_encryption(self, code: str) -> bool:
        key_path, cert_path = self._encryption_paths(code)
        return key_path.exists() and cert_path.exists()

    def encryption_certificate(self, code: str) -> x509.Certificate:
        return read_certificate(self._encryption_paths(code)[1])

    def recipient_key(self, code: str) -> RecipientKey:
        """The agency's encryption key: what opens confidential documents sent to it."""
        key_path, cert_path = self._encryption_paths(code)
        if not key_path.exists():
            raise NotFoundError(f"no encryption key for agency {code} in {self.folder}; "
                                "create one with `lienthong agency add` (it adds a missing one)")
        return RecipientKey(code, read_encryption_key(key_path), read_certificate(cert_path))
