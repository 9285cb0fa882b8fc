"""Directory entries as they travel on the directory topic."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from lienthong.agencies import Agency, AgencyKind


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


class CertificateEntry(_Entry):
    fingerprint: str
    agency: str
    der: bytes
    revoked_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        return f"certificate:{self.fingerprint}"

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


DirectoryEntry = AgencyEntry | GroupEntry | CertificateEntry
