"""`lienthong ballot`: the e-Cabinet's opinion ballots — open, answer, project the answers, tally."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import typer

from consumers.ballot_projector import BallotProjector, BallotStore
from consumers.inbox_store import InboxStore
from consumers.projection import replay_agency_inbox, run_projector
from consumers.receiver import Receiver
from lienthong.agencies import check_address, check_agency_code
from lienthong.ballots import Ballot, BallotAnswer, Tally, check_ballot_id, make_ballot_id, tally
from lienthong.cli.common import bus, emit_json, emit_rows, out, output_format, table
from lienthong.cli.messaging_cmd import gateway_for
from lienthong.errors import Reason, ValidationError
from lienthong.messages import Message, MessageKind, utc_now
from lienthong.reports import VIETNAM
from lienthong.wiring import Bus

app = typer.Typer(help="Opinion ballots of the e-Cabinet: the Office asks, each member answers once before the "
                       "deadline, the Office tallies.", no_args_is_help=True)

_RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_deadline(text: str, now: dt.datetime) -> dt.datetime:
    """`+30m`, `+2h`, `+3d` from now, or an ISO time; a time without a zone is Vietnam time (UTC+7)."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        deadline = now + dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            deadline = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"deadline {text!r}: write an ISO time like 2026-12-01T17:00 (Vietnam time "
                                  "unless it names a zone) or a delay like +2h, +3d") from None
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=VIETNAM)
    deadline = deadline.replace(microsecond=0)  # what people read and write; the wire carries milliseconds
    if deadline <= now:
        raise ValidationError(f"deadline {deadline:%Y-%m-%d %H:%M:%S %z} has already passed",
                              reason=Reason.PAST_DEADLINE)
    return deadline


def _ballot_store(b: Bus) -> BallotStore:
    return BallotStore(b.settings.projections_db_url())


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@app.command("open")
def open_ballot(ctx: typer.Context,
                office: str = typer.Option(..., "--from", help="The asking agency (the Government Office)"),
                number: str = typer.Option(..., "--number", help="The ballot's number: its id is "
                                           "<office>,<today>,<number>"),
                question: str = typer.Option(..., "--question"),
                option: list[str] = typer.Option(..., "--option", help="An option; repeat, two or more"),
                deadline: str = typer.Option(..., "--deadline", help="ISO time (Vietnam time unless a zone is "
                                             "given) or +30m, +2h, +3d"),
                to: list[str] = typer.Option(..., "--to", help="Member agency code or group:<name>; repeat for more"),
                description: str = typer.Option("", "--description")) -> None:
    """Sign and send a ballot to its members (groups expanded now, and the list signed); record it for the tally."""
    check_agency_code(office)
    for address in to:
        check_address(address)
    now = utc_now()
    closes = parse_deadline(deadline, now)
    b = bus(ctx)
    members = b.directory_view().expand(to, sender=office)  # as the router expands the addresses
    ballot = Ballot(ballot_id=make_ballot_id(office, now.astimezone(VIETNAM).date(), number), question=question,
                    description=description, options=tuple(option), deadline=closes, members=members)
    store = _ballot_store(b)
    try:
        if store.find(ballot.ballot_id) is not None:
            raise ValidationError(f"ballot {ballot.ballot_id} was opened before; a ballot cannot change once sent: "
                                  "choose another --number", reason=Reason.INVALID_TRANSITION)
        gateway = gateway_for(b, office)
        try:
            sent = gateway.send(ballot, list(ballot.members))
        finally:
            gateway.close()
        store.record_ballot(ballot)
    finally:
        store.close()
    state = ("queued: `lienthong outbox relay` publishes it when the broker is back" if sent.queued
             else f"sent as message {sent.message_id}")
    out.print(f"ballot {ballot.ballot_id}: {len(members)} members, deadline {_when(closes)} (UTC+7); {state}")


def _ballot_in_inbox(b: Bus, member: str, ballot_id: str) -> Ballot | None:
    """The ballot as the member received it (stored by `lienthong inbox read`), if it is there."""
    folder = b.settings.inbox_dir / member
    if not folder.exists():
        return None
    inbox = InboxStore(folder)
    try:
        signed = inbox.signed_messages(MessageKind.BALLOT.value, ballot_id)
    finally:
        inbox.close()
    for raw in signed:  # verified when the receiver stored it
        payload = b.envelopes.decode_content(b.envelopes.read(raw)).payload
        if isinstance(payload, Ballot):
            return payload
    return None


