"""An agency gateway's keys and certificates on disk: private keys mode 0600, never logged."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from lienthong.agencies import check_agency_code
from lienthong.certificates import (
    PrivateKey,
    read_certificate,
    read_private_key,
    write_certificate,
    write_private_key,
)
from lienthong.errors import NotFoundError
from lienthong.signing import Signer


class KeyStore:
    """`<folder>/<code>.key.pem` (0600) and `<code>.cert.pem` per agency."""

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
