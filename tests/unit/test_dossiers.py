"""Dossier status: the date and batch rules, the wire round trip, the router's verdict, and latest-wins."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from consumers.dossier_projector import DossierProjector, DossierStore
from lienthong.cli.dossier_cmd import read_events
from lienthong.dossiers import DossierStatus, DossierStatusBatch, DossierStatusEvent
from lienthong.errors import DecodingError, LienthongError, Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.records import SIGNED_CONTENT, message_model, message_record
from lienthong.reports import VIETNAM
from router.decisions import Accepted, Rejected, decide
from tests.support import OFFICE, PROVINCE, envelopes, make_pki

ENV = envelopes()
SKEW = dt.timedelta(minutes=5)
T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=VIETNAM)


def event(code: str = "000.00.07.H29-261102-0001", status: str = "RECEIVED", at: dt.datetime = T0,
          **changes: Any) -> DossierStatusEvent:
    fields: dict[str, Any] = dict(dossier_code=code, procedure_code="1.004227.000.00.00.H29", field="Hộ tịch",
                                  owner_kind="CITIZEN", received_date=dt.date(2026, 11, 2),
                                  due_date=dt.date(2026, 11, 20), status=status,
                                  handling_unit="UBND phường Hàng Bạc", handler="Nguyễn Thị Lan", time=at)
    return DossierStatusEvent(**(fields | changes))


def batch(*events: DossierStatusEvent, tag: str = "b1") -> DossierStatusBatch:
    return DossierStatusBatch(batch_id=f"{PROVINCE},{tag}", events=events)


def reason_of(exc: pydantic.ValidationError) -> Reason | None:
    cause = exc.errors()[0].get("ctx", {}).get("error")
    return cause.reason if isinstance(cause, LienthongError) else None


# --- date rules ---

@pytest.mark.parametrize(("changes", "words"), [
    ({"received_date": dt.date(1999, 12, 31)}, "before 2000-01-01"),
    ({"due_date": dt.date(2026, 11, 1)}, "due date 2026-11-01 is before its received date"),
    ({"time": dt.datetime(2026, 11, 1, 16, 59, tzinfo=dt.UTC)}, "status time 2026-11-01 is before its received"),
])
def test_impossible_dates_are_refused_with_their_reason(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        event(**changes)
    assert reason_of(caught.value) is Reason.IMPOSSIBLE_DATE
    assert words in str(caught.value)


def test_the_status_day_is_the_day_in_vietnam() -> None:
    # 17:00 UTC on 1 November is midnight of 2 November in Vietnam: the day it was received.
    assert event(time=dt.datetime(2026, 11, 1, 17, 0, tzinfo=dt.UTC)).time.astimezone(VIETNAM).day == 2
    assert event(due_date=None).due_date is None
    assert event(due_date=dt.date(2026, 11, 2)).due_date == dt.date(2026, 11, 2), "due the day it came is possible"


def test_a_time_without_an_offset_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        event(at=dt.datetime(2026, 11, 3, 9, 0))


def test_codes_and_units_must_be_given() -> None:
    for changes in ({"dossier_code": "  "}, {"handling_unit": ""}, {"procedure_code": ""}, {"status": "DONE"},
                    {"owner_kind": "ALIEN"}):
        with pytest.raises(pydantic.ValidationError):
            event(**changes)


# --- batch rules ---

def test_a_batch_id_names_its_sender_and_something_unique() -> None:
    assert batch(event()).sender == PROVINCE
    for bad in ("H29,b1", f"{PROVINCE}", f"{PROVINCE},", f"{PROVINCE}, "):
        with pytest.raises(pydantic.ValidationError):
            DossierStatusBatch(batch_id=bad, events=(event(),))


def test_a_batch_holds_at_least_one_event() -> None:
    with pytest.raises(pydantic.ValidationError):
        DossierStatusBatch(batch_id=f"{PROVINCE},empty", events=())


def _message(payload: DossierStatusBatch, created_at: dt.datetime | None = None) -> Message:
    header = MessageHeader(kind=MessageKind.DOSSIER_STATUS, sender=PROVINCE, recipients=(OFFICE,),
                           root_id=payload.batch_id, created_at=created_at or utc_now())
    return Message.model_construct(header=header, payload=payload)


def test_a_batch_travels_exactly() -> None:
    sent = batch(event(), event(code="X-2", status="IN_PROGRESS", due_date=None, handler=""))
    message = _message(sent)
    back = message_model(ENV.codec.decode(ENV.codec.encode(SIGNED_CONTENT, message_record(message)), SIGNED_CONTENT))
    assert back.payload == sent and back.header == message.header


def test_a_batch_with_one_impossible_date_cannot_be_decoded_as_a_whole() -> None:
    bad = event(code="BAD-1").model_copy(update={"due_date": dt.date(2026, 10, 1)})  # skips validation
    sent = DossierStatusBatch.model_construct(batch_id=f"{PROVINCE},b2", events=(event(), bad, event(code="C")))
    wire = ENV.codec.encode(SIGNED_CONTENT, message_record(_message(sent)))
    with pytest.raises(DecodingError) as caught:
        message_model(ENV.codec.decode(wire, SIGNED_CONTENT))
    assert caught.value.reason is Reason.IMPOSSIBLE_DATE
    assert "events.1" in caught.value.message and "BAD-1" in caught.value.message


def test_the_router_accepts_a_batch_and_refuses_one_with_an_impossible_date() -> None:
    pki, view = make_pki()
    now = dt.datetime.now(dt.UTC)
    received = {"received_date": now.date() - dt.timedelta(days=2), "due_date": None}
    good = ENV.seal(_message(batch(event(at=now - dt.timedelta(hours=1), **received))), pki.signers[PROVINCE])
    decision = decide(good, view, ENV, now, SKEW)
    assert isinstance(decision, Accepted) and decision.recipients == (OFFICE,)

    future = event(at=now + dt.timedelta(hours=2), **received)
    rejected = decide(ENV.seal(_message(batch(future)), pki.signers[PROVINCE]), view, ENV, now, SKEW)
    assert isinstance(rejected, Rejected) and rejected.reason is Reason.IMPOSSIBLE_DATE
    assert "in the future" in rejected.detail

    bad = event().model_copy(update={"received_date": dt.date(1990, 1, 1)})
    sent = DossierStatusBatch.model_construct(batch_id=f"{PROVINCE},b3", events=(bad,))
    decided = decide(ENV.seal(_message(sent), pki.signers[PROVINCE]), view, ENV, now, SKEW)
    assert isinstance(decided, Rejected) and decided.reason is Reason.IMPOSSIBLE_DATE


def test_a_batch_under_another_portals_name_is_refused() -> None:
    pki, view = make_pki()
    sent = DossierStatusBatch(batch_id=f"{OFFICE},b4", events=(event(),))
    decision = decide(ENV.seal(_message(sent), pki.signers[PROVINCE]), view, ENV, dt.datetime.now(dt.UTC), SKEW)
    assert isinstance(decision, Rejected) and decision.reason in (Reason.KEY_MISMATCH, Reason.SENDER_MISMATCH)


# --- latest wins ---

@pytest.fixture
def store(tmp_path: Path) -> DossierStore:
    return DossierStore(f"sqlite:///{tmp_path / 'projections.db'}")


def _project(store: DossierStore, *batches: tuple[DossierStatusBatch, str]) -> DossierProjector:
    projector = DossierProjector(store)
    for sent, message_id in batches:
        projector(Message.model_construct(header=MessageHeader(
            message_id=message_id, kind=MessageKind.DOSSIER_STATUS, sender=PROVINCE, recipients=(OFFICE,),
            root_id=sent.batch_id, created_at=utc_now()), payload=sent))
    return projector


def test_the_latest_event_time_wins_whatever_the_order_of_arrival() -> None:
    steps = [event(status="RECEIVED", at=T0), event(status="IN_PROGRESS", at=T0 + dt.timedelta(hours=1)),
             event(status="SUPPLEMENT_REQUESTED", at=T0 + dt.timedelta(days=1)),
             event(status="IN_PROGRESS", at=T0 + dt.timedelta(days=2), handler="Trần Văn Minh")]
    tables = set()
    for order in itertools.permutations(steps):
        store = DossierStore("sqlite:///:memory:")
        _project(store, *[(batch(e, tag=f"t{i}"), "m") for i, e in enumerate(order)])
        state = store.get(steps[0].dossier_code)
        assert state is not None and state.status is DossierStatus.IN_PROGRESS and state.handler == "Trần Văn Minh"
        assert [s.status.value for s in store.steps(steps[0].dossier_code)] == [
            "RECEIVED", "IN_PROGRESS", "SUPPLEMENT_REQUESTED", "IN_PROGRESS"]
        tables.add(json.dumps([{k: v for k, v in r.items() if k != "batch_id"} for r in store.table()],
                              default=str))
        store.close()
    assert len(tables) == 1, "every order of arrival gives the same row"


def test_a_late_event_changes_nothing_and_a_repeat_changes_nothing(store: DossierStore) -> None:
    newer = batch(event(status="RESULT_READY", at=T0 + dt.timedelta(days=3)), tag="new")
    _project(store, (newer, "m-new"))
    before = store.table()
    _project(store, (batch(event(status="IN_PROGRESS", at=T0 + dt.timedelta(days=1)), tag="old"), "m-old"))
    _project(store, (newer, "m-new"), (batch(*newer.events, tag="again"), "m-again"))
    assert store.table() == before, "the message it came in is still the first one"
    assert len(store.steps(newer.events[0].dossier_code)) == 2, "each distinct event once"


def test_at_the_same_millisecond_the_status_further_along_wins_in_either_order() -> None:
    received, refused = event(status="RECEIVED"), event(status="REJECTED")
    other_unit = event(status="REJECTED", handling_unit="UBND quận Hoàn Kiếm")
    results = set()
    for order in itertools.permutations([received, refused, other_unit]):
        store = DossierStore("sqlite:///:memory:")
        _project(store, *[(batch(e, tag=f"t{i}"), f"m{i}") for i, e in enumerate(order)])
        state = store.get(received.dossier_code)
        assert state is not None and state.status is DossierStatus.REJECTED
        results.add(state.handling_unit)  # same time, same status: the larger event digest wins
        store.close()
    assert len(results) == 1


def test_one_batch_with_many_events_of_one_dossier(store: DossierStore) -> None:
    events = [event(code=f"D-{n % 50}", status=["RECEIVED", "IN_PROGRESS", "RESULT_READY"][n % 3],
                    at=T0 + dt.timedelta(minutes=n)) for n in range(3000)]
    projector = _project(store, (batch(*events), "m1"))
    assert projector.events == 3000 and store.count() == 50
    state = store.get("D-49")
    assert state is not None and state.time == (T0 + dt.timedelta(minutes=2999)).astimezone(dt.UTC)
    assert store.get("nothing") is None


def test_a_dossier_belongs_to_the_portal_that_reported_it_first(store: DossierStore) -> None:
    _project(store, (batch(event(status="IN_PROGRESS")), "m-province"))
    before, steps = store.table(), store.steps(event().dossier_code)
    takeover = event(status="RESULT_READY", at=T0 + dt.timedelta(days=5), handling_unit="Bộ X")
    other = DossierStatusBatch(batch_id=f"{OFFICE},b9", events=(takeover, event(code="NEW-1")))
    applied = store.apply(other, OFFICE, "m-other")
    assert applied == 1, "only the event about a dossier nobody had reported"
    assert [r for r in store.table() if r["dossier_code"] == event().dossier_code] == before, "nothing changed"
    assert store.steps(event().dossier_code) == steps
    [conflict] = store.conflicts()
    assert (conflict.dossier_code, conflict.portal, conflict.owner_portal, conflict.status, conflict.message_id) == (
        event().dossier_code, OFFICE, PROVINCE, DossierStatus.RESULT_READY, "m-other")
    store.apply(other, OFFICE, "m-other")
    assert len(store.conflicts(event().dossier_code)) == 1, "a repeat is kept once"
    state = store.get("NEW-1")
    assert state is not None and state.portal == OFFICE
    _project(store, (batch(event(status="RESULT_READY", at=T0 + dt.timedelta(days=6))), "m-later"))
    latest = store.get(event().dossier_code)
    assert latest is not None and latest.status is DossierStatus.RESULT_READY and latest.portal == PROVINCE


def test_the_event_digest_frames_each_field() -> None:
    from consumers.dossier_projector import event_digest

    one = event(handling_unit="a\x1fb", handler="c")
    two = event(handling_unit="a", handler="b\x1fc")
    assert event_digest(one) != event_digest(two)
    assert event_digest(one) == event_digest(event(handling_unit="a\x1fb", handler="c"))


def test_days_overdue(store: DossierStore) -> None:
    _project(store, (batch(event(code="A", status="IN_PROGRESS"),
                           event(code="B", status="RETURNED", at=dt.datetime(2026, 11, 22, 8, tzinfo=VIETNAM))),
                     "m1"))
    a, b = store.get("A"), store.get("B")
    assert a is not None and b is not None
    assert a.days_overdue(dt.date(2026, 11, 20)) == 0 and a.days_overdue(dt.date(2026, 11, 23)) == 3
    assert b.days_overdue(dt.date(2027, 1, 1)) == 2, "finished two days late, and no later"


# --- the file a portal publishes ---

def test_every_line_is_checked_and_the_bad_one_is_named(tmp_path: Path) -> None:
    good = event().model_dump(mode="json")
    path = tmp_path / "events.jsonl"
    bad = good | {"due_date": "2026-10-01"}
    path.write_text("\n".join(json.dumps(v) for v in (good, good, bad)) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        read_events(path, dt.datetime.now(dt.UTC), SKEW)
    assert caught.value.reason is Reason.IMPOSSIBLE_DATE
    assert "events.jsonl line 3" in caught.value.message and "nothing was sent" in caught.value.message

    later = good | {"time": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()}
    path.write_text(json.dumps(later) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"line 1: .* in the future"):
        read_events(path, dt.datetime.now(dt.UTC), SKEW)


def test_a_csv_file_with_a_header_row(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    names = list(DossierStatusEvent.model_fields)
    row = event(due_date=None).model_dump(mode="json")
    path.write_text(",".join(names) + "\n" + ",".join(str(row[n] or "") for n in names) + "\n", encoding="utf-8")
    [read] = read_events(path, dt.datetime.now(dt.UTC), SKEW)
    assert read == event(due_date=None)
    path.write_text(",".join(names) + "\n" + ",".join(str(row[n] or "") for n in names).replace("CITIZEN", "X")
                    + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="line 2: owner_kind"):
        read_events(path, dt.datetime.now(dt.UTC), SKEW)
    path.write_text(",".join(names).replace("handler", "officer") + "\n" + ",".join(str(row[n] or "") for n in names)
                    + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"line 2: unknown field\(s\) officer"):
        read_events(path, dt.datetime.now(dt.UTC), SKEW)
