"""Status notices: what a recipient says about a document it received, and which order makes sense."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lienthong.errors import Reason, ValidationError


class StatusCode(StrEnum):
    """The status codes of the axis, by their two-digit code."""

    ARRIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    COMPLETED = "06"
    RECALL_REQUESTED = "13"
    RECALL_AGREED = "15"
    RECALL_REFUSED = "16"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> StatusCode:
        """Accept '03', '3' or 'accepted'."""
        value = text.strip().lower()
        for code in cls:
            if value in (code.value, code.value.lstrip("0"), code.name.lower(), code.name.lower().replace("_", "-")):
                return code
        known = ", ".join(f"{c.value} {c.name.lower()}" for c in cls)
        raise ValidationError(f"unknown status {text!r}; known: {known}")


_LABELS = {
    StatusCode.ARRIVED: "arrived",
    StatusCode.REJECTED: "rejected",
    StatusCode.ACCEPTED: "accepted",
    StatusCode.ASSIGNED: "assigned",
    StatusCode.IN_PROGRESS: "in progress",
    StatusCode.COMPLETED: "completed",
    StatusCode.RECALL_REQUESTED: "recall/update requested",
    StatusCode.RECALL_AGREED: "recall/update agreed",
    StatusCode.RECALL_REFUSED: "recall/update refused",
}

# Statuses that count as the recipient having answered (beyond the automatic 01).
ANSWERS = frozenset({StatusCode.REJECTED, StatusCode.ACCEPTED, StatusCode.ASSIGNED,
                     StatusCode.IN_PROGRESS, StatusCode.COMPLETED})

_HANDLING = (StatusCode.ACCEPTED, StatusCode.ASSIGNED, StatusCode.IN_PROGRESS)


def check_transition(previous: StatusCode | None, new: StatusCode) -> None:
    """Raise if `new` cannot follow `previous` for one recipient of one document.

    Nothing follows 02 but a new delivery; 06 comes only after 03; 04 and 05 only after 03;
    15 and 16 answer a 13. `previous` is the state as `after` computes it: after a 16 it is the state the 13
    interrupted, so that handling goes on where it was.
    """
    def refuse(why: str) -> ValidationError:
        before = f"{previous.value} {previous.label}" if previous else "nothing"
        return ValidationError(f"status {new.value} {new.label} cannot follow {before}: {why}",
                               reason=Reason.INVALID_TRANSITION)

    if previous == StatusCode.REJECTED:
        raise refuse("a rejected document takes no further status until it is delivered again")
    if previous == StatusCode.COMPLETED and new != StatusCode.RECALL_REQUESTED:
        raise refuse("the document is already completed")
    if new == StatusCode.ARRIVED and previous is not None:
        raise refuse("01 is sent once, on arrival")
    if new in (StatusCode.ASSIGNED, StatusCode.IN_PROGRESS, StatusCode.COMPLETED) and previous not in _HANDLING:
        raise refuse("the document must be accepted (03) first")
    if new == StatusCode.ACCEPTED and previous not in (None, StatusCode.ARRIVED):
        raise refuse("03 follows arrival only")
    if new == StatusCode.REJECTED and previous not in (None, StatusCode.ARRIVED):
        raise refuse("02 follows arrival only")
    if new in (StatusCode.RECALL_AGREED, StatusCode.RECALL_REFUSED) and previous != StatusCode.RECALL_REQUESTED:
        raise refuse("15 and 16 answer a recall or update request (13)")


def after(state: StatusCode | None, before: StatusCode | None,
          new: StatusCode) -> tuple[StatusCode | None, StatusCode | None]:
    """(state, state before an open 13) once `new` is taken, without checking it (see `advance`).

    A 13 remembers the state it interrupts; a 16 (recall or update refused) returns to it: the document stays in
    force and its handling goes on where it was, so 06 still needs a 03 before it. A 15 ends the story for the
    recipient until the sender delivers again."""
    if new == StatusCode.RECALL_REQUESTED:
        return new, before if state == StatusCode.RECALL_REQUESTED else state
    if new == StatusCode.RECALL_REFUSED:
        return before, None
    return new, None


def advance(state: StatusCode | None, before: StatusCode | None,
            new: StatusCode) -> tuple[StatusCode | None, StatusCode | None]:
    """`after`, once `check_transition` allows `new` to follow `state`."""
    check_transition(state, new)
    return after(state, before, new)


def replay(entries: Iterable[StatusCode | None]) -> StatusCode | None:
    """The state after a story's changes in order: None is a (new) delivery, which starts over."""
    state: StatusCode | None = None
    before: StatusCode | None = None
    for entry in entries:
        state, before = (None, None) if entry is None else after(state, before, entry)
    return state


class StatusNotice(BaseModel):
    """A signed receipt: what an agency's staff member says about a document, and when."""

    model_config = ConfigDict(frozen=True)

    document_id: str
    document_message_id: str
    document_digest: bytes = Field(min_length=32, max_length=32,
                                   description="SHA-256 of the signed content of the document answered")
    status: StatusCode
    staff: str = ""
    description: str = ""
    reason: str | None = None
    time: dt.datetime

    @model_validator(mode="after")
    def _reject_needs_reason(self) -> StatusNotice:
        if self.status == StatusCode.REJECTED and not (self.reason and self.reason.strip()):
            raise ValidationError("status 02 (rejected) requires a reason", reason=Reason.INVALID_TRANSITION)
        return self


def stored_status(value: str) -> StatusCode | None:
    """A state as the router's stories, the inbox store and the audit timeline keep it: '' for delivered (no status
    yet), else its two-digit code."""
    return StatusCode(value) if value else None
