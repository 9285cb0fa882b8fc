"""Build an official document from the few fields a clerk types, with sensible defaults for the rest."""

from __future__ import annotations

import datetime as dt
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from lienthong.agencies import is_group_address
from lienthong.documents import (
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentType,
    OfficialDocument,
    Priority,
    Promulgation,
    Signer,
    SteeringType,
    check_document_id,
    make_document_id,
)
from lienthong.errors import NotFoundError, Reason, ValidationError


def read_attachments(paths: Sequence[Path]) -> tuple[Attachment, ...]:
    out = []
    for path in paths:
        if not path.is_file():
            raise NotFoundError(f"attachment {path} does not exist or is not a file")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        out.append(Attachment.of(path.name, path.read_bytes(), content_type))
    return tuple(out)


def new_document(sender: str, *, number: str, notation: str, subject: str, summary: str = "",
                 place: str = "Hà Nội", date: dt.date | None = None, type_name: str = "Công văn",
                 signer_name: str = "", signer_position: str = "", priority: Priority = Priority.NORMAL,
                 steering: SteeringType = SteeringType.NOT_STEERING, due_date: dt.date | None = None,
                 attachments: tuple[Attachment, ...] = (), business: Business | None = None) -> OfficialDocument:
    date = date or dt.date.today()
    code = Code(number=number, notation=notation)
    return OfficialDocument(
        document_id=make_document_id(sender, date, code), code=code,
        promulgation=Promulgation(place=place, date=date),
        document_type=DocumentType(type=1, type_detail=0, type_name=type_name),
        subject=subject, content=summary,
        signer=Signer(competence="", position=signer_position, full_name=signer_name),
        due_date=due_date, priority=priority, steering_type=steering, attachments=attachments,
        business=business or Business(),
    )


_WHAT = {BusinessType.REVOKE: ("revoke", "Thu hồi"), BusinessType.UPDATE: ("update", "Cập nhật"),
         BusinessType.REPLACE: ("replace", "Thay thế")}


def lifecycle_document(sender: str, business: BusinessType, acts_on: str, *, reason: str | None,
                       recipients: Sequence[str], number: str, notation: str, subject: str | None = None,
                       summary: str = "", place: str = "Hà Nội", date: dt.date | None = None,
                       signer_name: str = "", priority: Priority = Priority.NORMAL,
                       attachments: tuple[Attachment, ...] = ()) -> OfficialDocument:
    """A revoke, update or replace of `acts_on`, one of the sender's documents: itself an official document with
    its own code number and notation (the register gives one to the letter that revokes, as to any letter), the
    business type, the reason (required) and the recipients it affects (exactly the agencies it goes to).

    A replacement carries the new content and attachments; a revoke or update usually carries none. Send it with
    `root_id=acts_on`: the router files it in that document's story."""
    if business == BusinessType.NEW:
        raise ValidationError("a new document acts on no other one; use new_document")
    verb, title = _WHAT[business]
    if not (reason and reason.strip()):
        raise ValidationError(f"a {verb} needs a reason (--reason): its recipients are asked to agree to it",
                              reason=Reason.INVALID_CONTENT)
    try:
        check_document_id(acts_on)
    except ValueError as exc:
        raise ValidationError(f"--{verb} {acts_on!r}: {exc}") from exc
    if acts_on.split(",")[0] != sender:
        raise ValidationError(f"document {acts_on} was sent by {acts_on.split(',')[0]}; only its sender may "
                              f"{verb} it", reason=Reason.SENDER_MISMATCH)
    groups = [r for r in recipients if is_group_address(r)]
    if groups:
        raise ValidationError(f"a {verb} goes to the agencies it affects, named one by one, not to "
                              f"{', '.join(groups)}: a group may have changed since the document was sent, and the "
                              "router refuses a request to an agency that never received it",
                              reason=Reason.UNKNOWN_RECIPIENT)
    original = acts_on.split(",")[2]
    document = new_document(sender, number=number, notation=notation,
                            subject=subject or f"{title} văn bản số {original}", summary=summary, place=place,
                            date=date, signer_name=signer_name, priority=priority, attachments=attachments,
                            business=Business(type=business, reason=reason.strip(),
                                              affected_recipients=tuple(recipients)))
    if document.document_id == acts_on:
        raise ValidationError(f"the {verb} would have the id {acts_on} of the document it acts on; give it its own "
                              "code number or notation", reason=Reason.UNKNOWN_DOCUMENT)
    return document
