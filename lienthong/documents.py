"""The official document, after the edXML standard (QCVN 102:2016/BTTTT)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lienthong.agencies import AgencyCode, check_agency_code


class Priority(IntEnum):
    NORMAL = 0
    URGENT = 1
    VERY_URGENT = 2
    EXPRESS = 3
    EXPRESS_AT_SET_TIME = 4


class SteeringType(IntEnum):
    NOT_STEERING = 1
    STEERING = 2
    REPORT_ON_STEERING = 3


class BusinessType(IntEnum):
    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True)


class Code(_Part):
    """Code number and notation (Code: CodeNumber, CodeNotation), e.g. 7816 / VPCP-TTĐT."""

    number: str = Field(min_length=1)
    notation: str = Field(min_length=1)


class Promulgation(_Part):
    """Place and date of promulgation (PromulgationInfo)."""

    place: str
    date: dt.date


class DocumentType(_Part):
    """DocumentType: Type, TypeDetail, TypeName."""

    type: int = Field(ge=0)
    type_detail: int = Field(ge=0)
    type_name: str


class Signer(_Part):
    """SignerInfo: Competence, Position, FullName."""

    competence: str
    position: str
    full_name: str


class ResponseFor(_Part):
    """The document this one answers (ResponseFor)."""

    sender: AgencyCode
    code: str
    promulgation_date: dt.date
    document_id: str


class Business(_Part):
    """Business type (Bussiness): new, revoke, update or replace, with a reason and the recipients affected."""

    type: BusinessType = BusinessType.NEW
    reason: str | None = None
    affected_recipients: tuple[AgencyCode, ...] = ()


class Attachment(_Part):
    """One attachment (Manifest/Attachment) with its SHA-256."""

    name: str = Field(min_length=1)
    content_type: str = "application/octet-stream"
    description: str = ""
    sha256: bytes = Field(min_length=32, max_length=32)
    data: bytes

    @classmethod
    def of(cls, name: str, data: bytes, content_type: str = "application/octet-stream",
           description: str = "") -> Attachment:
        return cls(name=name, content_type=content_type, description=description,
                   sha256=hashlib.sha256(data).digest(), data=data)

    @model_validator(mode="after")
    def _digest_matches(self) -> Attachment:
        if hashlib.sha256(self.data).digest() != self.sha256:
            raise ValueError(f"attachment {self.name!r}: SHA-256 does not match its bytes")
        return self


# The patterns `datetime.strptime` uses for %Y/%m/%d: the same strings are accepted (a month or day of one digit, a
# space before a one-digit day), without its per-call locale lookup and regex cache, which cost 15-20 µs a call.
# Every document the router and the receivers read has its id checked (tests/unit/test_slash_date.py).
_SLASH_DATE = re.compile(r"(\d\d\d\d)/(1[0-2]|0[1-9]|[1-9])/(3[01]|[12]\d|0[1-9]|[1-9]| [1-9])", re.IGNORECASE)


def slash_date(text: str) -> dt.date:
    """The date of a `yyyy/MM/dd` string, as `datetime.strptime(text, "%Y/%m/%d")` reads it; ValueError otherwise."""
    match = _SLASH_DATE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a date of the form yyyy/MM/dd")
    return dt.date(int(match[1]), int(match[2]), int(match[3]))


def make_document_id(sender: str, date: dt.date, code: Code) -> str:
    """DocumentId: `<sender code>,<yyyy/MM/dd>,<number>/<notation>`."""
    return f"{check_agency_code(sender)},{date:%Y/%m/%d},{code.number}/{code.notation}"


class OfficialDocument(_Part):
    """An official document's header fields and attachments."""

    document_id: str
    code: Code
    promulgation: Promulgation
    document_type: DocumentType
    subject: str = Field(min_length=1)
    content: str = ""
    signer: Signer
    due_date: dt.date | None = None
    priority: Priority = Priority.NORMAL
    steering_type: SteeringType = SteeringType.NOT_STEERING
    to_places: tuple[str, ...] = ()
    response_for: ResponseFor | None = None
    business: Business = Business()
    attachments: tuple[Attachment, ...] = ()

    @field_validator("document_id")
    @classmethod
    def _document_id_shape(cls, value: str) -> str:
        return check_document_id(value)


def check_document_id(value: str) -> str:
    """A DocumentId of the shape `<sender code>,<yyyy/MM/dd>,<number>/<notation>`; raises ValueError otherwise."""
    parts = value.split(",")
    if len(parts) != 3 or "/" not in parts[2]:
        raise ValueError(
            f"document id {value!r} must read <sender code>,<yyyy/MM/dd>,<number>/<notation>"
        )
    check_agency_code(parts[0])
    try:
        slash_date(parts[1])
    except ValueError as exc:
        raise ValueError(f"document id {value!r}: date must be yyyy/MM/dd") from exc
    return value


class ConfidentialAlgorithm(StrEnum):
    """How a confidential document is encrypted; the names are the Avro enum symbols."""

    # Content: AES-256-GCM under a random 256-bit key. The key, per recipient: HPKE (RFC 9180) base mode with
    # DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM.
    HPKE_X25519_SHA256_AES256GCM = "HPKE_X25519_SHA256_AES256GCM"


class WrappedKey(_Part):
    """A confidential document's content key, wrapped for one recipient's encryption certificate."""

    agency: AgencyCode
    certificate_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    ephemeral_key: bytes = Field(min_length=32, max_length=32, description="HPKE enc: an X25519 public key")
    wrapped_key: bytes = Field(min_length=48, max_length=48, description="HPKE ciphertext of the 32-byte key")


class ConfidentialDocument(_Part):
    """An official document encrypted for its recipients: only its id and who can open it are readable."""

    document_id: str
    algorithm: ConfidentialAlgorithm = ConfidentialAlgorithm.HPKE_X25519_SHA256_AES256GCM
    nonce: bytes = Field(min_length=12, max_length=12)
    ciphertext: bytes = Field(min_length=16)
    recipients: tuple[WrappedKey, ...] = Field(min_length=1)

    @field_validator("document_id")
    @classmethod
    def _document_id_shape(cls, value: str) -> str:
        return check_document_id(value)

    @model_validator(mode="after")
    def _one_key_per_agency(self) -> ConfidentialDocument:
        agencies = [w.agency for w in self.recipients]
        if len(set(agencies)) != len(agencies):
            raise ValueError("a confidential document wraps its key once per recipient agency")
        return self

    def wrapped_for(self, agency: str) -> WrappedKey | None:
        return next((w for w in self.recipients if w.agency == agency), None)
