"""`lienthong dossier`: portals publish dossier status events, the national portal projects and shows them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import typer
from rich.progress import Progress

from consumers.dossier_projector import Conflict, DossierProjector, DossierState, DossierStore, Step
from consumers.projection import replay_agency_inbox, run_projector
from consumers.receiver import Receiver
from lienthong.agencies import check_agency_code
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.cli.messaging_cmd import gateway_for
from lienthong.db import display_url
from lienthong.dossiers import DossierStatusBatch, DossierStatusEvent
from lienthong.errors import NotFoundError, Reason, ValidationError, first_error
from lienthong.messages import utc_now
from lienthong.reports import VIETNAM

app = typer.Typer(help="Dossier status of the National Public Service Portal: ministry and provincial portals "
                  "publish status events, the national portal keeps the latest status of every dossier and "
                  "answers 'where is my dossier'.", no_args_is_help=True)

FIELDS = tuple(DossierStatusEvent.model_fields)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw event) of a JSON Lines or CSV file; CSV has a header row naming the fields."""
    if not path.exists():
        raise NotFoundError(f"no file {path}")
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if suffix == ".csv":
            reader = csv.DictReader(handle)
            missing = [f for f in ("dossier_code", "status", "time") if f not in (reader.fieldnames or [])]
            if missing:
                raise ValidationError(f"{path} line 1: the header row lacks {', '.join(missing)}; it names the "
                                      f"fields: {','.join(FIELDS)}")
            for row in reader:
                yield reader.line_num, {k: (v if v != "" or k != "due_date" else None) for k, v in row.items()
                                        if k is not None}
        elif suffix in (".jsonl", ".ndjson", ".json"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValidationError(f"{path} line {number}: not JSON: {exc.msg}") from exc
                if not isinstance(value, dict):
                    raise ValidationError(f"{path} line {number}: expected a JSON object of one event")
                yield number, value
        else:
            raise ValidationError(f"{path}: give a .jsonl (one JSON object a line) or a .csv file (header row)")


def read_events(path: Path, now: dt.datetime, clock_skew: dt.timedelta) -> list[DossierStatusEvent]:
    """Every event of the file, validated; the first bad line raises one error that names it."""
    events = []
    latest = now + clock_skew
    for number, raw in _lines(path):
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:  # a misspelt column would otherwise be dropped and its field left at its default
            raise ValidationError(f"{path} line {number}: unknown field(s) {', '.join(unknown)}; the fields are "
                                  f"{', '.join(FIELDS)}; nothing was sent")
        try:
            event = DossierStatusEvent.model_validate(raw)
        except pydantic.ValidationError as exc:
            line, reason = first_error(exc)
            raise ValidationError(f"{path} line {number}: {line}; nothing was sent", reason=reason) from exc
        if event.time > latest:
            raise ValidationError(f"{path} line {number}: dossier {event.dossier_code}: status time "
                                  f"{event.time.isoformat()} is in the future; nothing was sent",
                                  reason=Reason.IMPOSSIBLE_DATE)
        events.append(event)
    if not events:
        raise ValidationError(f"{path} holds no events; nothing was sent")
    return events


@app.command("publish")
def publish(ctx: typer.Context,
            portal: str = typer.Option(..., "--from", help="The publishing portal's agency code"),
            to: str = typer.Option(..., "--to", help="The national portal's agency code"),
            file: Path = typer.Option(..., "--file", help="Events, .jsonl (one JSON object a line) or .csv"),
            batch_size: int = typer.Option(500, "--batch-size", min=1, max=5000,
                                           help="Events signed together in one message")) -> None:
    """Validate every event of a file, then sign and send them in batches to the national portal.

    One bad line stops everything before anything is sent, with an error naming the line."""
    check_agency_code(portal)
    check_agency_code(to)
    b = bus(ctx)
    events = read_events(file, utc_now(), dt.timedelta(seconds=b.settings.clock_skew_s))
    chunks = [events[i:i + batch_size] for i in range(0, len(events), batch_size)]
    run = uuid.uuid4().hex[:12]
    gateway = gateway_for(b, portal)
    sent = queued = 0
    try:
        with Progress(console=out, transient=True, disable=len(chunks) < 5) as progress:
            task = progress.add_task(f"sending {len(events):,} events", total=len(chunks))
            for n, chunk in enumerate(chunks, start=1):
                batch = DossierStatusBatch(batch_id=f"{portal},{file.stem}-{run}-{n}", events=tuple(chunk))
                result = gateway.send(batch, [to])
                sent += 1
                queued += result.queued
                progress.advance(task)
    finally:
        gateway.close()
    note = (f"; {queued} queued in the outbox (the broker did not take them now): `lienthong outbox relay` "
            "publishes them") if queued else ""
    out.print(f"sent {len(events):,} events in {sent} signed batch(es) of up to {batch_size} from {portal} to {to}"
              f"{note}", markup=False)


@app.command("project")
def project(ctx: typer.Context,
            agency: str = typer.Option(..., "--agency", help="The national portal's agency code: whose inbox"),
            once: bool = typer.Option(False, "--once", help="Stop when nothing new came for --wait seconds"),
            wait: float = typer.Option(3.0, "--wait", help="With --once: seconds with nothing new before stopping")
            ) -> None:
    """Read the national portal's inbox, verify every batch, and keep the latest status of every dossier in the
    projections database (LIENTHONG_PROJECTIONS_URL; SQLite in home by default); first the batches `inbox read`
    already stored. Runs until Ctrl-C (or SIGTERM), or with --once until the inbox is quiet."""
    check_agency_code(agency)
    b = bus(ctx)
    url = b.settings.projections_db_url()
    store = DossierStore(url)
    try:
        projector = DossierProjector(store)
        if not once:
            out.print(f"projecting dossier status from {b.topics.inbox(agency)} into {display_url(url)}; Ctrl-C "
                      "stops", markup=False)
        receiver = Receiver.connect(b, agency)
        try:
            run = run_projector(receiver, projector, once=once, wait=wait)
        finally:
            receiver.close()
        dossiers = store.count()
    finally:
        store.close()
    out.print(f"projected {projector.events:,} events in {projector.batches} batch(es); {dossiers:,} dossiers known "
              f"in {display_url(url)}{run.quarantine_note}", markup=False)


def _due_text(state: DossierState, today: dt.date) -> str:
    if state.due_date is None:
        return "no due date"
    late = state.days_overdue(today)
    if state.status.finished:
        return "finished in time" if late == 0 else f"finished {late} day(s) after the due date"
    if late:
        return f"OVERDUE by {late} day(s)"
    left = (state.due_date - today).days
    return "due today" if left == 0 else f"{left} day(s) left"


def _local(value: dt.datetime) -> str:
    return value.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M")


def _as_json(state: DossierState, steps: list[Step], conflicts: list[Conflict], today: dt.date) -> dict[str, Any]:
    return {
        "dossier_code": state.dossier_code, "procedure_code": state.procedure_code, "field": state.field,
        "owner_kind": state.owner_kind.value, "status": state.status.value, "status_text": state.status.label,
        "handling_unit": state.handling_unit, "handler": state.handler,
        "received_date": state.received_date.isoformat(),
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "overdue": state.days_overdue(today) > 0 and not state.status.finished,
        "days_overdue": state.days_overdue(today), "finished": state.status.finished,
        "time": state.time.isoformat(), "portal": state.portal, "message_id": state.message_id,
        "batch_id": state.batch_id,
        "steps": [{"time": s.time.isoformat(), "status": s.status.value, "handling_unit": s.handling_unit,
                   "handler": s.handler, "portal": s.portal} for s in steps],
        "conflicts": [{"time": c.time.isoformat(), "status": c.status.value, "portal": c.portal,
                       "message_id": c.message_id, "batch_id": c.batch_id} for c in conflicts],
    }


@app.command("show")
def show(ctx: typer.Context, code: str = typer.Argument(..., help="The dossier code, as on the receipt"),
         agency: str | None = typer.Option(None, "--agency", help="The national portal whose inbox store to bring "
                                           "in first (default: every agency's inbox in this home)"),
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Where is my dossier: its current status in plain words, who handles it, its dates, and the steps so far.

    Batches `lienthong inbox read` stored and no projector has applied yet are applied first (once each)."""
    if agency is not None:
        check_agency_code(agency)
    b = bus(ctx)
    url = b.settings.projections_db_url()
    store = DossierStore(url)
    try:
        projector = DossierProjector(store)
        inboxes = [agency] if agency else sorted(db.parent.name for db in b.settings.inbox_dir.glob("*/inbox.db"))
        for inbox in inboxes:  # verified when the receiver stored them
            replay_agency_inbox(b.settings.inbox_dir, inbox, projector, b.envelopes)
        state = store.get(code.strip())
        steps = store.steps(code.strip()) if state else []
        conflicts = store.conflicts(code.strip())
    finally:
        store.close()
    if state is None:
        raise NotFoundError(f"no dossier {code} in {display_url(url)}: no portal has reported it (yet), or its "
                            "batch has not reached the national portal's inbox")
    today = dt.datetime.now(VIETNAM).date()
    if as_json:
        emit_json(_as_json(state, steps, conflicts, today))
        return
    owner = "citizen" if state.owner_kind.value == "CITIZEN" else "business"
    handler = f", handler {state.handler}" if state.handler else ""
    for line in (
        f"dossier {state.dossier_code}: procedure {state.procedure_code} ({state.field}), of a {owner}",
        f"status:        {state.status.label}, since {_local(state.time)} (Vietnam time)",
        f"handled by:    {state.handling_unit}{handler}",
        f"received:      {state.received_date.isoformat()}",
        f"due:           {state.due_date.isoformat() if state.due_date else '—'}: {_due_text(state, today)}",
        f"reported by:   {state.portal} (message {state.message_id})",
    ):
        out.print(line, markup=False)
    if steps:
        table(f"{len(steps)} step(s)", ["time (Vietnam)", "status", "handling unit", "handler", "portal"],
              [[_local(s.time), s.status.value, s.handling_unit, s.handler, s.portal] for s in steps])
    if conflicts:
        portals = ", ".join(sorted({c.portal for c in conflicts}))
        out.print(f"not applied: {len(conflicts)} event(s) from {portals}, which did not report this dossier "
                  f"first (it belongs to {state.portal})", markup=False)
