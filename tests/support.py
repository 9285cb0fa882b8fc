"""Test material: a bus CA, agencies with keys, a directory view, and messages to send; no network."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization

from lienthong.agencies import Agency, AgencyKind
from lienthong.certificates import BusCA, fingerprint, generate_key
from lienthong.codec import SingleObjectCodec
from lienthong.directory.entries import AgencyEntry, CertificateEntry
from lienthong.directory.view import DirectoryView
from lienthong.documents import Attachment, OfficialDocument
from lienthong.envelope import EnvelopeCodec
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.notices import StatusCode, StatusNotice
from lienthong.schemas import SchemaSet
from lienthong.signing import Signer
from producers.builder import new_document

OFFICE = "000.00.00.G22"
MINISTRY_A = "000.00.00.G06"
MINISTRY_B = "000.00.00.G09"
PROVINCE = "000.00.00.H29"
PARTY = "000.00.00.A01"

AGENCIES = {
    OFFICE: ("Văn phòng Chính phủ", AgencyKind.GOVERNMENT),
    MINISTRY_A: ("Bộ Tài chính", AgencyKind.MINISTRY),
    MINISTRY_B: ("Bộ Nội vụ", AgencyKind.MINISTRY),
    PROVINCE: ("Ủy ban nhân dân thành phố Hà Nội", AgencyKind.PROVINCE),
    PARTY: ("Văn phòng Trung ương Đảng", AgencyKind.PARTY),
}

_SCHEMAS = SchemaSet()


def envelopes() -> EnvelopeCodec:
    return EnvelopeCodec(SingleObjectCodec(_SCHEMAS))


@dataclass
class Pki:
    """A CA and one signer per agency."""

    ca: BusCA = field(default_factory=BusCA.create)
    signers: dict[str, Signer] = field(default_factory=dict)

    def signer(self, code: str, *, key_type: str = "ecdsa-p256", not_before: dt.datetime | None = None,
               not_after: dt.datetime | None = None, rsa_pss: bool = False) -> Signer:
        key = generate_key(key_type)
        name = AGENCIES.get(code, ("Cơ quan thử nghiệm", AgencyKind.OTHER))[0]
        cert = self.ca.issue(code, name, key.public_key(), not_before=not_before, not_after=not_after)
        return Signer(key, cert, rsa_pss=rsa_pss)

    def entries(self, signers: dict[str, Signer]) -> list[AgencyEntry | CertificateEntry]:
        out: list[AgencyEntry | CertificateEntry] = []
        for code, signer in signers.items():
            name, kind = AGENCIES.get(code, ("Cơ quan thử nghiệm", AgencyKind.OTHER))
            out.append(AgencyEntry(code=code, name=name, kind=kind))
            out.append(CertificateEntry(fingerprint=fingerprint(signer.certificate), agency=code,
                                        der=signer.certificate.public_bytes(serialization.Encoding.DER)))
        return out


def make_pki() -> tuple[Pki, DirectoryView]:
    pki = Pki()
    pki.signers = {code: pki.signer(code) for code in AGENCIES}
    view = DirectoryView(pki.ca.certificate)
    for entry in pki.entries(pki.signers):
        view.apply(entry)
    return pki, view


def document(sender: str = OFFICE, number: str = "7816", subject: str = "Về việc thử nghiệm trục liên thông",
             attachments: tuple[Attachment, ...] = ()) -> OfficialDocument:
    return new_document(sender, number=number, notation="VPCP-TTĐT", subject=subject, attachments=attachments,
                        date=dt.date(2026, 11, 26))


def document_message(sender: str = OFFICE, recipients: tuple[str, ...] = ("group:ministries",),
                     doc: OfficialDocument | None = None, created_at: dt.datetime | None = None) -> Message:
    doc = doc or document(sender)
    header = MessageHeader(kind=MessageKind.DOCUMENT, sender=sender, recipients=recipients,
                           root_id=doc.document_id, created_at=created_at or utc_now())
    return Message(header=header, payload=doc)


def notice_message(sender: str, to: str, about: Message, status: StatusCode = StatusCode.ACCEPTED,
                   reason: str | None = None) -> Message:
    notice = StatusNotice(document_id=about.header.root_id, document_message_id=about.header.message_id,
                          document_digest=b"\x01" * 32, status=status, reason=reason, time=utc_now())
    header = MessageHeader(kind=MessageKind.STATUS_NOTICE, sender=sender, recipients=(to,),
                           root_id=about.header.root_id, created_at=utc_now())
    return Message(header=header, payload=notice)


def agency(code: str) -> Agency:
    name, kind = AGENCIES[code]
    return Agency(code=code, name=name, kind=kind)
