"""`lienthong audit`: the auditor's view of the delivery record."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import typer

from lienthong.audit import evidence, queries
from lienthong.audit.chain import Finding, Problem
from lienthong.audit.events import AuditEventType
from lienthong.audit.store import CHECKPOINT, AuditStore, Checkpoint
from lienthong.audit.timeline import (
    DELIVERED,
    RecipientTimeline,
    StoryEntry,
    Timeline,
    build_timeline,
    state_label,
)
from lienthong.certificates import read_certificate
from lienthong.cli.common import bus, emit_json, emit_rows, out, output_format, table
from lienthong.db import display_url
from lienthong.errors import NotFoundError, ValidationError
from lienthong.notices import StatusCode
from lienthong.wiring import Bus

app = typer.Typer(help="Review who sent what to whom and when.", no_args_is_help=True)


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else ""


def _history(r: RecipientTimeline) -> str:
    """The recipient's steps after its first delivery (shown in its own column): statuses, later deliveries."""
    entries = r.history[1:] if r.history and r.history[0].state == DELIVERED else r.history
    def step(e: StoryEntry) -> str:
        what = "delivered again" if e.state == DELIVERED else e.label
        why = f" ({e.reason})" if e.reason and e.state == StatusCode.RECALL_REQUESTED.value else ""
        return f"{what}{why} {_t(e.at)[11:]}"
    return ", ".join(step(e) for e in entries)


def print_timeline(timeline: Timeline, names: dict[str, str]) -> None:
    out.print(f"Document {timeline.root_id}")
    out.print(f"  from {timeline.sender} {names.get(timeline.sender or '', '')}, message {timeline.message_id}")
    out.print(f"  submitted {_t(timeline.submitted_at)} UTC, routed {_t(timeline.routed_at)} UTC "
              f"to {len(timeline.recipients)} recipients")
    rows = []
    for r in timeline.recipients.values():
        reason = (r.history[-1].reason or "") if r.history else ""  # why the recipient is where it is now
        rows.append([r.recipient, names.get(r.recipient, ""), _t(r.delivered_at)[11:], _history(r),
                     state_label(r.state), reason])
    table(None, ["recipient", "name", "delivered", "statuses", "state now", "reason"], rows)
    for event in timeline.rejections:
        out.print(f"  rejected {_t(event.at)}: {event.kind or 'message'} {event.message_id} from {event.sender}: "
                  f"{event.reason_code}: {event.reason}")
    waiting = timeline.waiting
    if not timeline.recipients:
        out.print("  delivered to no one: every submission of this document was refused")
    else:
        out.print(f"  not answered yet: {', '.join(waiting)}" if waiting else "  every recipient has answered")


