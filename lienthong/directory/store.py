"""The operator's directory in SQL: agencies, groups, certificates and reporting regimes, the source of the
directory topic."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from lienthong.agencies import GROUP_PREFIX, KIND_GROUPS, Agency, AgencyKind, check_agency_code, is_group_address
from lienthong.certificates import agency_of, fingerprint
from lienthong.db import as_utc, make_engine
from lienthong.directory.entries import (
    AgencyEntry,
    CertificateEntry,
    DirectoryEntry,
    GroupEntry,
    RegimeEntry,
    usage_of,
)
from lienthong.errors import NotFoundError, ValidationError
from lienthong.reports import Regime

metadata = MetaData()

agencies = Table(
    "agencies", metadata,
    Column("code", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
groups = Table(
    "agency_groups", metadata,
    Column("name", String(64), primary_key=True),
)
group_members = Table(
    "agency_group_members", metadata,
    Column("group_name", String(64), ForeignKey("agency_groups.name"), primary_key=True),
    Column("agency", String(16), ForeignKey("agencies.code"), primary_key=True),
)
certificates = Table(
    "certificates", metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("agency", String(16), ForeignKey("agencies.code"), nullable=False, index=True),
    Column("pem", Text, nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
# A regime is kept whole, as the JSON of the model: it is read and published as one value, never queried by part.
regimes = Table(
    "regimes", metadata,
    Column("code", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class DirectoryStore:
    """CRUD over the directory tables; the operator's side of the directory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def add_agency(self, agency: Agency) -> bool:
        """Insert the agency, or update its name and kind; True if it is new."""
        with self.engine.begin() as conn:
            exists = conn.execute(select(agencies.c.code).where(agencies.c.code == agency.code)).first()
            if exists:
                conn.execute(update(agencies).where(agencies.c.code == agency.code)
                             .values(name=agency.name, kind=agency.kind.value))
                return False
            conn.execute(insert(agencies).values(code=agency.code, name=agency.name, kind=agency.kind.value,
                                                 created_at=dt.datetime.now(dt.UTC)))
            return True

    def agency(self, code: str) -> Agency:
        check_agency_code(code)
        with self.engine.connect() as conn:
            row = conn.execute(select(agencies).where(agencies.c.code == code)).first()
        if row is None:
            raise NotFoundError(f"agency {code} is not in the directory; add it with `lienthong agency add`")
        return Agency(code=row.code, name=row.name, kind=AgencyKind(row.kind))

    def agencies(self) -> list[Agency]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(agencies).order_by(agencies.c.code)).all()
        return [Agency(code=r.code, name=r.name, kind=AgencyKind(r.kind)) for r in rows]

    def add_certificate(self, cert: x509.Certificate) -> CertificateEntry:
        code = agency_of(cert)
        self.agency(code)
        fp = fingerprint(cert)
        with self.engine.begin() as conn:
            if conn.execute(select(certificates.c.fingerprint).where(certificates.c.fingerprint == fp)).first() is None:
                conn.execute(insert(certificates).values(
                    fingerprint=fp, agency=code, pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc))
        return CertificateEntry(fingerprint=fp, agency=code, der=cert.public_bytes(serialization.Encoding.DER),
                                usage=usage_of(cert))

    def certificates(self) -> dict[str, x509.Certificate]:
        """Every certificate the directory ever held, by fingerprint (old ones verify old messages)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(certificates.c.fingerprint, certificates.c.pem)).all()
        return {r.fingerprint: x509.load_pem_x509_certificate(r.pem.encode()) for r in rows}

    def set_group(self, name: str, members: list[str]) -> GroupEntry:
        for code in members:
            self.agency(code)
        if not name or not name.replace("-", "").isalnum() or name != name.lower():
            raise ValidationError(f"group name {name!r}: use lowercase letters, digits and '-'")
        with self.engine.begin() as conn:
            if conn.execute(select(groups.c.name).where(groups.c.name == name)).first() is None:
                conn.execute(insert(groups).values(name=name))
            conn.execute(group_members.delete().where(group_members.c.group_name == name))
            if members:
                conn.execute(insert(group_members), [{"group_name": name, "agency": m} for m in members])
        return GroupEntry(name=name, members=tuple(members))

    def set_regime(self, regime: Regime) -> bool:
        """Insert or replace a reporting regime; True if it is new. Its agencies and groups must exist."""
        self.agency(regime.receiving)
        for address in regime.reporting:
            if is_group_address(address):
                name = address[len(GROUP_PREFIX):]
                with self.engine.connect() as conn:
                    known = conn.execute(select(groups.c.name).where(groups.c.name == name)).first() is not None
                if not known and name not in KIND_GROUPS:
                    raise NotFoundError(f"regime {regime.code}: group {address} is not in the directory")
            else:
                self.agency(address)
        body = regime.model_dump_json()
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            if conn.execute(select(regimes.c.code).where(regimes.c.code == regime.code)).first() is None:
                conn.execute(insert(regimes).values(code=regime.code, body=body, updated_at=now))
                return True
            conn.execute(update(regimes).where(regimes.c.code == regime.code).values(body=body, updated_at=now))
            return False

    def regimes(self) -> list[Regime]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(regimes.c.body).order_by(regimes.c.code)).all()
        return [Regime.model_validate_json(r.body) for r in rows]

    def entries(self) -> list[DirectoryEntry]:
        """Everything the directory topic should hold, agencies first, regimes last (they name the others)."""
        out: list[DirectoryEntry] = [AgencyEntry(code=a.code, name=a.name, kind=a.kind) for a in self.agencies()]
        with self.engine.connect() as conn:
            for row in conn.execute(select(certificates).order_by(certificates.c.agency)).all():
                cert = x509.load_pem_x509_certificate(row.pem.encode())
                # The usage is read from the certificate's own KeyUsage, so no column can disagree with it.
                out.append(CertificateEntry(fingerprint=row.fingerprint, agency=row.agency,
                                            der=cert.public_bytes(serialization.Encoding.DER),
                                            revoked_at=as_utc(row.revoked_at), usage=usage_of(cert)))
            members: dict[str, list[str]] = {}
            for row in conn.execute(select(group_members).order_by(group_members.c.agency)).all():
                members.setdefault(row.group_name, []).append(row.agency)
            for row in conn.execute(select(groups).order_by(groups.c.name)).all():
                out.append(GroupEntry(name=row.name, members=tuple(members.get(row.name, []))))
        out.extend(RegimeEntry(regime=r) for r in self.regimes())
        return out

    def close(self) -> None:
        self.engine.dispose()
