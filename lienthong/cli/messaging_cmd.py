"""`lienthong send` and `lienthong inbox`: what an agency's clerk does."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from consumers.receiver import Received, Receiver
from lienthong.agencies import check_address, check_agency_code
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.documents import Priority
from lienthong.metrics import serve
from lienthong.notices import StatusCode
from lienthong.wiring import Bus
from producers.builder import new_document, read_attachments
from producers.connect import gateway as connect_gateway
from producers.connect import outbox_url, relay_for
from producers.gateway import Gateway
from producers.outbox import Outbox

inbox_app = typer.Typer(help="Read an agency's inbox and answer with status notices.", no_args_is_help=True)


def gateway_for(b: Bus, agency: str, *, confidential: bool = False) -> Gateway:
    """The agency's gateway: it needs the agency's key here, not the operator's directory database; to encrypt,
    it reads the directory topic for the recipients' encryption certificates."""
    b.keystore().signer(agency)  # says plainly when the key is missing
    return connect_gateway(b, agency, outbox=True, confidential=confidential)


def send(ctx: typer.Context,
         sender: str = typer.Option(..., "--from", help="Sending agency code"),
         to: list[str] = typer.Option(..., "--to", help="Recipient agency code or group:<name>; repeat for more"),
         subject: str = typer.Option(..., "--subject"),
         number: str = typer.Option(..., "--number", help="Code number, e.g. 7816"),
         notation: str = typer.Option(..., "--notation", help="Code notation, e.g. VPCP-TTĐT"),
         summary: str = typer.Option("", "--summary"),
         signer: str = typer.Option("", "--signer", help="Full name of the person who signed"),
         priority: int = typer.Option(0, "--priority", min=0, max=4, help="0 normal … 4 express at a set time"),
         attach: list[Path] = typer.Option([], "--attach", help="A file to attach; repeat for more"),
         confidential: bool = typer.Option(False, "--confidential", help="Encrypt the document for its recipients: "
                                           "only they can read it; the router and the audit see only who sent it "
                                           "to whom"),
         ) -> None:
    """Sign a document, keep it in the outbox and publish it; says whether the broker has it or it waits."""
    check_agency_code(sender)
    for address in to:
        check_address(address)
    b = bus(ctx)
    document = new_document(sender, number=number, notation=notation, subject=subject, summary=summary,
                            signer_name=signer, priority=Priority(priority), attachments=read_attachments(attach))
    gateway = gateway_for(b, sender, confidential=confidential)
    try:
        sent = gateway.send_document(document, to, confidential=confidential)
    finally:
        gateway.close()
    what = f"{document.document_id} (encrypted)" if confidential else document.document_id
    if sent.queued:
        out.print(f"queued {what} as message {sent.message_id} ({sent.size:,} bytes): the broker "
                  "did not take it now; `lienthong outbox relay` publishes it when the broker is back")
        return
    out.print(f"sent {what} as message {sent.message_id} "
              f"({sent.size:,} bytes, ingress partition {sent.partition} offset {sent.offset})")


outbox_app = typer.Typer(help="The gateway outbox: signed messages waiting for the broker.",
                         invoke_without_command=True)


@outbox_app.callback()
def outbox_default(ctx: typer.Context) -> None:
    """Show what is waiting (the same as `lienthong outbox list`)."""
    if ctx.invoked_subcommand is None:
        list_outbox(ctx, include_sent=False, as_json=False)


