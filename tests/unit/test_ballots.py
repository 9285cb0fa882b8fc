"""Ballots without a broker: the model's rules, the wire round trip, the router's story rules, the tally, the
projector's idempotence (on a SQLite file) and the CLI's deadline parsing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest

from consumers.ballot_projector import BallotProjector, BallotStore
from lienthong.ballots import Ballot, BallotAnswer, CastAnswer, make_ballot_id, tally
from lienthong.cli.ballot_cmd import parse_deadline
from lienthong.errors import Reason, RoutingError, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.reports import VIETNAM
from router.stories import advance
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PARTY, PROVINCE, envelopes, make_pki

NOW = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
BALLOT_ID = f"{OFFICE},2026/11/26,12"
MEMBERS = (MINISTRY_A, MINISTRY_B, PROVINCE)


def ballot(**changes: object) -> Ballot:
    fields: dict[str, object] = {"ballot_id": BALLOT_ID, "question": "Thông qua dự thảo Nghị định?",
                                 "options": ("Đồng ý", "Không đồng ý", "Ý kiến khác"),
                                 "deadline": NOW + dt.timedelta(days=2), "members": MEMBERS}
    return Ballot.model_validate({**fields, **changes})


def answer(option: str = "Đồng ý", at: dt.datetime = NOW) -> BallotAnswer:
    return BallotAnswer(ballot_id=BALLOT_ID, option=option, time=at)


def message(sender: str, payload: Ballot | BallotAnswer, recipients: tuple[str, ...]) -> Message:
    kind = MessageKind.BALLOT if isinstance(payload, Ballot) else MessageKind.BALLOT_ANSWER
    return Message(header=MessageHeader(kind=kind, sender=sender, recipients=recipients, root_id=BALLOT_ID,
                                        created_at=utc_now()), payload=payload)


# The model

def test_a_ballot_id_reads_sender_date_number() -> None:
    assert make_ballot_id(OFFICE, dt.date(2026, 11, 26), "12") == BALLOT_ID
    assert ballot().sender == OFFICE
    for bad in ("000.00.00.G22,2026/11/26", "000.00.00.G22,2026-11-26,12", "G22,2026/11/26,12",
                "000.00.00.G22,2026/11/26,", "000.00.00.G22,2026/11/26, 12", "000.00.00.G22,2026/02/30,1"):
        with pytest.raises(pydantic.ValidationError):
            ballot(ballot_id=bad)


@pytest.mark.parametrize(("changes", "says"), [
    ({"options": ("Đồng ý",)}, "at least 2"),
    ({"options": ("Đồng ý", "Đồng ý")}, "distinct"),
    ({"options": ("Đồng ý", " ")}, "blank"),
    ({"options": ("Đồng ý", "Không đồng ý ")}, "spaces"),
    ({"members": ()}, "at least 1"),
    ({"members": (MINISTRY_A, MINISTRY_A)}, "listed once"),
    ({"members": (MINISTRY_A, OFFICE)}, "cannot be one of its own"),
    ({"members": ("group:ministries",)}, "malformed agency code"),
    ({"question": "   "}, "blank"),
    ({"deadline": dt.datetime(2026, 11, 28, 17, 0)}, "time zone"),
])
def test_ballot_rules(changes: dict[str, object], says: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=says):
        ballot(**changes)


def test_an_answer_needs_an_option_and_an_aware_time() -> None:
    with pytest.raises(pydantic.ValidationError):
        BallotAnswer(ballot_id=BALLOT_ID, option="", time=NOW)
    with pytest.raises(pydantic.ValidationError, match="time zone"):
        BallotAnswer(ballot_id=BALLOT_ID, option="Đồng ý", time=dt.datetime(2026, 11, 26, 8, 0))


def test_check_answer_says_who_may_answer_and_what() -> None:
    b = ballot()
    b.check_answer(MINISTRY_A, "Ý kiến khác")
    with pytest.raises(ValidationError, match="not a member") as err:
        b.check_answer(PARTY, "Đồng ý")
    assert err.value.reason == Reason.NOT_A_PARTY
    with pytest.raises(ValidationError, match=r"Đồng ý \| Không đồng ý \| Ý kiến khác") as err:
        b.check_answer(MINISTRY_A, "Có")
    assert err.value.reason == Reason.INVALID_CONTENT


def test_ballot_and_answer_survive_the_signed_round_trip() -> None:
    pki, view = make_pki()
    env = envelopes()
    commented = BallotAnswer(ballot_id=BALLOT_ID, option="Ý kiến khác", comment="Đề nghị làm rõ Điều 5", time=NOW)
    for sender, payload, to in ((OFFICE, ballot(), MEMBERS), (MINISTRY_A, commented, (OFFICE,))):
        sent = message(sender, payload, to)
        _, got = env.open(env.seal(sent, pki.signers[sender]), view, utc_now())
        assert got.payload == sent.payload and got.header == sent.header


# The router's story rules (router/stories.py), as the ballot flow relies on them

def test_the_router_keeps_one_answer_per_member_before_the_deadline() -> None:
    b = ballot()
    story = advance(None, message(OFFICE, b, MEMBERS), MEMBERS, NOW)
    story = advance(story, message(MINISTRY_A, answer(), (OFFICE,)), (OFFICE,), NOW + dt.timedelta(hours=1))
    assert story.parties[MINISTRY_A].state == "Đồng ý" and story.parties[MINISTRY_B].state == ""
    cases = [
        (message(MINISTRY_A, answer("Không đồng ý"), (OFFICE,)), NOW, Reason.ALREADY_ANSWERED),
        (message(PARTY, answer(), (OFFICE,)), NOW, Reason.NOT_A_PARTY),
        (message(MINISTRY_B, answer(), (PROVINCE,)), NOW, Reason.NOT_A_PARTY),
        (message(MINISTRY_B, answer(), (OFFICE,)), b.deadline + dt.timedelta(seconds=1), Reason.PAST_DEADLINE),
        (message(MINISTRY_B, answer("Có"), (OFFICE,)), NOW, Reason.INVALID_CONTENT),
    ]
    for sent, at, reason in cases:
        with pytest.raises(RoutingError) as err:
            advance(story, sent, sent.header.recipients, at)
        assert err.value.reason == reason, sent
    with pytest.raises(RoutingError) as err:
        advance(None, message(MINISTRY_B, answer(), (OFFICE,)), (OFFICE,), NOW)
    assert err.value.reason == Reason.UNKNOWN_BALLOT
    with pytest.raises(RoutingError) as err:
        advance(story, message(OFFICE, b, MEMBERS), MEMBERS, NOW)
    assert err.value.reason == Reason.INVALID_TRANSITION


# The tally

def test_tally_counts_every_option_and_names_who_has_not_answered() -> None:
    b = ballot()
    answers = [CastAnswer(MINISTRY_B, "Không đồng ý", "Cần thêm thời gian", NOW + dt.timedelta(hours=1)),
               CastAnswer(MINISTRY_A, "Đồng ý", "", NOW + dt.timedelta(hours=2))]
    t = tally(b, answers, NOW)
    assert t.counts == {"Đồng ý": 1, "Không đồng ý": 1, "Ý kiến khác": 0}
    assert [a.member for a in t.answers] == [MINISTRY_A, MINISTRY_B], "in the ballot's member order"
    assert t.not_answered == (PROVINCE,)
    assert t.state == "open" and not t.ignored
    assert tally(b, answers, b.deadline).state == "open", "an answer at the deadline itself is still taken"
    assert tally(b, answers, b.deadline + dt.timedelta(milliseconds=1)).state == "closed"


def test_tally_counts_a_members_first_answer_and_sets_aside_what_breaks_the_rules() -> None:
    b = ballot()
    first = CastAnswer(MINISTRY_A, "Đồng ý", "", NOW)
    answers = [first, CastAnswer(MINISTRY_A, "Không đồng ý", "", NOW), CastAnswer(PARTY, "Đồng ý", "", NOW),
               CastAnswer(MINISTRY_B, "Có", "", NOW)]
    t = tally(b, answers, NOW)
    assert t.answers == (first,)
    assert t.counts["Đồng ý"] == 1 and sum(t.counts.values()) == 1
    assert len(t.ignored) == 3 and t.not_answered == (MINISTRY_B, PROVINCE)


def test_tally_of_a_ballot_nobody_answered() -> None:
    t = tally(ballot(), [], NOW)
    assert set(t.counts.values()) == {0} and t.not_answered == MEMBERS


# The projector (a SQLite file; the same behaviour on PostgreSQL in tests/integration/test_ballots.py)

def test_the_projector_is_idempotent_and_keeps_the_first_answer(tmp_path: Path) -> None:
    store = BallotStore(f"sqlite:///{tmp_path / 'projections.db'}")
    projector = BallotProjector(store)
    b = ballot()
    assert store.record_ballot(b) and not store.record_ballot(b)
    assert store.ballot(BALLOT_ID) == b
    first = message(MINISTRY_A, answer("Đồng ý"), (OFFICE,))
    assert projector.project(first, NOW) == "answer"
    assert projector.project(first, NOW) == "", "a replay changes nothing"
    assert projector.project(message(MINISTRY_A, answer("Không đồng ý"), (OFFICE,)), NOW) == ""
    assert projector.project(message(PARTY, answer(), (OFFICE,)), NOW) == "", "not a member"
    assert projector.project(message(MINISTRY_B, answer("Có"), (OFFICE,)), NOW) == "", "not an option"
    assert projector.project(message(OFFICE, b, MEMBERS), NOW) == "", "the ballot is known"
    [kept] = store.answers(BALLOT_ID)
    assert (kept.member, kept.option, kept.answered_at, kept.delivered_at) == (MINISTRY_A, "Đồng ý", NOW, NOW)
    with pytest.raises(ValidationError, match="other content"):
        store.record_ballot(ballot(question="Một câu hỏi khác?"))
    store.close()


def test_answers_to_an_unknown_ballot_wait_aside_and_a_bad_one_blocks_nobody(tmp_path: Path) -> None:
    store = BallotStore(f"sqlite:///{tmp_path / 'projections.db'}")
    projector = BallotProjector(store)
    bad = message(MINISTRY_A, answer("Có"), (OFFICE,))  # not an option: it cannot be checked yet
    good = message(MINISTRY_A, answer("Đồng ý", NOW + dt.timedelta(minutes=1)), (OFFICE,))
    outsider = message(PARTY, answer(), (OFFICE,))
    for m in (bad, good, outsider):
        assert projector.project(m, NOW) == "", "nothing counts before the ballot is known"
    assert store.answers(BALLOT_ID) == [] and store.pending(BALLOT_ID) == 3
    assert projector.project(message(OFFICE, ballot(), MEMBERS), NOW) == "ballot"
    [kept] = store.answers(BALLOT_ID)
    assert (kept.member, kept.option) == (MINISTRY_A, "Đồng ý"), "the bad first answer did not take the place"
    assert store.pending() == 0
    projector.project(good, NOW)
    assert len(store.answers(BALLOT_ID)) == 1, "a replay changes nothing"
    store.close()


def test_the_store_says_where_it_looked_for_an_unknown_ballot(tmp_path: Path) -> None:
    store = BallotStore(f"sqlite:///{tmp_path / 'projections.db'}")
    with pytest.raises(Exception, match="lienthong ballot open") as err:
        store.ballot(BALLOT_ID)
    assert getattr(err.value, "reason", None) == Reason.NOT_FOUND
    store.close()


# The CLI's deadline

def test_deadlines_relative_or_iso_in_vietnam_time() -> None:
    now = dt.datetime(2026, 11, 26, 8, 0, 0, 123000, tzinfo=dt.UTC)
    assert parse_deadline("+2h", now) == dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
    assert parse_deadline("+3d", now) == dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
    assert parse_deadline("+90s", now) == dt.datetime(2026, 11, 26, 8, 1, 30, tzinfo=dt.UTC)
    assert parse_deadline("2026-11-28T17:00", now) == dt.datetime(2026, 11, 28, 17, 0, tzinfo=VIETNAM)
    assert parse_deadline("2026-11-28T17:00:00+00:00", now) == dt.datetime(2026, 11, 28, 17, 0, tzinfo=dt.UTC)
    with pytest.raises(ValidationError, match="already passed") as err:
        parse_deadline("2026-11-26T14:00", now)  # 07:00 UTC
    assert err.value.reason == Reason.PAST_DEADLINE
    for bad in ("tomorrow", "+2w", "2h"):
        with pytest.raises(ValidationError, match="ISO time"):
            parse_deadline(bad, now)
