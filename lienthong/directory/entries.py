"""Directory entries as they travel on the directory topic."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from lienthong.agencies import Agency, AgencyKind
from lienthong.reports import Regime


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class AgencyEntry(_Entry):
    code: str
    name: str
    kind: AgencyKind

    @property
    def key(self) -> str:
        return f"agency:{self.code}"

    def agency(self) -> Agency:
        return Agency(code=self.code, name=self.name, kind=self.kind)


class GroupEntry(_Entry):
    name: str
    members: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"group:{self.name}"


class CertificateUsage(StrEnum):
    """What a certificate in the directory is for; the names are the Avro enum symbols."""

    SIGNING = "SIGNING"  # verifies the agency's signatures
    ENCRYPTION = "ENCRYPTION"  # confidential documents are encrypted to its key


def usage_of(cert: x509.Certificate) -> CertificateUsage:
    """ENCRYPTION for a certificate whose KeyUsage allows key agreement only; SIGNING for any other."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return CertificateUsage.SIGNING
    if usage.key_agreement and not usage.digital_signature:
        return CertificateUsage.ENCRYPTION
    return CertificateUsage.SIGNING


class CertificateEntry(_Entry):
    fingerprint: str
    agency: str
    der: bytes
    revoked_at: dt.datetime | None = None
    usage: CertificateUsage = CertificateUsage.SIGNING  # entries from before DirectoryEntry v2 are signing ones

    @property
    def key(self) -> str:
        return f"certificate:{self.fingerprint}"

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


class RegimeEntry(_Entry):
    """A reporting regime (since DirectoryEntry v3): routers check reports against it."""

    regime: Regime

    @property
    def key(self) -> str:
        return f"regime:{self.regime.code}"


DirectoryEntry = AgencyEntry | GroupEntry | CertificateEntry | RegimeEntry
