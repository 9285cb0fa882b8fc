"""The auditor's answers as pydantic models: what the HTTP API serves as JSON and the auditor's page shows."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from lienthong.audit.chain import Problem, Report
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.queries import AgencyFigures, Overdue
from lienthong.audit.timeline import RecipientTimeline, Timeline
from lienthong.notices import StatusCode

WAITING = "waiting"


class StatusStepView(BaseModel):
    status: str = Field(description="Two-digit status code of the axis", examples=["03"])
    label: str = Field(description="What the status means", examples=["accepted"])
    at: dt.datetime
    reason: str | None = Field(None, description="The reason the recipient gave (rejections carry one)")


class RecipientView(BaseModel):
    recipient: str = Field(description="Agency code", examples=["000.00.00.G06"])
    name: str | None = Field(None, description="Agency name from the directory", examples=["Bộ Tài chính"])
    delivered_at: dt.datetime | None = Field(description="When the bus put the document in its inbox")
    steps: list[StatusStepView] = Field(description="Every status notice it sent about the document, in order")
    answered: bool = Field(description="It has accepted, rejected or otherwise handled the document (not just 01)")
    state: str = Field(description=f"Its state of the document now, by the router's rules (as `lienthong audit show` "
                       f"gives it): '{WAITING}' while the story waits for it (to answer the document, or a revoke or "
                       "update request), else the label of its status (a refused recall, 16, returns it to the state "
                       "the request interrupted)", examples=["accepted", "rejected", WAITING])
    reason: str | None = Field(None, description="The latest reason it gave, if any")


class RejectionView(BaseModel):
    """A message of this document's story that the router refused."""

    at: dt.datetime
    message_id: str | None
    kind: str | None
    sender: str | None
    sender_name: str | None
    reason_code: str | None = Field(examples=["invalid-transition"])
    reason: str | None


class TimelineView(BaseModel):
    document_id: str
    sender: str | None
    sender_name: str | None
    message_id: str | None
    submitted_at: dt.datetime | None
    routed_at: dt.datetime | None
    recipients: list[RecipientView]
    rejections: list[RejectionView]
    waiting: list[str] = Field(description="Recipients that have not answered yet")


class EventView(BaseModel):
    event_id: str
    event: AuditEventType
    at: dt.datetime
    message_id: str | None
    root_id: str | None = Field(description="Document id the event belongs to")
    kind: str | None
    sender: str | None
    recipient: str | None
    status: str | None
    reason_code: str | None
    reason: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    content_sha256: str | None = Field(description="SHA-256 of the signed content, hex")


class EventsView(BaseModel):
    count: int
    limit: int
    truncated: bool = Field(description="More events match than `limit`; narrow the filter or page by `since`")
    events: list[EventView]


class OverdueView(BaseModel):
    document_id: str
    sender: str
    sender_name: str | None
    recipient: str
    recipient_name: str | None
    delivered_at: dt.datetime
    last_status: str | None = Field(description="Its latest status code, if it sent any", examples=["01"])
    last_status_label: str | None
    hours_waiting: float


class OverdueListView(BaseModel):
    hours: float = Field(description="The deadline: delivered more than this many hours ago")
    now: dt.datetime
    items: list[OverdueView]


class AgencyFiguresView(BaseModel):
    agency: str
    name: str | None
    sent: int = Field(description="Documents it sent")
    received: int = Field(description="Documents delivered to it")
    accepted: int = Field(description="Documents it accepted (03)")
    rejected: int = Field(description="Documents it rejected (02)")
    median_seconds_to_accept: float | None = Field(description="Median time from delivery to its 03")


class FiguresView(BaseModel):
    since: dt.datetime | None
    agencies: list[AgencyFiguresView]


class FindingView(BaseModel):
    problem: Problem
    seq: int = Field(description="The first broken row")
    detail: str


class ChainView(BaseModel):
    ok: bool
    rows: int = Field(description="Rows checked")
    checkpoints: int = Field(description="Signed checkpoints verified")
    last_seq: int
    last_checkpoint_seq: int = Field(description="The last row a signed checkpoint vouches for")
    uncovered: int = Field(description="Rows after the last signed checkpoint: chained, not yet signed for")
    findings: list[FindingView]
    checked_at: dt.datetime
    seconds: float = Field(description="How long the check took")


class ErrorView(BaseModel):
    reason: str = Field(examples=["not-found"])
    detail: str


def _label(code: str | None) -> str | None:
    try:
        return StatusCode(code).label if code else None
    except ValueError:
        return None


def recipient_view(r: RecipientTimeline, names: dict[str, str]) -> RecipientView:
    # The timeline's own state, the one `audit show` prints and the waiting list is made of: one rule, not two.
    return RecipientView(
        recipient=r.recipient, name=names.get(r.recipient), delivered_at=r.delivered_at,
        steps=[StatusStepView(status=s.status.value, label=s.status.label, at=s.at, reason=s.reason) for s in r.steps],
        answered=r.answered, state=WAITING if r.waiting else StatusCode(r.state).label,
        reason=next((s.reason for s in reversed(r.steps) if s.reason), None))


def timeline_view(timeline: Timeline, names: dict[str, str]) -> TimelineView:
    return TimelineView(
        document_id=timeline.root_id, sender=timeline.sender, sender_name=names.get(timeline.sender or ""),
        message_id=timeline.message_id, submitted_at=timeline.submitted_at, routed_at=timeline.routed_at,
        recipients=[recipient_view(r, names) for r in timeline.recipients.values()],
        rejections=[RejectionView(at=e.at, message_id=e.message_id, kind=e.kind, sender=e.sender,
                                  sender_name=names.get(e.sender or ""), reason_code=e.reason_code, reason=e.reason)
                    for e in timeline.rejections],
        waiting=timeline.waiting)


def event_view(e: AuditEvent) -> EventView:
    return EventView(**e.model_dump(exclude={"envelope", "content_sha256"}),
                     content_sha256=e.content_sha256.hex() if e.content_sha256 else None)


def overdue_view(items: list[Overdue], hours: float, now: dt.datetime, names: dict[str, str]) -> OverdueListView:
    return OverdueListView(hours=hours, now=now, items=[
        OverdueView(document_id=o.document_id, sender=o.sender, sender_name=names.get(o.sender),
                    recipient=o.recipient, recipient_name=names.get(o.recipient), delivered_at=o.delivered_at,
                    last_status=o.last_status, last_status_label=_label(o.last_status), hours_waiting=o.hours_waiting)
        for o in items])


def figures_view(figures: list[AgencyFigures], since: dt.datetime | None, names: dict[str, str]) -> FiguresView:
    return FiguresView(since=since, agencies=[
        AgencyFiguresView(agency=f.agency, name=names.get(f.agency), sent=f.sent, received=f.received,
                          accepted=f.accepted, rejected=f.rejected,
                          median_seconds_to_accept=f.median_seconds_to_accept)
        for f in figures])


def chain_view(report: Report, checked_at: dt.datetime, seconds: float) -> ChainView:
    return ChainView(ok=report.ok, rows=report.rows, checkpoints=report.checkpoints, last_seq=report.last_seq,
                     last_checkpoint_seq=report.last_checkpoint_seq, uncovered=report.uncovered,
                     findings=[FindingView(problem=f.problem, seq=f.seq, detail=f.detail) for f in report.findings],
                     checked_at=checked_at, seconds=round(seconds, 3))