@app.command()
def show(ctx: typer.Context, document_id: str = typer.Argument(..., help="Document id (of the original document: "
                                                                "its revokes, updates and replacements are in its "
                                                                "story)"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the story of a document per recipient: delivered, each status and request (13, 15, 16) with its
    reason, each recipient's current state, and every message of the story the router refused and why."""
    b = bus(ctx)
    store = b.audit_store()
    events = store.events(document_id)
    store.close()
    if not events:
        raise NotFoundError(f"no audit record for document {document_id!r}; is the audit projector running?")
    timeline = build_timeline(document_id, events)
    if as_json:
        emit_json({"document_id": document_id,
                   "events": [e.model_dump(mode="json", exclude={"envelope"}) for e in events],
                   "states": {r.recipient: {"state": r.state, "label": state_label(r.state),
                                            "since": r.state_at.isoformat() if r.state_at else None}
                              for r in timeline.recipients.values()},
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
    store = b.audit_store(url, writer=True)
    try:
        count = replay(b, store)
        rows = store.count()
    finally:
        store.close()
    out.print(f"replayed {count:,} audit events from {b.topics.audit} into {display_url(url)}; it holds {rows:,} rows")


@app.command()
def verify(ctx: typer.Context,
           ca: Path | None = typer.Option(None, "--ca", help="The operator certificate you trust (PEM); "
                                          "default: the one in the home folder"),
           anchor: str | None = typer.Option(None, "--anchor", help="SEQ:HASH of a checkpoint you noted earlier "
                                              "(as the last run printed): the chain must still hold it"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Recompute the hash chain and check every signed checkpoint; name the first broken row. Exit 1 if broken.

    A chain cut off at its end together with its last checkpoints looks intact by itself: note the last
    checkpoint each run prints and pass it as --anchor next time."""
    b = bus(ctx)
    certificate = read_certificate(ca or b.settings.ca_dir / "ca.cert.pem")
    store = b.audit_store(read_only=True)
    started = time.perf_counter()
    try:
        report = store.verify(certificate, b.envelopes.codec)
        head = store.checkpoints().get(report.last_checkpoint_seq)
        anchor_problem = _check_anchor(store, anchor) if anchor else None
    finally:
        store.close()
    seconds = time.perf_counter() - started
    if anchor_problem:
        report.findings.append(Finding(Problem.DELETED, int(anchor.split(":")[0]), anchor_problem))  # type: ignore[union-attr]
    last_hash = _row_hash_of(head, b) if head else None
    if as_json:
        emit_json({"ok": report.ok, "rows": report.rows, "checkpoints": report.checkpoints,
                   "last_seq": report.last_seq, "last_checkpoint_seq": report.last_checkpoint_seq,
                   "last_checkpoint_anchor": f"{report.last_checkpoint_seq}:{last_hash}" if last_hash else None,
                   "uncovered_rows": report.uncovered, "seconds": round(seconds, 3),
                   "findings": [{"problem": f.problem.value, "seq": f.seq, "detail": f.detail}
                                for f in report.findings]})
    elif report.ok:
        plural = "" if report.checkpoints == 1 else "s"
        covered = (f"the last checkpoint covers row {report.last_checkpoint_seq:,} (anchor "
                   f"{report.last_checkpoint_seq}:{last_hash})" if last_hash else "no checkpoint signed yet")
        out.print(f"audit chain intact: {report.rows:,} rows and {report.checkpoints} signed checkpoint{plural} "
                  f"verified in {seconds:.2f} s; {covered}"
                  + (f"; {report.uncovered:,} newer rows are not yet covered" if report.uncovered else ""))
    else:
        out.print(f"audit chain BROKEN at {report.findings[0]}")
    if not report.ok:
        raise typer.Exit(1)


def _row_hash_of(checkpoint: Checkpoint, b: Bus) -> str:
    return str(b.envelopes.codec.decode(checkpoint.statement, CHECKPOINT)["row_hash"].hex()[:32])


def _check_anchor(store: AuditStore, anchor: str) -> str | None:
    """None if the chain still has the noted row with the noted hash (a prefix of at least 16 hex digits)."""
    seq_text, _, prefix = anchor.partition(":")
    if not seq_text.isdigit() or len(prefix) < 16:
        raise typer.BadParameter(f"anchor {anchor!r} must read SEQ:HASH with at least 16 hex digits of the hash")
    rows = list(store.chain_rows(int(seq_text), int(seq_text)))
    if not rows:
        return f"the anchored row {seq_text} is gone: the chain was cut back"
    if not rows[0].row_hash.hex().startswith(prefix.lower()):
        return f"row {seq_text} no longer has the anchored hash: the chain was rewritten"
    return None


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date or time like 2026-11-26 or 2026-11-26T08:00") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@app.command()
def find(ctx: typer.Context,
         document: str | None = typer.Option(None, "--document", help="Document id"),
         sender: str | None = typer.Option(None, "--sender", help="Agency code of the sender"),
         recipient: str | None = typer.Option(None, "--recipient", help="Agency code of the recipient"),
         status: str | None = typer.Option(None, "--status", help="Two-digit status code, e.g. 02"),
         event: AuditEventType | None = typer.Option(None, "--event", help="SUBMITTED, ROUTED, DELIVERED, …"),
         since: str | None = typer.Option(None, "--since", help="From this time (ISO 8601, UTC if no zone)"),
         until: str | None = typer.Option(None, "--until", help="Before this time"),
         limit: int = typer.Option(1000, "--limit", min=1),
         as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Audit events by document, sender, recipient, status and time range."""
    store = bus(ctx).audit_store()
    try:
        events = queries.find(store, queries.EventFilter(document, sender, recipient, status, event, _when(since),
                                                         _when(until), limit))
    finally:
        store.close()
    columns = ["at", "event", "document", "sender", "recipient", "status", "reason_code", "reason", "message_id"]
    emit_rows(columns, [[e.at, e.event.value, e.root_id, e.sender, e.recipient, e.status, e.reason_code, e.reason,
                         e.message_id] for e in events], output_format(as_json, as_csv), f"{len(events)} events")


@app.command()
def overdue(ctx: typer.Context, hours: float = typer.Option(24.0, "--hours", help="Deadline to accept, in hours"),
            as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Recipients that have neither accepted (03) nor rejected (02) a document delivered more than --hours ago."""
    store = bus(ctx).audit_store()
    try:
        late = queries.overdue(store, hours, dt.datetime.now(dt.UTC))
    finally:
        store.close()
    emit_rows(["document", "sender", "recipient", "delivered_at", "last_status", "hours_waiting"],
              [[o.document_id, o.sender, o.recipient, o.delivered_at, o.last_status, o.hours_waiting] for o in late],
              output_format(as_json, as_csv), f"{len(late)} waiting for acceptance for more than {hours:g} h")


@app.command()
def figures(ctx: typer.Context, since: str | None = typer.Option(None, "--since", help="From this time"),
            as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Per agency: documents sent and received, rejections, acceptances and the median time to accept."""
    store = bus(ctx).audit_store()
    try:
        rows = queries.agency_figures(store, _when(since))
    finally:
        store.close()
    emit_rows(["agency", "sent", "received", "rejected", "accepted", "median_seconds_to_accept"],
              [[f.agency, f.sent, f.received, f.rejected, f.accepted, f.median_seconds_to_accept] for f in rows],
              output_format(as_json, as_csv), "per agency")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Sign a checkpoint at the end of the chain now (the projector signs them every N rows or T seconds)."""
    store = bus(ctx).audit_store(writer=True)
    try:
        seq = store.checkpoint(force=True)
    finally:
        store.close()
    out.print(f"signed a checkpoint at row {seq:,}" if seq else "nothing new to sign: the last row is covered")


@app.command("export")
def export_bundle(ctx: typer.Context, document_id: str = typer.Argument(..., help="Document id"),
                  output: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: stdout)"),
                  ) -> None:
    """Write one file holding the document's signed messages, its audit rows and the chain to a signed checkpoint."""
    b = bus(ctx)
    store, directory = b.audit_store(), b.directory_store()
    try:
        bundle = evidence.export(store, document_id, read_certificate(b.settings.ca_dir / "ca.cert.pem"),
                                 directory.certificates())
    finally:
        store.close()
        directory.close()
    text = evidence.dump(bundle)
    if output is None:
        sys.stdout.write(text + "\n")
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}: {len(bundle['messages'])} signed messages, {len(bundle['chain']['rows'])} chain rows "
              f"to the checkpoint at row {bundle['checkpoint']['seq']:,}")


@app.command("verify-bundle")
def verify_bundle(ctx: typer.Context, bundle_file: Path = typer.Argument(..., help="An evidence bundle"),
                  ca: Path | None = typer.Option(None, "--ca", help="The operator certificate you trust (PEM)"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Check an evidence bundle offline, without the database. Exit 1 if anything does not hold."""
    if not bundle_file.is_file():
        raise NotFoundError(f"{bundle_file} does not exist")
    try:
        bundle = json.loads(bundle_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{bundle_file} is not an evidence bundle: {exc}") from exc
    trusted = read_certificate(ca) if ca else None
    report = evidence.verify_bundle(bundle, bus(ctx).envelopes.codec, trusted)
    if as_json:
        emit_json(report.__dict__ | {"ok": report.ok})
    elif report.ok:
        out.print(f"evidence for {report.document_id} holds: {report.document_rows} audit rows and "
                  f"{report.messages} signed messages, chained through {report.rows} rows to the checkpoint at row "
                  f"{report.checkpoint_seq:,} signed by the operator certificate {report.operator_fingerprint[:16]}…"
                  + ("" if ca else " (compare that fingerprint with the operator's published one, or pass --ca)"))
    else:
        out.print(f"evidence for {report.document_id} does NOT hold: " + "; ".join(report.problems))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(ctx: typer.Context,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the API has no login, so "
                                   "anything but 127.0.0.1 needs an authenticating proxy in front"),
          port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on")) -> None:
    """Serve the auditor's page (/) and the read-only JSON API (described at /openapi.json) until Ctrl-C."""
    import uvicorn

    from lienthong.audit.api import create_app

    b = bus(ctx)
    ca_certificate = read_certificate(b.settings.ca_dir / "ca.cert.pem")
    directory = b.directory_store()
    try:
        names = {a.code: a.name for a in directory.agencies()}
    finally:
        directory.close()
    web = create_app(lambda: b.audit_store(read_only=True), names, ca_certificate, b.envelopes.codec)
    if host not in ("127.0.0.1", "::1", "localhost"):
        out.print(f"warning: serving the audit record without authentication on {host}; anyone who reaches "
                  f"port {port} can read it")
    out.print(f"auditor's page on http://{host}:{port}/ (API at /api/…, described at /openapi.json); Ctrl-C stops")
    uvicorn.run(web, host=host, port=port, log_level="info", server_header=False, proxy_headers=False)