@outbox_app.command("list")
def list_outbox(ctx: typer.Context, include_sent: bool = typer.Option(False, "--all", help="Show sent ones too"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """List the messages in the outbox, oldest first."""
    box = Outbox(outbox_url(bus(ctx)))
    entries = box.entries(include_sent=include_sent)
    box.close()
    if as_json:
        emit_json([{k: v for k, v in e.__dict__.items() if k != "outgoing"} for e in entries])
        return
    waiting = sum(1 for e in entries if e.sent_at is None)
    table(f"outbox: {waiting} waiting", ["queued", "agency", "document", "message", "sent", "attempts", "last error"],
          [[e.queued_at.strftime("%Y-%m-%d %H:%M:%S"), e.agency, e.root_id, e.message_id,
            e.sent_at.strftime("%H:%M:%S") if e.sent_at else "waiting", e.attempts, e.last_error or ""]
           for e in entries])


@outbox_app.command("relay")
def relay(ctx: typer.Context,
          follow: bool = typer.Option(False, "--follow", help="Keep relaying until interrupted"),
          interval: float = typer.Option(2.0, "--interval", help="Seconds between attempts with --follow")) -> None:
    """Publish what waits in the outbox, oldest first; exit 1 if some still wait (without --follow)."""
    b = bus(ctx)
    box = Outbox(outbox_url(b))
    relay = relay_for(b, box)
    try:
        while True:
            result = relay.flush()
            if result.published or result.error or not follow:
                note = f"; still waiting: {result.waiting} ({result.error})" if result.waiting else ""
                out.print(f"published {result.published}{note}")
            if not follow:
                if result.waiting:
                    raise typer.Exit(1)
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        relay.close()
        box.close()


def _describe(item: Received) -> list[str]:
    if item.message is None:
        return ["quarantined", "", "", item.detail]
    payload = item.message.payload
    header = item.message.header
    if item.kind == "document":
        return ["document", header.sender, header.root_id, getattr(payload, "subject", "")]
    status = getattr(payload, "status", None)
    text = f"{status.value} {status.label}" if isinstance(status, StatusCode) else ""
    reason = getattr(payload, "reason", None)
    return [item.kind, header.sender, header.root_id, text + (f": {reason}" if reason else "")]


@inbox_app.command("read")
def read(ctx: typer.Context, agency: str = typer.Argument(..., help="Agency code"),
         wait: float = typer.Option(3.0, "--wait", help="Stop after this many seconds with nothing new"),
         follow: bool = typer.Option(False, "--follow", help="Keep reading until interrupted")) -> None:
    """Fetch new messages: verify each signature, store documents, send 01 for each, show notices."""
    check_agency_code(agency)
    b = bus(ctx)
    receiver = Receiver.connect(b, agency)
    if follow and b.settings.metrics_port:
        serve(receiver.metrics.registry, b.settings.metrics_port, b.settings.metrics_host)
    rows: list[list[str]] = []
    try:
        quiet_since = time.monotonic()
        while follow or time.monotonic() - quiet_since < wait:
            batch = receiver.poll(500)
            if batch:
                quiet_since = time.monotonic()
                for item in batch:
                    if follow:
                        out.print("  ".join(_describe(item)))
                    rows.append(_describe(item))
    except KeyboardInterrupt:
        pass
    finally:
        receiver.close()
    if not follow:
        table(f"{agency}: {len(rows)} new", ["kind", "from", "document", "subject / status"], rows)


@inbox_app.command("list")
def list_inbox(ctx: typer.Context, agency: str = typer.Argument(...),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Show what this agency has received and the status it last sent for each document."""
    from consumers.inbox_store import InboxStore

    store = InboxStore(bus(ctx).settings.inbox_dir / check_agency_code(agency))
    docs, notices = store.documents(), store.notices()
    store.close()
    if as_json:
        emit_json({"documents": [{**d.__dict__, "digest": d.digest.hex(), "folder": str(d.folder),
                                  "received_at": d.received_at.isoformat(),
                                  "last_status": d.last_status.value if d.last_status else None} for d in docs],
                   "notices": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in n.items()}
                               for n in notices]})
        return
    table(f"{agency}: documents received", ["document", "from", "subject", "our status", "folder"],
          [[d.document_id, d.sender, d.subject, d.last_status.value if d.last_status else "", d.folder]
           for d in docs])
    table(f"{agency}: status notices received", ["document", "from", "status", "reason", "time"],
          [[n["document_id"], n["from_agency"], n["status"], n["reason"], n["time"]] for n in notices])


@inbox_app.command("reply")
def reply(ctx: typer.Context, agency: str = typer.Argument(..., help="Your agency code"),
          document: str = typer.Argument(..., help="Document id (or message id) of a received document"),
          status: str = typer.Option(..., "--status", help="02 rejected (needs --reason), 03, 04, 05 or 06"),
          reason: str | None = typer.Option(None, "--reason"),
          staff: str = typer.Option("", "--staff", help="Who is answering"),
          description: str = typer.Option("", "--description")) -> None:
    """Send a signed status notice about a received document to its sender."""
    code = StatusCode.parse(status)
    receiver = Receiver.connect(bus(ctx), check_agency_code(agency))
    try:
        sent = receiver.reply(document, code, reason=reason, staff=staff, description=description)
    finally:
        receiver.close()
    out.print(f"sent status {code.value} {code.label} for {document} as message {sent.message_id}")
