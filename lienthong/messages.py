"""A message on the bus: the header the router reads and the payload only the parties need."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from lienthong.agencies import AgencyCode
from lienthong.ballots import Ballot, BallotAnswer
from lienthong.documents import BusinessType, ConfidentialDocument, OfficialDocument
from lienthong.dossiers import DossierStatusBatch
from lienthong.notices import StatusNotice
from lienthong.reports import Report


class MessageKind(StrEnum):
    DOCUMENT = "DOCUMENT"
    STATUS_NOTICE = "STATUS_NOTICE"
    REPORT = "REPORT"
    BALLOT = "BALLOT"
    BALLOT_ANSWER = "BALLOT_ANSWER"
    DOSSIER_STATUS = "DOSSIER_STATUS"


class MessageHeader(BaseModel):
    """Who sends what to whom, when; covered by the signature like the payload."""

    model_config = ConfigDict(frozen=True)

    message_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    kind: MessageKind
    sender: AgencyCode
    recipients: tuple[str, ...]
    root_id: str = Field(description="Document id of the root document: the record key, one partition per story")
    created_at: dt.datetime


# A confidential document travels under a DOCUMENT header; only its recipients can turn it into an OfficialDocument.
Payload = OfficialDocument | StatusNotice | ConfidentialDocument | Report | Ballot | BallotAnswer | DossierStatusBatch

# The payload types a header kind may carry.
PAYLOADS_OF_KIND: dict[MessageKind, tuple[type, ...]] = {
    MessageKind.DOCUMENT: (OfficialDocument, ConfidentialDocument),
    MessageKind.STATUS_NOTICE: (StatusNotice,),
    MessageKind.REPORT: (Report,),
    MessageKind.BALLOT: (Ballot,),
    MessageKind.BALLOT_ANSWER: (BallotAnswer,),
    MessageKind.DOSSIER_STATUS: (DossierStatusBatch,),
}


def kind_of(payload: Payload) -> MessageKind:
    return next(kind for kind, types in PAYLOADS_OF_KIND.items() if isinstance(payload, types))


def own_root_id(payload: Payload) -> str:
    """The root id a payload names itself: the record key of its story (a new document, a notice's document,
    a report, a ballot and its answers, a dossier batch). A revoke, update or replace names another document."""
    if isinstance(payload, (OfficialDocument, ConfidentialDocument, StatusNotice)):
        return payload.document_id
    if isinstance(payload, Report):
        return payload.report_id
    if isinstance(payload, (Ballot, BallotAnswer)):
        return payload.ballot_id
    return payload.batch_id


class Message(BaseModel):
    """Header and payload: what the sender signs."""

    model_config = ConfigDict(frozen=True)

    header: MessageHeader
    payload: Payload


def utc_now() -> dt.datetime:
    # Millisecond precision: what timestamp-millis carries, so a round trip is exact.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def is_lifecycle_request(message: Message) -> bool:
    """A document that acts on another one (revoke, update, replace) names that document as its root."""
    payload = message.payload
    return (isinstance(payload, (OfficialDocument, ConfidentialDocument))
            and message.header.root_id != payload.document_id)


def asks_agreement(message: Message) -> bool:
    """A revoke or update asks each recipient to agree (status 13, answered by 15 or 16); so does a confidential
    lifecycle request of any type, whose type only its recipients can read. The router and the receivers apply
    this one rule (the receiver to the message as signed, before it decrypts it)."""
    payload = message.payload
    return is_lifecycle_request(message) and not (
        isinstance(payload, OfficialDocument) and payload.business.type == BusinessType.REPLACE)
