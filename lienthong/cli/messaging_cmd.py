"""`lienthong send` and `lienthong inbox`: what an agency's clerk does."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from consumers.receiver import Received, Receiver
from lienthong.agencies import check_address, check_agency_code
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.documents import BusinessType, Priority
from lienthong.messages import asks_agreement, is_lifecycle_request
from lienthong.metrics import serve
from lienthong.notices import StatusCode
from lienthong.wiring import Bus
from producers.builder import lifecycle_document, new_document, read_attachments
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
         to: list[str] = typer.Option(..., "--to", help="Recipient agency code or group:<name>; repeat for more. "
                                      "With --revoke, --update or --replace: the agencies affected, by code"),
         subject: str | None = typer.Option(None, "--subject", help="Required for a new document; a revoke, "
                                            "update or replace gets 'Thu hồi / Cập nhật / Thay thế văn bản số …'"),
         number: str = typer.Option(..., "--number", help="Code number, e.g. 7816"),
         notation: str = typer.Option(..., "--notation", help="Code notation, e.g. VPCP-TTĐT"),
         summary: str = typer.Option("", "--summary"),
         signer: str = typer.Option("", "--signer", help="Full name of the person who signed"),
         priority: int = typer.Option(0, "--priority", min=0, max=4, help="0 normal … 4 express at a set time"),
         attach: list[Path] = typer.Option([], "--attach", help="A file to attach; repeat for more"),
         confidential: bool = typer.Option(False, "--confidential", help="Encrypt the document for its recipients: "
                                           "only they can read it; the router and the audit see only who sent it "
                                           "to whom"),
         revoke: str | None = typer.Option(None, "--revoke", metavar="DOCUMENT_ID",
                                           help="Revoke (business type 1) a document you sent: each recipient is "
                                           "asked (13) and answers 15 agreed or 16 refused; needs --reason"),
         update: str | None = typer.Option(None, "--update", metavar="DOCUMENT_ID",
                                           help="Update (business type 2) a document you sent: asked like a revoke; "
                                           "needs --reason"),
         replace: str | None = typer.Option(None, "--replace", metavar="DOCUMENT_ID",
                                            help="Replace (business type 3) a document you sent with this one (its "
                                            "content and --attach files): a new delivery, answered 01 like any; "
                                            "needs --reason"),
         reason: str | None = typer.Option(None, "--reason", help="Why the document is revoked, updated or "
                                           "replaced"),
         ) -> None:
    """Sign a document, keep it in the outbox and publish it; says whether the broker has it or it waits.

    With --revoke, --update or --replace it acts on a document sent before, named by its document id, and goes to
    the recipients of that document it affects (--to, by agency code)."""
    check_agency_code(sender)
    for address in to:
        check_address(address)
    acts = [(BusinessType.REVOKE, revoke), (BusinessType.UPDATE, update), (BusinessType.REPLACE, replace)]
    chosen = [(kind, target) for kind, target in acts if target is not None]
    if len(chosen) > 1:
        raise typer.BadParameter("give one of --revoke, --update and --replace")
    if not chosen and reason is not None:
        raise typer.BadParameter("--reason goes with --revoke, --update or --replace")
    if not chosen and not subject:
        raise typer.BadParameter("a new document needs --subject")
    b = bus(ctx)
    attachments = read_attachments(attach)
    if chosen:
        business, acts_on = chosen[0]
        document = lifecycle_document(sender, business, acts_on, reason=reason, recipients=to, number=number,
                                      notation=notation, subject=subject, summary=summary, signer_name=signer,
                                      priority=Priority(priority), attachments=attachments)
        root_id = acts_on
    else:
        document = new_document(sender, number=number, notation=notation, subject=subject or "", summary=summary,
                                signer_name=signer, priority=Priority(priority), attachments=attachments)
        root_id = document.document_id
    gateway = gateway_for(b, sender, confidential=confidential)
    try:
        sent = gateway.send_document(document, to, confidential=confidential, root_id=root_id)
    finally:
        gateway.close()
    what = document.document_id
    if chosen:
        what += f" ({document.business.type.name.lower()} of {root_id}: {document.business.reason})"
    if confidential:
        what += " (encrypted)"
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
        subject = getattr(payload, "subject", "")
        business = getattr(payload, "business", None)
        if business is not None and is_lifecycle_request(item.message):
            # A revoke or update waits for `inbox reply … 15|16`; a replacement was acknowledged (01) like any.
            asks = ", answer 15 or 16" if asks_agreement(item.message) else ""
            subject += f" ({business.type.name.lower()}{asks}: {business.reason})"  # no [..]: rich markup
        return ["document", header.sender, header.root_id, subject]
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


def _state_text(state: StatusCode | None) -> str:
    return f"{state.value} {state.label}" if state else "delivered"


@inbox_app.command("list")
def list_inbox(ctx: typer.Context, agency: str = typer.Argument(...),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Show what this agency has received and the status it last sent for each document."""
    from consumers.inbox_store import InboxStore

    store = InboxStore(bus(ctx).settings.inbox_dir / check_agency_code(agency))
    docs, notices = store.documents(), store.notices()
    states = {root: store.story_state(root) for root in {d.root_id for d in docs}}
    store.close()
    if as_json:
        emit_json({"documents": [{**d.__dict__, "digest": d.digest.hex(), "folder": str(d.folder),
                                  "received_at": d.received_at.isoformat(), "business_type": int(d.business_type),
                                  "last_status": d.last_status.value if d.last_status else None,
                                  "story_state": _state_text(states[d.root_id])} for d in docs],
                   "notices": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in n.items()}
                               for n in notices]})
        return
    table(f"{agency}: documents received",
          ["document", "acts on", "from", "subject", "our status", "document state", "folder"],
          [[d.document_id, f"{d.business_type.name.lower()} {d.root_id}" if d.is_lifecycle else "", d.sender,
            d.subject, d.last_status.value if d.last_status else "", _state_text(states[d.root_id]), d.folder]
           for d in docs])
    table(f"{agency}: status notices received", ["document", "from", "status", "reason", "time"],
          [[n["document_id"], n["from_agency"], n["status"], n["reason"], n["time"]] for n in notices])


@inbox_app.command("reply")
def reply(ctx: typer.Context, agency: str = typer.Argument(..., help="Your agency code"),
          document: str = typer.Argument(..., help="Document id (or message id) of a received document; the id of "
                                         "the original answers its latest delivery, e.g. a revoke or update request"),
          status_arg: str | None = typer.Argument(None, metavar="[STATUS]", help="The status, as with --status"),
          status: str | None = typer.Option(None, "--status", help="02 rejected (needs --reason), 03, 04, 05, 06; "
                                            "15 agreed or 16 refused to answer a revoke or update request (13)"),
          reason: str | None = typer.Option(None, "--reason"),
          staff: str = typer.Option("", "--staff", help="Who is answering"),
          description: str = typer.Option("", "--description")) -> None:
    """Send a signed status notice about a received document to its sender.

    The status must make sense after the last one for this document (nothing after 02 until it is delivered
    again, 04–06 only after 03, 15 and 16 only to a request 13); otherwise nothing is sent."""
    if (status is None) == (status_arg is None):
        raise typer.BadParameter("give the status once: `inbox reply AGENCY DOCUMENT 03` or `--status 03`")
    code = StatusCode.parse(status or status_arg or "")
    receiver = Receiver.connect(bus(ctx), check_agency_code(agency))
    try:
        sent = receiver.reply(document, code, reason=reason, staff=staff, description=description)
    finally:
        receiver.close()
    out.print(f"sent status {code.value} {code.label} for {document} as message {sent.message_id}")
