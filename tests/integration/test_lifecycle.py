"""A document's lifecycle on the real broker: revoke, update and replace, the answers 15 and 16, the state machine
the router enforces (each refusal with its reason code in the audit store and the DLQ), and what `lienthong audit
show` and the receiver's store make of it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pydantic
import pytest
from typer.testing import CliRunner

from consumers.inbox_store import InboxStore
from consumers.receiver import Received, Receiver
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.queries import EventFilter, find
from lienthong.audit.timeline import Timeline, build_timeline
from lienthong.cli.main import app
from lienthong.documents import BusinessType
from lienthong.errors import Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.notices import StatusCode, StatusNotice
from producers.builder import lifecycle_document
from producers.gateway import Gateway, Sent
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE, document

pytestmark = pytest.mark.integration
S = StatusCode


def request(gateway: Gateway, kind: BusinessType, root: str, to: Sequence[str], number: str,
            reason: str = "Sai sót về số liệu tại phụ lục") -> Sent:
    doc = lifecycle_document(gateway.sender, kind, root, reason=reason, recipients=to, number=number,
                             notation="VPCP-TTĐT")
    return gateway.send_document(doc, to, root_id=root)


def forged_notice(gateway: Gateway, receiver: Receiver, root: str, status: StatusCode,
                  reason: str | None = None) -> Sent:
    """A notice the receiver's own check would refuse, signed and published by the gateway all the same. Built
    with model_construct and published without the gateway's model check, so that even a 02 without a reason
    reaches the router, as from a gateway that skips the model."""
    stored = receiver.store.document(root)
    notice = StatusNotice.model_construct(document_id=root, document_message_id=stored.message_id,
                                          document_digest=stored.digest, status=status, staff="", description="",
                                          reason=reason, time=utc_now())
    header = MessageHeader(kind=MessageKind.STATUS_NOTICE, sender=gateway.sender, recipients=(stored.sender,),
                           root_id=root, created_at=utc_now())
    return gateway.publish(Message.model_construct(header=header, payload=notice))


def read(receiver: Receiver, count: int, what: str) -> list[Received]:
    items: list[Received] = []
    wait_for(what, lambda: items.extend(receiver.poll(200)) or len(items) >= count)
    return items


def settled(harness: BusHarness, root: str, states: dict[str, str], rejections: int = 0) -> Timeline:
    def probe() -> Timeline | None:
        harness.services.check()
        t = build_timeline(root, harness.audit.events(root))
        return t if t.states == states and len(t.rejections) >= rejections else None
    try:
        return wait_for(f"the audit to show {states}", probe)
    except AssertionError:
        t = build_timeline(root, harness.audit.events(root))
        raise AssertionError(f"audit states {t.states}, {len(t.rejections)} rejections; wanted {states}") from None


def test_revoke_update_and_replace_with_their_answers(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B])
    harness.start_router()
    harness.start_projector()
    office = harness.gateway(OFFICE)
    doc = document()
    root = doc.document_id
    original = office.send_document(doc, [MINISTRY_A, MINISTRY_B])
    a, b = harness.receiver(MINISTRY_A), harness.receiver(MINISTRY_B)
    for r in (a, b):
        assert [i.kind for i in read(r, 1, "the document")] == ["document"]
        assert r.store.story_state(root) is S.ARRIVED, "01 sent on arrival"
    a.reply(root, S.ACCEPTED)

    # Revoke, to the first ministry only: 13 for it, no automatic 01; it agrees.
    revoke = request(office, BusinessType.REVOKE, root, [MINISTRY_A], "9001")
    [item] = read(a, 1, "the revoke at the first ministry")
    assert item.kind == "document" and item.message is not None and item.message.header.root_id == root
    stored = a.store.document(revoke.message_id)
    assert stored.root_id == root and stored.business_type == BusinessType.REVOKE and stored.last_status is None
    assert json.loads((stored.folder / "header.json").read_text(encoding="utf-8"))["root_id"] == root
    assert a.store.story_state(root) is S.RECALL_REQUESTED
    with pytest.raises(ValidationError, match="03 follows arrival only"):
        a.reply(root, S.ACCEPTED)
    agreed = a.reply(root, S.RECALL_AGREED, reason="Đồng ý thu hồi", staff="Văn thư")
    assert a.store.story_state(root) is S.RECALL_AGREED

    # Update, to the second: it refuses.
    request(office, BusinessType.UPDATE, root, [MINISTRY_B], "9002", reason="Bổ sung căn cứ")
    read(b, 1, "the update at the second ministry")
    refused = b.reply(root, S.RECALL_REFUSED, reason="Đã triển khai")

    # Replace, to both: a new delivery, acknowledged 01 by each; handling starts over.
    replacement = request(office, BusinessType.REPLACE, root, [MINISTRY_A, MINISTRY_B], "9003",
                          reason="Thay thế do sai sót")
    for r in (a, b):
        read(r, 1, "the replacement")
        assert r.store.story_state(root) is S.ARRIVED
        assert r.store.document(root).message_id == replacement.message_id, "the root names the latest delivery"
    a.reply(root, S.ACCEPTED)

    notices = [i.message for i in read(harness.receiver(OFFICE), 8, "eight notices at the office") if i.message]
    assert all(n.payload.document_id == root and n.header.root_id == root for n in notices)  # type: ignore[union-attr]
    by_id = {n.header.message_id: n.payload for n in notices}
    assert by_id[agreed.message_id].document_message_id == revoke.message_id  # type: ignore[union-attr]
    assert by_id[refused.message_id].status is S.RECALL_REFUSED  # type: ignore[union-attr]
    assert sum(1 for n in notices if n.payload.document_message_id == original.message_id) == 3  # type: ignore

    timeline = settled(harness, root, {MINISTRY_A: "03", MINISTRY_B: "01"})
    assert [s.status.value for s in timeline.recipients[MINISTRY_A].steps] == ["01", "03", "13", "15", "01", "03"]
    assert [s.status.value for s in timeline.recipients[MINISTRY_B].steps] == ["01", "13", "16", "01"]
    assert timeline.recipients[MINISTRY_B].steps[1].reason == "Bổ sung căn cứ", "13 carries the business reason"
    assert timeline.message_id == original.message_id and not timeline.rejections
    assert timeline.waiting == [MINISTRY_B]


def rejected(harness: BusHarness, message_ids: set[str]) -> dict[str, AuditEvent]:
    """The REJECTED audit events of these messages, once the projector has stored them all. A message whose
    content breaks the model is still found by its message id: the router records the signed header of a message
    whose signature held."""
    events: dict[str, AuditEvent] = {}

    def probe() -> bool:
        harness.services.check()
        events.update({e.message_id: e for e in find(harness.audit, EventFilter(event=AuditEventType.REJECTED))
                       if e.message_id})
        return message_ids <= set(events)
    wait_for(f"{len(message_ids)} rejections in the audit store", probe)
    return {m: events[m] for m in message_ids}


def test_the_router_refuses_senseless_transitions_and_strangers(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    harness.start_router()
    harness.start_projector()
    office, gateway_a, gateway_b = harness.gateway(OFFICE), harness.gateway(MINISTRY_A), harness.gateway(MINISTRY_B)
    doc = document()
    root = doc.document_id
    office.send_document(doc, [MINISTRY_A, MINISTRY_B])
    a, b = harness.receiver(MINISTRY_A), harness.receiver(MINISTRY_B)
    for r in (a, b):
        read(r, 1, "the document")
    expected: dict[str, Reason] = {}

    # 06 before 03: the receiver refuses it itself; sent anyway, the router refuses it.
    with pytest.raises(ValidationError, match="must be accepted \\(03\\) first") as err:
        a.reply(root, S.COMPLETED)
    assert err.value.reason == Reason.INVALID_TRANSITION
    expected[forged_notice(gateway_a, a, root, S.COMPLETED).message_id] = Reason.INVALID_TRANSITION

    # 02 without a reason: the model refuses it before anything is signed, in the receiver and at the gateway;
    # one published around the model is refused by the router.
    stored = b.store.document(root)
    with pytest.raises(pydantic.ValidationError, match="status 02 \\(rejected\\) requires a reason"):
        b.reply(root, S.REJECTED)
    with pytest.raises(pydantic.ValidationError, match="status 02 \\(rejected\\) requires a reason"):
        gateway_b.send_notice(StatusNotice(document_id=root, document_message_id=stored.message_id,
                                           document_digest=stored.digest, status=S.REJECTED, time=utc_now()), OFFICE)
    forged = forged_notice(gateway_b, b, root, S.REJECTED)
    no_reason = forged.message_id
    expected[no_reason] = Reason.INVALID_TRANSITION

    # Anything after 02: a status, a revoke; then a new delivery starts over and works.
    b.reply(root, S.REJECTED, reason="Không đúng thẩm quyền")
    with pytest.raises(ValidationError, match="takes no further status"):
        b.reply(root, S.ACCEPTED)
    expected[forged_notice(gateway_b, b, root, S.ACCEPTED).message_id] = Reason.INVALID_TRANSITION
    expected[request(office, BusinessType.REVOKE, root, [MINISTRY_B], "9001").message_id] = Reason.INVALID_TRANSITION

    # A revoke of a document the sender never sent; a notice from an agency that never received the document.
    never = document(number="404").document_id
    unknown = request(office, BusinessType.REVOKE, never, [MINISTRY_A], "9002").message_id
    expected[unknown] = Reason.UNKNOWN_DOCUMENT
    stranger = harness.gateway(PROVINCE)
    notice = StatusNotice(document_id=root, document_message_id="x", document_digest=b"\1" * 32, status=S.ARRIVED,
                          time=utc_now())
    expected[stranger.send_notice(notice, OFFICE).message_id] = Reason.NOT_A_PARTY

    events = rejected(harness, set(expected))
    assert {m: Reason(e.reason_code or "") for m, e in events.items()} == expected
    assert "02 (rejected) requires a reason" in (events[no_reason].reason or "")
    assert (events[no_reason].root_id, events[no_reason].sender) == (root, MINISTRY_B)
    assert "never sent through this bus" in (events[unknown].reason or "")
    dlq = harness.read_topic(harness.bus.topics.dlq, len(expected))
    in_dlq = {r.headers["ce_id"].decode(): r.headers["lienthong_reason_code"].decode() for r in dlq}
    assert in_dlq == {m: r.value for m, r in expected.items()}
    assert dlq[[r.headers["ce_id"] for r in dlq].index(forged.message_id.encode())].headers["lienthong_source"] \
        .decode().endswith(f"/{forged.partition}/{forged.offset}")

    # The new delivery after 02 works: stored, acknowledged, accepted.
    again = office.send_document(doc, [MINISTRY_B])
    read(b, 1, "the new delivery")
    assert b.store.document(root).message_id == again.message_id and b.store.story_state(root) is S.ARRIVED
    b.reply(root, S.ACCEPTED)
    timeline = settled(harness, root, {MINISTRY_A: "01", MINISTRY_B: "03"}, rejections=4)
    assert [s.status.value for s in timeline.recipients[MINISTRY_B].steps] == ["01", "02", "01", "03"]
    assert {e.reason_code for e in timeline.rejections} == {"invalid-transition", "not-a-party"}
    never_timeline = build_timeline(never, harness.audit.events(never))
    assert not never_timeline.recipients and never_timeline.rejections[0].reason_code == "unknown-document"


def test_lifecycle_from_the_command_line(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A])
    harness.start_router()
    harness.start_projector()
    settings = harness.bus.settings
    runner = CliRunner()

    def cli(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, ["--home", str(settings.home), "--bootstrap", settings.bootstrap,
                                     "--prefix", settings.topic_prefix, *args], env={"COLUMNS": "250"})
        if ok:
            assert result.exit_code == 0, f"{args}: {result.output} {result.exception!r}"
        return result.output if ok else f"{result.exit_code} {result.exception}"

    base = ["--from", OFFICE, "--to", MINISTRY_A, "--number", "12", "--notation", "VPCP-KSTT"]
    sent = cli("send", *base, "--subject", "Thử nghiệm thu hồi")
    root = sent.split()[1]
    wait_for("the document at the ministry", lambda: root in cli("inbox", "read", MINISTRY_A, "--wait", "1"))
    assert "needs a reason" in cli("send", *base[:4], "--number", "13", "--notation", "VPCP-KSTT",
                                   "--revoke", root, ok=False)
    revoke = cli("send", *base[:4], "--number", "13", "--notation", "VPCP-KSTT", "--revoke", root,
                 "--reason", "Ban hành nhầm")
    assert f"(revoke of {root}: Ban hành nhầm)" in revoke
    seen: list[str] = []
    wait_for("the revoke at the ministry",
             lambda: seen.append(cli("inbox", "read", MINISTRY_A, "--wait", "1")) or "1 new" in seen[-1])
    assert "revoke" in seen[-1] and "Ban hành nhầm" in seen[-1], seen[-1]
    listed = json.loads(cli("inbox", "list", MINISTRY_A, "--json"))["documents"]
    assert [(d["root_id"], d["business_type"], d["story_state"]) for d in listed] == [
        (root, 0, "13 recall/update requested"), (root, 1, "13 recall/update requested")]
    assert "cannot follow 13" in cli("inbox", "reply", MINISTRY_A, root, "03", ok=False)
    assert "sent status 15 recall/update agreed" in cli("inbox", "reply", MINISTRY_A, root, "15", "--reason", "Đồng ý")

    def show() -> str | None:
        result = runner.invoke(app, ["--home", str(settings.home), "--prefix", settings.topic_prefix,
                                     "--bootstrap", settings.bootstrap, "audit", "show", root],
                               env={"COLUMNS": "250"})
        return result.output if result.exit_code == 0 and "15 recall/update agreed" in result.output else None

    output = wait_for("audit show with the answer 15", show)
    flat = " ".join(output.split())  # the table wraps long cells
    assert "01 arrived" in flat and "recall/update requested (Ban hành nhầm)" in flat, output
    assert "delivered again" not in flat, "a revoke's delivery is its request 13"
    assert "every recipient has answered" in output
    as_json = json.loads(cli("audit", "show", root, "--json"))
    assert as_json["states"][MINISTRY_A]["state"] == "15" and as_json["waiting"] == []


def test_an_inbox_from_before_root_ids_keeps_working(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    with sqlite3.connect(folder / "inbox.db") as db:  # the documents table as the first release created it
        db.execute("CREATE TABLE documents (message_id VARCHAR(64) PRIMARY KEY, document_id TEXT NOT NULL, "
                   "sender VARCHAR(16) NOT NULL, subject TEXT NOT NULL, digest BLOB NOT NULL, folder TEXT NOT NULL, "
                   "received_at DATETIME NOT NULL)")
        db.execute("CREATE TABLE sent_statuses (id INTEGER PRIMARY KEY AUTOINCREMENT, document_message_id "
                   "VARCHAR(64) NOT NULL, status VARCHAR(2) NOT NULL, reason TEXT, notice_message_id VARCHAR(64) "
                   "NOT NULL, sent_at DATETIME NOT NULL)")
        db.execute("INSERT INTO documents VALUES ('m1', 'd1', ?, 's', ?, 'f', '2026-11-26 08:00:00')",
                   (OFFICE, b"\0" * 32))
        db.execute("INSERT INTO sent_statuses (document_message_id, status, notice_message_id, sent_at) "
                   "VALUES ('m1', '03', 'n1', '2026-11-26 08:00:01')")
    store = InboxStore(folder)
    stored = store.document("d1")
    assert (stored.root_id, stored.business_type, stored.last_status) == ("d1", BusinessType.NEW, S.ACCEPTED)
    assert stored.received_at.tzinfo == dt.UTC
    assert store.story_state("d1") is S.ACCEPTED, "no story log yet: the last status sent"
    store.record_sent_status("m1", S.ASSIGNED, None, "n2")
    assert store.story_state("d1") is S.ASSIGNED
    store.close()
    store = InboxStore(folder)  # opened again: nothing more to change
    assert store.story_state("d1") is S.ASSIGNED and store.document("m1").root_id == "d1"
    assert [d.root_id for d in store.documents()] == ["d1"]
    store.close()
    with sqlite3.connect(folder / "inbox.db") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(documents)")]
    assert columns[-2:] == ["root_id", "business_type"]
