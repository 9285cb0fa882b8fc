"""A document's story per recipient, built from its audit events: who received, accepted, rejected, or is silent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.messages import MessageKind
from lienthong.notices import ANSWERS, StatusCode


@dataclass
class StatusStep:
    status: StatusCode
    at: dt.datetime
    reason: str | None


@dataclass
class RecipientTimeline:
    recipient: str
    delivered_at: dt.datetime | None = None
    steps: list[StatusStep] = field(default_factory=list)

    @property
    def latest(self) -> StatusStep | None:
        return self.steps[-1] if self.steps else None

    @property
    def answered(self) -> bool:
        return any(step.status in ANSWERS for step in self.steps)


@dataclass
class Timeline:
    root_id: str
    sender: str | None = None
    message_id: str | None = None
    submitted_at: dt.datetime | None = None
    routed_at: dt.datetime | None = None
    recipients: dict[str, RecipientTimeline] = field(default_factory=dict)
    rejections: list[AuditEvent] = field(default_factory=list)

    @property
    def waiting(self) -> list[str]:
        return [r.recipient for r in self.recipients.values() if not r.answered]


def build_timeline(root_id: str, events: Iterable[AuditEvent]) -> Timeline:
    """Fold the audit events of one root document into a timeline (events in the order they were recorded)."""
    timeline = Timeline(root_id)
    for event in events:
        if event.kind == MessageKind.DOCUMENT.value:
            if event.event == AuditEventType.SUBMITTED and timeline.submitted_at is None:
                timeline.submitted_at, timeline.sender, timeline.message_id = event.at, event.sender, event.message_id
            elif event.event == AuditEventType.ROUTED:
                timeline.routed_at = event.at
            elif event.event == AuditEventType.DELIVERED and event.recipient:
                who = timeline.recipients.setdefault(event.recipient, RecipientTimeline(event.recipient))
                who.delivered_at = event.at
        if event.event == AuditEventType.REJECTED:
            timeline.rejections.append(event)
        elif event.event == AuditEventType.STATUS and event.sender and event.status:
            who = timeline.recipients.setdefault(event.sender, RecipientTimeline(event.sender))
            who.steps.append(StatusStep(StatusCode(event.status), event.at, event.reason))
    return timeline
