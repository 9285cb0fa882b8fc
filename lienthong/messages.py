"""A message on the bus: the header the router reads and the payload only the parties need."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from lienthong.agencies import AgencyCode
from lienthong.documents import ConfidentialDocument, OfficialDocument
from lienthong.notices import StatusNotice


class MessageKind(StrEnum):
    DOCUMENT = "DOCUMENT"
    STATUS_NOTICE = "STATUS_NOTICE"


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
Payload = OfficialDocument | StatusNotice | ConfidentialDocument


class Message(BaseModel):
    """Header and payload: what the sender signs."""

    model_config = ConfigDict(frozen=True)

    header: MessageHeader
    payload: Payload


def utc_now() -> dt.datetime:
    # Millisecond precision: what timestamp-millis carries, so a round trip is exact.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
