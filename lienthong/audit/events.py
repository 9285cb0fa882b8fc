"""One step of one message through the bus, as the router records it."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AuditEventType(StrEnum):
    SUBMITTED = "SUBMITTED"
    ROUTED = "ROUTED"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    STATUS = "STATUS"


class AuditEvent(BaseModel):
    """An audit event; event_id is derived from the ingress position, so a replay gives the same id."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="hex")

    event_id: str
    event: AuditEventType
    at: dt.datetime
    message_id: str | None = None
    root_id: str | None = None
    kind: str | None = None
    sender: str | None = None
    recipient: str | None = None
    status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    content_sha256: bytes | None = None
    envelope: bytes | None = None  # the signed message as it arrived, on SUBMITTED events of accepted messages