@app.command("answer")
def answer_ballot(ctx: typer.Context, ballot_id: str = typer.Argument(..., help="The ballot id"),
                  member: str = typer.Option(..., "--as", help="Your agency code: a member the ballot asks"),
                  option: str = typer.Option(..., "--option", help="One of the ballot's options, exactly"),
                  comment: str = typer.Option("", "--comment")) -> None:
    """Sign and send your one answer to the agency that asked; checked against the ballot in your inbox."""
    check_agency_code(member)
    try:
        check_ballot_id(ballot_id)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    b = bus(ctx)
    ballot = _ballot_in_inbox(b, member, ballot_id)
    now = utc_now()
    if ballot is not None:
        ballot.check_answer(member, option)
        if now > ballot.deadline:
            raise ValidationError(f"ballot {ballot_id} closed at {_when(ballot.deadline)} (UTC+7); the bus refuses "
                                  "answers after the deadline", reason=Reason.PAST_DEADLINE)
    else:
        out.print(f"note: ballot {ballot_id} is not in {member}'s inbox here (`lienthong inbox read {member}` "
                  "fetches it); the option is checked by the bus")
    sender = ballot_id.partition(",")[0]
    gateway = gateway_for(b, member)
    try:
        sent = gateway.send(BallotAnswer(ballot_id=ballot_id, option=option, comment=comment, time=now), [sender])
    finally:
        gateway.close()
    state = ("queued: `lienthong outbox relay` publishes it when the broker is back" if sent.queued
             else f"sent as message {sent.message_id}")
    out.print(f"answer {option!r} to ballot {ballot_id} from {member} to {sender}: {state}")


def _describe(message: Message) -> str:
    payload = message.payload
    if isinstance(payload, BallotAnswer):
        return f"answer   {payload.ballot_id}  {message.header.sender}: {payload.option}"
    ballot_id = payload.ballot_id if isinstance(payload, Ballot) else message.header.root_id
    return f"ballot   {ballot_id}  from {message.header.sender}"


@app.command("project")
def project(ctx: typer.Context, agency: str = typer.Option(..., "--agency", help="The agency whose inbox to read "
                                                           "(the Office, for the answers)"),
            once: bool = typer.Option(False, "--once", help="Stop when nothing new came for --wait seconds"),
            wait: float = typer.Option(3.0, "--wait", help="Seconds of quiet before --once stops")) -> None:
    """Read the agency's inbox (verify, store, as `inbox read` does) and keep ballots and answers for the tally;
    first what `inbox read` already stored. Runs until Ctrl-C (or SIGTERM), or with --once until quiet."""
    check_agency_code(agency)
    b = bus(ctx)
    store = _ballot_store(b)
    projector = BallotProjector(store)
    counts = {"ballot": 0, "answer": 0}

    def changed(message: Message) -> None:
        counts["answer" if isinstance(message.payload, BallotAnswer) else "ballot"] += 1
        out.print(_describe(message), markup=False)

    try:
        receiver = Receiver.connect(b, agency)
        try:
            run = run_projector(receiver, projector, once=once, wait=wait, on_change=changed)
        finally:
            receiver.close()
    finally:
        store.close()
    out.print(f"projected {counts['ballot']} ballots and {counts['answer']} answers for {agency}{run.quarantine_note}")


def tally_json(t: Tally) -> dict[str, Any]:
    ballot = t.ballot
    return {"ballot_id": ballot.ballot_id, "question": ballot.question, "description": ballot.description,
            "state": t.state, "deadline": ballot.deadline.astimezone(dt.UTC).isoformat(),
            "members": len(ballot.members), "answered": len(t.answers),
            "counts": [{"option": o, "count": n} for o, n in t.counts.items()],
            "answers": [{"member": a.member, "option": a.option, "comment": a.comment,
                         "answered_at": a.answered_at.isoformat(),
                         "delivered_at": a.delivered_at.isoformat() if a.delivered_at else None} for a in t.answers],
            "not_answered": list(t.not_answered)}


@app.command("tally")
def tally_ballot(ctx: typer.Context, ballot_id: str = typer.Argument(..., help="The ballot id"),
                 as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Counts per option, who answered what and when, who has not answered, and whether the ballot is open."""
    fmt = output_format(as_json, as_csv)
    b = bus(ctx)
    store = _ballot_store(b)
    try:
        ballot = store.ballot(ballot_id)
        # Answers `lienthong inbox read` took from the inbox before the projector did (verified when stored).
        replay_agency_inbox(b.settings.inbox_dir, ballot.sender, BallotProjector(store), b.envelopes)
        result = tally(ballot, store.answers(ballot_id), utc_now())
    finally:
        store.close()
    if fmt == "json":
        emit_json(tally_json(result))
        return
    by_member = {a.member: a for a in result.answers}
    columns = ["member", "answer", "comment", "answered_at", "delivered_at"]
    rows: list[list[Any]] = [[m, by_member[m].option, by_member[m].comment, by_member[m].answered_at,
                              by_member[m].delivered_at] if m in by_member else [m, "", "", None, None]
                             for m in ballot.members]
    if fmt == "csv":
        emit_rows(columns, rows, "csv")
        return
    deadline = f"{'closed at' if result.closed else 'open until'} {_when(ballot.deadline)} (UTC+7)"
    out.print(f"ballot {ballot.ballot_id}: {ballot.question}")
    out.print(f"{deadline}; {len(result.answers)} of {len(ballot.members)} members answered")
    table(None, ["option", "count"], [[o, n] for o, n in result.counts.items()])
    table(None, ["member", "answer", "comment", "answered at (UTC+7)"],
          [[m, by_member[m].option, by_member[m].comment, _when(by_member[m].answered_at)] if m in by_member
           else [m, "(not answered)", "", ""] for m in ballot.members])
