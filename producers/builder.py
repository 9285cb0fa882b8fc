"""Build an official document from the few fields a clerk types, with sensible defaults for the rest."""

from __future__ import annotations

import datetime as dt
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from lienthong.documents import (
    Attachment,
    Code,
    DocumentType,
    OfficialDocument,
    Priority,
    Promulgation,
    Signer,
    SteeringType,
    make_document_id,
)
from lienthong.errors import NotFoundError


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
                 attachments: tuple[Attachment, ...] = ()) -> OfficialDocument:
    date = date or dt.date.today()
    code = Code(number=number, notation=notation)
    return OfficialDocument(
        document_id=make_document_id(sender, date, code), code=code,
        promulgation=Promulgation(place=place, date=date),
        document_type=DocumentType(type=1, type_detail=0, type_name=type_name),
        subject=subject, content=summary,
        signer=Signer(competence="", position=signer_position, full_name=signer_name),
        due_date=due_date, priority=priority, steering_type=steering, attachments=attachments,
    )
