"""A document's story per recipient, built from its audit events: who received, accepted, rejected, was asked to
agree to a revoke or update and answered, or is silent — and each recipient's current state of the document."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.messages import MessageKind
from lienthong.notices import ANSWERS, StatusCode, replay, stored_status

DELIVERED = ""  # the state of a recipient a document was (again) delivered to, who has not answered since

# States in which the story waits for the recipient: to answer a delivery (02/03), or a request (15/16).
_WAITING = frozenset({DELIVERED, StatusCode.ARRIVED.value, StatusCode.RECALL_REQUESTED.value})


def state_label(state: str) -> str:
    """'delivered' or the status with its name, e.g. '13 recall/update requested'."""
    return "delivered" if state == DELIVERED else f"{state} {StatusCode(state).label}"


@dataclass
class StatusStep:
    status: StatusCode
    at: dt.datetime
    reason: str | None


@dataclass
class StoryEntry:
    """One change of a recipient's state: a delivery (state DELIVERED) or a status, with when and why."""

    state: str
    at: dt.datetime
    reason: str | None = None
    message_id: str | None = None

    @property
    def label(self) -> str:
        return state_label(self.state)


@dataclass
class RecipientTimeline:
    recipient: str
    delivered_at: dt.datetime | None = None  # the first delivery
    steps: list[StatusStep] = field(default_factory=list)  # every status, its own and the sender's 13
    history: list[StoryEntry] = field(default_factory=list)  # deliveries and statuses, in order

    @property
    def latest(self) -> StatusStep | None:
        return self.steps[-1] if self.steps else None

    @property
    def answered(self) -> bool:
        return any(step.status in ANSWERS for step in self.steps)

    @property
    def state(self) -> str:
        """The current state, by the router's rules: a delivery of any message of the story (the document, a new
        delivery of it, a replacement, a revoke or update) sets DELIVERED; a revoke or update sets 13; each status
        the recipient sends sets its code, but a 16 returns to the state its 13 interrupted (the document stays in
        force and its handling goes on)."""
        now = replay(stored_status(e.state) for e in self.history)
        return now.value if now is not None else DELIVERED

    @property
    def state_at(self) -> dt.datetime | None:
        return self.history[-1].at if self.history else None

    @property
    def waiting(self) -> bool:
        """The story waits for this recipient: to answer the document (02, 03) or a request (15, 16)."""
        return self.state in _WAITING


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
        return [r.recipient for r in self.recipients.values() if r.waiting]

    @property
    def states(self) -> dict[str, str]:
        """Each recipient's current state: DELIVERED ('') or a two-digit status."""
        return {code: r.state for code, r in self.recipients.items()}


def build_timeline(root_id: str, events: Iterable[AuditEvent]) -> Timeline:
    """Fold the audit events of one story (its root document, the revokes, updates and replacements of it, and the
    notices about it) into a timeline; events in the order they were recorded."""
    timeline = Timeline(root_id)
    first_refused = False  # the submission shown as "the document" was refused: a later accepted one replaces it

    def of(code: str) -> RecipientTimeline:
        return timeline.recipients.setdefault(code, RecipientTimeline(code))

    for event in events:
        if event.kind == MessageKind.DOCUMENT.value:
            if event.event == AuditEventType.SUBMITTED and (timeline.submitted_at is None or first_refused):
                timeline.submitted_at, timeline.sender, timeline.message_id = event.at, event.sender, event.message_id
                first_refused = False
            elif event.event == AuditEventType.ROUTED and timeline.routed_at is None:
                timeline.routed_at = event.at
            elif event.event == AuditEventType.DELIVERED and event.recipient:
                who = of(event.recipient)
                who.delivered_at = who.delivered_at or event.at
                who.history.append(StoryEntry(DELIVERED, event.at, message_id=event.message_id))
        if event.event == AuditEventType.REJECTED:
            timeline.rejections.append(event)
            if event.message_id is not None and event.message_id == timeline.message_id and timeline.routed_at is None:
                first_refused = True
        elif event.event == AuditEventType.STATUS and event.status:
            try:
                status = StatusCode(event.status)
            except ValueError:
                continue
            # 13 is the document's sender asking a recipient; every other status is a recipient's own notice.
            code = event.recipient if status == StatusCode.RECALL_REQUESTED else event.sender
            if not code:
                continue
            who = of(code)
            who.steps.append(StatusStep(status, event.at, event.reason))
            last = who.history[-1] if who.history else None
            if last and last.state == DELIVERED and last.message_id == event.message_id and event.message_id:
                who.history.pop()  # a revoke or update is delivered as its request: one step, 13
            who.history.append(StoryEntry(status.value, event.at, event.reason, event.message_id))
    return timeline
