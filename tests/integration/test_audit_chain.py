"""The tamper-evident audit store on SQLite and on a real PostgreSQL: each way of tampering, done with SQL,
gives its exact finding."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from lienthong.audit.chain import Problem, link
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.store import AuditStore
from lienthong.certificates import BusCA
from lienthong.codec import SingleObjectCodec
from lienthong.schemas import SchemaSet
from lienthong.signing import Signer

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec(SchemaSet())
T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
ROWS = 2500  # checkpoints at 1000 and 2000


def events(n: int, start: int = 0) -> list[AuditEvent]:
    kinds = [AuditEventType.SUBMITTED, AuditEventType.ROUTED, AuditEventType.DELIVERED, AuditEventType.STATUS]
    return [AuditEvent(event_id=f"t.ingress/0/{i}/{kinds[i % 4].value}/-", event=kinds[i % 4],
                       at=T0 + dt.timedelta(milliseconds=i), message_id=f"m{i // 4}", root_id=f"doc-{i // 40}",
                       kind="DOCUMENT", sender="000.00.00.G22", recipient="000.00.00.G06",
                       status="03" if i % 4 == 3 else None, reason="Sai thẩm quyền" if i % 97 == 0 else None,
                       source_topic="t.ingress", source_partition=0, source_offset=i)
            for i in range(start, start + n)]


@pytest.fixture
def chain(database_url: str) -> tuple[AuditStore, BusCA]:
    ca = BusCA.create()
    store = AuditStore(database_url, CODEC, Signer(ca.key, ca.certificate), checkpoint_rows=1000)
    batch = 300
    for start in range(0, ROWS, batch):
        store.add(events(min(batch, ROWS - start), start))
    return store, ca


def sql(store: AuditStore, *statements: str, **params: object) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def finding(store: AuditStore, ca: BusCA) -> tuple[Problem, int, str]:
    """The one finding; checked in one process and in three parallel ranges, which must agree."""
    report = store.verify(ca.certificate, CODEC, workers=1)
    assert len(report.findings) == 1, report.findings
    parallel = store.verify(ca.certificate, CODEC, workers=3)
    assert parallel.findings == report.findings
    first = report.findings[0]
    return first.problem, first.seq, first.detail


def test_an_untouched_chain_verifies(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    report = store.verify(ca.certificate, CODEC)
    assert report.ok and report.rows == ROWS and report.checkpoints == 2
    assert store.verify(ca.certificate, CODEC, workers=3) == report
    assert report.last_checkpoint_seq == 2000 and report.uncovered == 500
    assert store.add(events(10)) == 0, "replayed events are not chained twice"


def test_a_changed_row_is_named(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "UPDATE audit_events SET recipient = '000.00.00.H29' WHERE seq = 1500")
    assert finding(store, ca)[:2] == (Problem.CHANGED, 1500)


def test_a_deleted_row_is_named(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "DELETE FROM audit_events WHERE seq = 1500")
    assert finding(store, ca)[:2] == (Problem.DELETED, 1500)


def test_a_deleted_row_is_named_even_when_the_rest_are_renumbered(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "DELETE FROM audit_events WHERE seq = 1500",
        "UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 1500", "UPDATE audit_events SET seq = -seq WHERE seq < 0")
    assert finding(store, ca)[:2] == (Problem.DELETED, 1500)


def test_an_inserted_row_is_named(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    with store.engine.connect() as conn:
        before = conn.execute(text("SELECT row_hash FROM audit_events WHERE seq = 1499")).scalar_one()
    forged = events(1, start=90_000)[0]
    values = (forged.event_id, "DELIVERED", 1, "m-forged", "doc-x", "DOCUMENT", "000.00.00.G22",
              "000.00.00.H29", None, None, None, "t.ingress", 0, 90_000, None)
    row_hash = link(bytes(before), values)  # a careful forger links the new row to its predecessor
    sql(store, "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 1500",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0")
    sql(store, "INSERT INTO audit_events (seq, event_id, event, at_ms, message_id, root_id, kind, sender, recipient, "
               "status, reason_code, reason, source_topic, source_partition, source_offset, content_sha256, "
               "prev_hash, row_hash) VALUES (1500, :e, 'DELIVERED', 1, 'm-forged', 'doc-x', 'DOCUMENT', "
               "'000.00.00.G22', '000.00.00.H29', NULL, NULL, NULL, 't.ingress', 0, 90000, NULL, :p, :h)",
        e=forged.event_id, p=bytes(before), h=row_hash)
    assert finding(store, ca)[:2] == (Problem.INSERTED, 1500)


def test_reordered_rows_are_named(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "UPDATE audit_events SET seq = -1 WHERE seq = 1500",
        "UPDATE audit_events SET seq = 1500 WHERE seq = 1501",
        "UPDATE audit_events SET seq = 1501 WHERE seq = -1")
    assert finding(store, ca)[:2] == (Problem.REORDERED, 1500)


def test_a_rewritten_chain_is_caught_by_the_next_signed_checkpoint(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "UPDATE audit_events SET recipient = '000.00.00.H29' WHERE seq = 1500")
    rows = list(store.chain_rows(first=1499, last=ROWS))
    prev = rows[0].row_hash
    with store.engine.begin() as conn:  # the forger recomputes every hash after the change
        for row in rows[1:]:
            new = link(prev, row.values)
            conn.execute(text("UPDATE audit_events SET prev_hash = :p, row_hash = :h WHERE seq = :s"),
                         {"p": prev, "h": new, "s": row.seq})
            prev = new
    problem, seq, detail = finding(store, ca)
    assert (problem, seq) == (Problem.CHECKPOINT, 2000) and "rewritten" in detail


def test_a_forged_checkpoint_signature_is_caught(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    other = BusCA.create()
    with store.engine.connect() as conn:
        statement = conn.execute(text("SELECT statement FROM audit_checkpoints WHERE seq = 1000")).scalar_one()
    forged = Signer(other.key, other.certificate).sign(bytes(statement))  # same statement, another key
    sql(store, "UPDATE audit_checkpoints SET signature = :s WHERE seq = 1000", s=forged)
    problem, seq, detail = finding(store, ca)
    assert (problem, seq) == (Problem.CHECKPOINT, 1000) and "signature" in detail


def test_rows_cut_off_at_the_end_are_caught(chain: tuple[AuditStore, BusCA]) -> None:
    store, ca = chain
    sql(store, "DELETE FROM audit_events WHERE seq > 2400")
    assert finding(store, ca)[:2] == (Problem.DELETED, 2401)
