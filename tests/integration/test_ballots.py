"""Ballots on the real broker: the Office asks three members, two answer, the tally shows it; every answer that
breaks a rule is rejected with its reason on the DLQ and in the audit store; the CLI does the same as a person."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.ballot_projector import BallotProjector, BallotStore
from consumers.projection import replay_inbox
from consumers.receiver import Receiver
from lienthong.audit.events import AuditEventType
from lienthong.ballots import Ballot, BallotAnswer, make_ballot_id, tally
from lienthong.cli.main import app
from lienthong.errors import Reason, ValidationError
from lienthong.messages import utc_now
from lienthong.reports import VIETNAM
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PARTY, PROVINCE

pytestmark = pytest.mark.integration
MEMBERS = (MINISTRY_A, MINISTRY_B, PROVINCE)
OPTIONS = ("Đồng ý", "Không đồng ý", "Ý kiến khác")


def _ballot(number: str, deadline: dt.datetime, members: tuple[str, ...] = MEMBERS) -> Ballot:
    return Ballot(ballot_id=make_ballot_id(OFFICE, utc_now().astimezone(VIETNAM).date(), number),
                  question="Thông qua dự thảo Nghị định sửa đổi Nghị định 30/2020/NĐ-CP?", options=OPTIONS,
                  deadline=deadline, members=members)


def _answer(ballot_id: str, option: str, comment: str = "") -> BallotAnswer:
    return BallotAnswer(ballot_id=ballot_id, option=option, comment=comment, time=utc_now())


def test_members_answer_once_the_office_tallies_and_bad_answers_are_rejected(harness: BusHarness,
                                                                             database_url: str) -> None:
    harness.add_agencies()
    harness.start_router()
    harness.start_projector()
    bus = harness.bus
    now = utc_now()
    main = _ballot("12", now + dt.timedelta(days=1))
    store = BallotStore(database_url)
    harness.closers.append(store.close)
    office = harness.gateway(OFFICE)
    store.record_ballot(main)  # what `lienthong ballot open` does after sending
    office.send(main, list(main.members))
    projector = BallotProjector(store)
    office_inbox = Receiver.connect(bus, OFFICE, handlers=[projector])
    harness.closers.append(office_inbox.close)
    ministry = harness.receiver(MINISTRY_A)
    [got] = wait_for("the ballot at a member", lambda: ministry.poll(200))
    assert (got.kind, got.message.payload) == ("ballot", main)
    # Opened once the router runs, so that only the answer below is late, not the ballot itself.
    short = _ballot("13", utc_now() + dt.timedelta(seconds=3), (MINISTRY_A,))
    store.record_ballot(short)
    office.send(short, [MINISTRY_A])
    [got] = wait_for("the short ballot at its member", lambda: ministry.poll(200))
    assert got.message.payload == short

    gw = {code: harness.gateway(code) for code in (MINISTRY_A, MINISTRY_B, PROVINCE, PARTY)}
    gw[MINISTRY_A].send(_answer(main.ballot_id, "Đồng ý"), [OFFICE])
    gw[MINISTRY_B].send(_answer(main.ballot_id, "Không đồng ý", "Đề nghị lùi thời điểm hiệu lực"), [OFFICE])
    unknown = make_ballot_id(OFFICE, now.astimezone(VIETNAM).date(), "999")
    bad = {  # sent one by one, each acknowledged before the next: the router sees them in this order
        Reason.NOT_A_PARTY: (gw[PARTY], _answer(main.ballot_id, "Đồng ý"), OFFICE),
        Reason.ALREADY_ANSWERED: (gw[MINISTRY_A], _answer(main.ballot_id, "Không đồng ý"), OFFICE),
        Reason.INVALID_CONTENT: (gw[PROVINCE], _answer(main.ballot_id, "Có"), OFFICE),
        Reason.UNKNOWN_BALLOT: (gw[MINISTRY_B], _answer(unknown, "Đồng ý"), OFFICE),
    }
    sent = {reason: gateway.send(answer, [to]) for reason, (gateway, answer, to) in bad.items()}
    not_to_the_office = gw[PROVINCE].send(_answer(main.ballot_id, "Đồng ý"), [MINISTRY_A])
    wait_for("the short ballot's deadline to pass", lambda: utc_now() > short.deadline + dt.timedelta(seconds=1),
             timeout_s=10)
    late = gw[MINISTRY_A].send(_answer(short.ballot_id, "Đồng ý"), [OFFICE])
    expected = {**{s.message_id: r for r, s in sent.items()}, not_to_the_office.message_id: Reason.NOT_A_PARTY,
                late.message_id: Reason.PAST_DEADLINE}

    dlq = harness.read_topic(bus.topics.dlq, len(expected))
    on_dlq = {bus.envelopes.decode_content(bus.envelopes.read(r.value or b"")).header.message_id:
              r.headers["lienthong_reason_code"].decode() for r in dlq}
    assert on_dlq == {m: r.value for m, r in expected.items()}

    def audited():  # type: ignore[no-untyped-def]
        rejected = [e for e in harness.audit.events() if e.event == AuditEventType.REJECTED]
        return rejected if len(rejected) >= len(expected) else None

    rejected = wait_for("a REJECTED audit row per bad answer", audited)
    assert {e.message_id: e.reason_code for e in rejected} == {m: r.value for m, r in expected.items()}
    said = {e.message_id: e.reason or "" for e in rejected}
    assert f"{PARTY} is not a member asked by ballot" in said[sent[Reason.NOT_A_PARTY].message_id]
    assert f"goes to {OFFICE}, who sent it" in said[not_to_the_office.message_id]
    assert "already answered" in said[sent[Reason.ALREADY_ANSWERED].message_id]
    assert "'Có' is not an option" in said[sent[Reason.INVALID_CONTENT].message_id]
    assert "was never sent" in said[sent[Reason.UNKNOWN_BALLOT].message_id]
    assert f"ballot {short.ballot_id} closed at" in said[late.message_id]
    assert all(e.sender and e.root_id for e in rejected)

    def projected() -> bool:
        office_inbox.poll(200)
        return len(store.answers(main.ballot_id)) == 2

    wait_for("two answers projected at the Office", projected)
    assert office_inbox.poll(500) == [], "no rejected answer reached the Office"
    result = tally(main, store.answers(main.ballot_id), utc_now())
    assert result.counts == {"Đồng ý": 1, "Không đồng ý": 1, "Ý kiến khác": 0}
    assert {(a.member, a.option, a.comment) for a in result.answers} == {
        (MINISTRY_A, "Đồng ý", ""), (MINISTRY_B, "Không đồng ý", "Đề nghị lùi thời điểm hiệu lực")}
    assert all(a.delivered_at for a in result.answers)
    assert result.not_answered == (PROVINCE,) and result.state == "open" and not result.ignored
    closed = tally(short, store.answers(short.ballot_id), utc_now())
    assert closed.state == "closed" and closed.not_answered == (MINISTRY_A,)

    before = store.answers(main.ballot_id)
    assert replay_inbox(office_inbox.store, projector, bus.envelopes, office_inbox.follower.view) == 0, \
        "a replay changes nothing"
    assert store.answers(main.ballot_id) == before


def test_the_ballot_commands_as_the_office_and_a_member_run_them(harness: BusHarness) -> None:
    harness.add_agencies()
    harness.start_router()
    s = harness.bus.settings
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--home", str(s.home), "--bootstrap", s.bootstrap, "--prefix", s.topic_prefix,
                                     *args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
        return result.output

    opened = cli("ballot", "open", "--from", OFFICE, "--number", "21", "--question", "Thông qua đề án?",
                 "--option", "Đồng ý", "--option", "Không đồng ý", "--deadline", "+2h",
                 "--to", "group:ministries", "--to", PROVINCE)
    ballot_id = make_ballot_id(OFFICE, utc_now().astimezone(VIETNAM).date(), "21")
    assert f"ballot {ballot_id}: 3 members, deadline" in opened and "sent as message" in opened
    with pytest.raises(ValidationError, match="opened before"):
        cli("ballot", "open", "--from", OFFICE, "--number", "21", "--question", "?", "--option", "a",
            "--option", "b", "--deadline", "+1h", "--to", MINISTRY_A)

    ministry = harness.receiver(MINISTRY_A)  # the member reads its inbox: the ballot is there to check against
    wait_for("the ballot at the ministry", lambda: ministry.poll(200))
    with pytest.raises(ValidationError, match=r"choose one of: Đồng ý \| Không đồng ý"):
        cli("ballot", "answer", ballot_id, "--as", MINISTRY_A, "--option", "Có")
    answered = cli("ballot", "answer", ballot_id, "--as", MINISTRY_A, "--option", "Đồng ý", "--comment", "Nhất trí")
    assert f"answer 'Đồng ý' to ballot {ballot_id} from {MINISTRY_A} to {OFFICE}: sent" in answered
    unread = cli("ballot", "answer", ballot_id, "--as", MINISTRY_B, "--option", "Không đồng ý")
    assert "is not in" in unread and "sent as message" in unread
    harness.read_topic(harness.bus.topics.inbox(OFFICE), 2)

    projected = cli("ballot", "project", "--agency", OFFICE, "--once", "--wait", "1")
    assert "projected 0 ballots and 2 answers" in projected
    tallied = json.loads(cli("ballot", "tally", ballot_id, "--json"))
    assert tallied["state"] == "open" and tallied["members"] == 3 and tallied["answered"] == 2
    assert {c["option"]: c["count"] for c in tallied["counts"]} == {"Đồng ý": 1, "Không đồng ý": 1}
    assert tallied["not_answered"] == [PROVINCE]
    assert Counter(a["member"] for a in tallied["answers"]) == Counter([MINISTRY_A, MINISTRY_B])
    csv_rows = cli("ballot", "tally", ballot_id, "--csv").splitlines()
    assert csv_rows[0] == "member,answer,comment,answered_at,delivered_at" and len(csv_rows) == 4
    assert any(row.startswith(f"{PROVINCE},,") for row in csv_rows)
    people = cli("ballot", "tally", ballot_id)
    assert "2 of 3 members answered" in people and "(not answered)" in people
    assert Path(s.projections_db_url().removeprefix("sqlite:///")).exists()
