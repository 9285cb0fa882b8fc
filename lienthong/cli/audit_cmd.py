"""`lienthong audit`: the auditor's view of the delivery record."""

from __future__ import annotations

import datetime as dt

import typer

from lienthong.audit.store import AuditStore
from lienthong.audit.timeline import Timeline, build_timeline
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.db import display_url
from lienthong.errors import NotFoundError

app = typer.Typer(help="Review who sent what to whom and when.", no_args_is_help=True)


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else ""


def print_timeline(timeline: Timeline, names: dict[str, str]) -> None:
    out.print(f"Document {timeline.root_id}")
    out.print(f"  from {timeline.sender} {names.get(timeline.sender or '', '')}, message {timeline.message_id}")
    out.print(f"  submitted {_t(timeline.submitted_at)} UTC, routed {_t(timeline.routed_at)} UTC "
              f"to {len(timeline.recipients)} recipients")
    rows = []
    for r in timeline.recipients.values():
        steps = ", ".join(f"{s.status.value} {s.status.label} {_t(s.at)[11:]}" for s in r.steps)
        latest = r.latest
        state = "no answer yet" if not r.answered else f"{latest.status.label}" if latest else ""
        reason = next((s.reason for s in reversed(r.steps) if s.reason), "")
        rows.append([r.recipient, names.get(r.recipient, ""), _t(r.delivered_at)[11:], steps, state, reason])
    table(None, ["recipient", "name", "delivered", "statuses", "state", "reason"], rows)
    for event in timeline.rejections:
        out.print(f"  rejected {_t(event.at)}: {event.kind or 'message'} {event.message_id} from {event.sender}: "
                  f"{event.reason_code}: {event.reason}")
    waiting = timeline.waiting
    out.print(f"  not answered yet: {', '.join(waiting)}" if waiting else "  every recipient has answered")


@app.command()
def show(ctx: typer.Context, document_id: str = typer.Argument(..., help="Document id"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the timeline of a document per recipient: received, accepted, rejected and why, silent."""
    b = bus(ctx)
    store = AuditStore(b.settings.audit_db_url())
    events = store.events(document_id)
    store.close()
    if not events:
        raise NotFoundError(f"no audit record for document {document_id!r}; is the audit projector running?")
    timeline = build_timeline(document_id, events)
    if as_json:
        emit_json({"document_id": document_id, "events": [e.model_dump(mode="json") for e in events],
                   "waiting": timeline.waiting})
        return
    directory = b.directory_store()
    names = {a.code: a.name for a in directory.agencies()}
    directory.close()
    print_timeline(timeline, names)


@app.command()
def rebuild(ctx: typer.Context,
            into: str | None = typer.Option(None, "--into", help="Database URL to rebuild into "
                                             "(default: the configured audit store; existing rows are kept)")) -> None:
    """Replay the audit topic from its beginning into SQL: the audit store can always be rebuilt from Kafka."""
    from consumers.audit_projector import rebuild as replay

    b = bus(ctx)
    url = into or b.settings.audit_db_url()
    store = AuditStore(url)
    try:
        count = replay(b, store)
        rows = store.count()
    finally:
        store.close()
    out.print(f"replayed {count:,} audit events from {b.topics.audit} into {display_url(url)}; it holds {rows:,} rows")
