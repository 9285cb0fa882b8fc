"""Dossier status on the real broker: portals publish batches, the national portal projects the latest status of
every dossier, late and repeated events change nothing, a batch with an impossible date is refused as a whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.dossier_projector import DossierProjector, DossierStore, metadata
from consumers.receiver import Receiver
from lienthong.audit.events import AuditEventType
from lienthong.dossiers import DossierStatus, DossierStatusBatch, DossierStatusEvent
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.reports import VIETNAM
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, OFFICE, PROVINCE

pytestmark = pytest.mark.integration
NATIONAL = OFFICE  # the Government Office runs the National Public Service Portal


def event(code: str, status: str, hours_ago: float, **changes: Any) -> DossierStatusEvent:
    now = dt.datetime.now(VIETNAM).replace(microsecond=0)
    fields: dict[str, Any] = dict(
        dossier_code=code, procedure_code="1.004227.000.00.00.H29", field="Hộ tịch", owner_kind="CITIZEN",
        received_date=now.date() - dt.timedelta(days=3), due_date=now.date() + dt.timedelta(days=7), status=status,
        handling_unit="UBND phường Hàng Bạc", handler="Nguyễn Thị Lan", time=now - dt.timedelta(hours=hours_ago))
    return DossierStatusEvent(**(fields | changes))


def test_portals_report_and_the_latest_status_stands(harness: BusHarness, database_url: str) -> None:
    harness.add_agencies([NATIONAL, PROVINCE, MINISTRY_A])
    harness.start_router()
    harness.start_projector()
    province, ministry = harness.gateway(PROVINCE), harness.gateway(MINISTRY_A)
    store = DossierStore(database_url)
    projector = DossierProjector(store)
    receiver = Receiver.connect(harness.bus, NATIONAL, handlers=[projector])
    harness.closers.extend([receiver.close, store.close])

    first = DossierStatusBatch(batch_id=f"{PROVINCE},b1", events=(
        event("D-1", "RECEIVED", 50), event("D-1", "IN_PROGRESS", 40), event("D-2", "RECEIVED", 30)))
    sent = [province.send(first, [NATIONAL])]
    wait_for("the first batch projected", lambda: receiver.poll(200) is not None and projector.batches >= 1)
    # Another portal reports D-1, which the province reported first, finished later than anything else: a dossier
    # belongs to its first portal, so this changes nothing and is kept as a conflict.
    done = event("D-1", "RESULT_READY", 1, handling_unit="Bộ Tài chính", handler="")
    sent.append(ministry.send(DossierStatusBatch(batch_id=f"{MINISTRY_A},m1", events=(done,)), [NATIONAL]))
    # Then, late: an older step of D-1 the province had not sent yet; and the first batch again, as new messages.
    late = event("D-1", "SUPPLEMENT_REQUESTED", 20)
    sent.append(province.send(DossierStatusBatch(batch_id=f"{PROVINCE},b2", events=(late,)), [NATIONAL]))
    sent.append(province.send(DossierStatusBatch(batch_id=f"{PROVINCE},b1-again", events=first.events), [NATIONAL]))
    assert len({s.message_id for s in sent}) == 4

    # A batch with an impossible date in its second event: built around the gateway's own check, signed as sent.
    bad = event("D-9", "RECEIVED", 2).model_copy(update={"due_date": dt.date(2001, 1, 1)})
    refused = DossierStatusBatch.model_construct(batch_id=f"{PROVINCE},bad", events=(event("D-3", "RECEIVED", 2), bad))
    header = MessageHeader(kind=MessageKind.DOSSIER_STATUS, sender=PROVINCE, recipients=(NATIONAL,),
                           root_id=refused.batch_id, created_at=utc_now())
    refused_sent = province.publish(Message.model_construct(header=header, payload=refused))

    wait_for("four batches projected", lambda: receiver.poll(200) is not None and projector.batches >= 4)
    state = store.get("D-1")
    assert state is not None and state.status is DossierStatus.SUPPLEMENT_REQUESTED
    assert (state.portal, state.message_id) == (PROVINCE, sent[2].message_id), "the other portal changed nothing"
    [conflict] = store.conflicts("D-1")
    assert (conflict.portal, conflict.owner_portal, conflict.message_id) == (MINISTRY_A, PROVINCE, sent[1].message_id)
    d2 = store.get("D-2")
    assert d2 is not None and d2.message_id == sent[0].message_id, "the repeat changed nothing, not even the message"
    assert [s.status.value for s in store.steps("D-1")] == [
        "RECEIVED", "IN_PROGRESS", "SUPPLEMENT_REQUESTED"], "each distinct event once"

    [dlq] = harness.read_topic(harness.bus.topics.dlq, 1)
    assert dlq.headers["lienthong_reason_code"] == b"impossible-date"
    assert b"D-9" in dlq.headers["lienthong_reason"]
    # Refused while decoding, but its signature held: the audit row names the portal's message and batch.
    audited = wait_for("the refusal in the audit store", lambda: [
        e for e in harness.audit.events() if e.event is AuditEventType.REJECTED])
    assert [e.reason_code for e in audited] == ["impossible-date"]
    assert (audited[0].message_id, audited[0].root_id, audited[0].sender) == (
        refused_sent.message_id, refused.batch_id, PROVINCE)
    assert "events.1: dossier D-9: due date 2001-01-01 is before" in (audited[0].reason or "")
    assert receiver.poll(500) == [], "nothing of the refused batch reached the national portal"
    assert store.get("D-3") is None and store.get("D-9") is None, "its other events were not applied either"

    # A replay of everything the national portal received gives the same table.
    table = store.table()
    metadata.drop_all(store.engine)
    again = DossierStore(database_url)
    harness.closers.append(again.close)
    replayed = [harness.bus.envelopes.decode_content(harness.bus.envelopes.read(raw))
                for raw in receiver.store.signed_messages(MessageKind.DOSSIER_STATUS.value)]
    assert DossierProjector(again).replay(replayed) == 7, "the other portal's event is a conflict again"
    assert again.table() == table


def test_a_portal_publishes_a_file_and_a_citizen_asks_where_the_dossier_is(harness: BusHarness,
                                                                          tmp_path: Path) -> None:
    harness.add_agencies([NATIONAL, PROVINCE])
    harness.start_router()
    settings = harness.bus.settings
    env = {**os.environ, "LIENTHONG_HOME": str(settings.home), "LIENTHONG_BOOTSTRAP": settings.bootstrap,
           "LIENTHONG_TOPIC_PREFIX": settings.topic_prefix, "COLUMNS": "200",
           "LIENTHONG_PROJECTIONS_URL": f"sqlite:///{tmp_path / 'projections.db'}"}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lienthong", "dossier", *args], env=env, capture_output=True,
                                text=True, timeout=120)
        assert (result.returncode == 0) == ok, f"{args}: {result.returncode} {result.stderr}{result.stdout}"
        return result

    events = [event("H29-0001", "RECEIVED", 30), event("H29-0001", "IN_PROGRESS", 20, handler="Trần Văn Minh"),
              event("H29-0002", "RECEIVED", 10), event("H29-0003", "RECEIVED", 80, due_date=None),
              event("H29-0003", "REJECTED", 70, due_date=None)]
    path = tmp_path / "events.jsonl"
    bad = {**events[0].model_dump(mode="json"), "received_date": "1999-05-01"}
    path.write_text("\n".join(json.dumps(e.model_dump(mode="json")) for e in events[:2]) + "\n" + json.dumps(bad)
                    + "\n", encoding="utf-8")
    refused = cli("publish", "--from", PROVINCE, "--to", NATIONAL, "--file", str(path), ok=False)
    assert "events.jsonl line 3" in refused.stderr and "nothing was sent" in refused.stderr

    path.write_text("\n".join(json.dumps(e.model_dump(mode="json")) for e in events) + "\n", encoding="utf-8")
    published = cli("publish", "--from", PROVINCE, "--to", NATIONAL, "--file", str(path), "--batch-size", "2")
    assert "sent 5 events in 3 signed batch(es)" in published.stdout
    # `lienthong inbox read` (a receiver without the projector, in the same consumer group) takes the batches
    # first and commits their offsets: `dossier project` still projects them, from the inbox store.
    reader = Receiver.connect(harness.bus, NATIONAL)
    try:
        taken: list[str] = []
        wait_for("the inbox reader took the three batches",
                 lambda: taken.extend(r.kind for r in reader.poll(200)) or taken.count("dossier_status") >= 3)
    finally:
        reader.close()
    projected = cli("project", "--agency", NATIONAL, "--once", "--wait", "2")
    assert "projected 5 events in 3 batch(es); 3 dossiers known" in projected.stdout
    again = cli("project", "--agency", NATIONAL, "--once", "--wait", "1")
    assert "projected 0 events in 0 batch(es); 3 dossiers known" in again.stdout, "each stored batch once"

    shown = json.loads(cli("show", "H29-0001", "--json").stdout)
    assert shown["status"] == "IN_PROGRESS" and shown["handler"] == "Trần Văn Minh" and shown["portal"] == PROVINCE
    assert shown["overdue"] is False and [s["status"] for s in shown["steps"]] == ["RECEIVED", "IN_PROGRESS"]
    text = cli("show", "H29-0003").stdout
    assert "refused (Từ chối giải quyết)" in text and "no due date" in text
    missing = cli("show", "H29-9999", ok=False)
    assert missing.returncode == 1 and "no dossier H29-9999" in missing.stderr


def test_dossier_show_applies_what_inbox_read_stored(harness: BusHarness, tmp_path: Path) -> None:
    harness.add_agencies([NATIONAL, PROVINCE])
    harness.start_router()
    settings = harness.bus.settings
    env = {**os.environ, "LIENTHONG_HOME": str(settings.home), "LIENTHONG_BOOTSTRAP": settings.bootstrap,
           "LIENTHONG_TOPIC_PREFIX": settings.topic_prefix, "COLUMNS": "200",
           "LIENTHONG_PROJECTIONS_URL": f"sqlite:///{tmp_path / 'projections.db'}"}
    sent = harness.gateway(PROVINCE).send(DossierStatusBatch(batch_id=f"{PROVINCE},s1", events=(
        event("H29-0100", "RECEIVED", 5), event("H29-0100", "IN_PROGRESS", 4))), [NATIONAL])
    reader = Receiver.connect(harness.bus, NATIONAL)  # what `lienthong inbox read` does, no projector
    try:
        wait_for("the batch in the inbox store", lambda: any(r.kind == "dossier_status" for r in reader.poll(200)))
    finally:
        reader.close()
    result = subprocess.run([sys.executable, "-m", "lienthong", "dossier", "show", "H29-0100", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["status"], shown["message_id"], shown["conflicts"]) == ("IN_PROGRESS", sent.message_id, [])
