"""The router's story rules (router/stories.py), pure: a document, its notices, and its revokes, updates and
replacements; and the audit's view of a recipient's state (lienthong/audit/timeline.py) agreeing with them."""

from __future__ import annotations

import datetime as dt

import pydantic
import pytest

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.timeline import DELIVERED, build_timeline
from lienthong.documents import BusinessType, OfficialDocument
from lienthong.errors import LienthongError, Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.notices import StatusCode, StatusNotice
from producers.builder import lifecycle_document
from router.stories import (
    DOCUMENT,
    Party,
    Story,
    advance,
    asks_agreement,
    is_lifecycle_request,
    story_model,
    story_record,
)
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PARTY, PROVINCE, document, document_message, notice_message

S = StatusCode
T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
RECIPIENTS = (MINISTRY_A, MINISTRY_B)


def at(n: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def sent() -> tuple[Message, Story]:
    """A document from the Government Office to two ministries, and the story it opens."""
    message = document_message(OFFICE, RECIPIENTS)
    return message, advance(None, message, RECIPIENTS, at(0))


def lifecycle(kind: BusinessType, about: Message, recipients: tuple[str, ...], sender: str = OFFICE,
              number: str = "9001", affected: tuple[str, ...] | None = None) -> Message:
    doc = lifecycle_document(sender, kind, about.header.root_id, reason="Sai sót về số liệu", recipients=recipients,
                             number=number, notation="VPCP-TTĐT", date=dt.date(2026, 11, 27))
    if affected is not None:
        doc = OfficialDocument.model_validate({**doc.model_dump(), "business": {
            "type": kind, "reason": "x", "affected_recipients": affected}})
    header = MessageHeader(kind=MessageKind.DOCUMENT, sender=sender, recipients=recipients,
                           root_id=about.header.root_id, created_at=utc_now())
    return Message(header=header, payload=doc)


def notice(sender: str, to: str, about: Message, status: StatusCode, reason: str | None = None) -> Message:
    return notice_message(sender, to, about, status, reason)


def refused(story: Story | None, message: Message, recipients: tuple[str, ...], reason: Reason) -> str:
    with pytest.raises(LienthongError) as err:
        advance(story, message, recipients, at(99))
    assert err.value.reason == reason, err.value.message
    return err.value.message


def states(story: Story) -> dict[str, str]:
    return {code: party.state for code, party in story.parties.items()}


def test_a_new_document_opens_a_story_with_each_recipient_delivered() -> None:
    message, story = sent()
    assert (story.root_id, story.kind, story.sender) == (message.header.root_id, DOCUMENT, OFFICE)
    assert states(story) == {MINISTRY_A: "", MINISTRY_B: ""}
    assert story_model(story_record(story)) == story
    assert not is_lifecycle_request(message) and not asks_agreement(message)


def test_status_notices_follow_the_state_machine() -> None:
    message, story = sent()
    for n, status in enumerate((S.ARRIVED, S.ACCEPTED, S.ASSIGNED, S.IN_PROGRESS, S.COMPLETED), start=1):
        story = advance(story, notice(MINISTRY_A, OFFICE, message, status), (OFFICE,), at(n))
    assert states(story) == {MINISTRY_A: "06", MINISTRY_B: ""}
    assert story.parties[MINISTRY_A].at == int(at(5).timestamp() * 1000)


def test_06_before_03_is_an_invalid_transition() -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), at(1))
    why = refused(story, notice(MINISTRY_A, OFFICE, message, S.COMPLETED), (OFFICE,), Reason.INVALID_TRANSITION)
    assert "must be accepted (03) first" in why


@pytest.mark.parametrize("status", [S.ARRIVED, S.ACCEPTED, S.ASSIGNED, S.COMPLETED, S.RECALL_AGREED,
                                    S.RECALL_REFUSED])
def test_nothing_follows_02(status: StatusCode) -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.REJECTED, "Sai thẩm quyền"), (OFFICE,), at(1))
    why = refused(story, notice(MINISTRY_A, OFFICE, message, status), (OFFICE,), Reason.INVALID_TRANSITION)
    assert "rejected document takes no further status" in why


def test_nor_a_revoke_or_update_request_after_02() -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.REJECTED, "Sai thẩm quyền"), (OFFICE,), at(1))
    for kind in (BusinessType.REVOKE, BusinessType.UPDATE):
        refused(story, lifecycle(kind, message, (MINISTRY_A,)), (MINISTRY_A,), Reason.INVALID_TRANSITION)
    refused(story, notice(OFFICE, MINISTRY_A, message, S.RECALL_REQUESTED), (MINISTRY_A,), Reason.INVALID_TRANSITION)


@pytest.mark.parametrize("kind", ["again", "replace"])
def test_after_02_a_new_delivery_starts_over(kind: str) -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.REJECTED, "Sai thẩm quyền"), (OFFICE,), at(1))
    again = (document_message(OFFICE, (MINISTRY_A,)) if kind == "again"
             else lifecycle(BusinessType.REPLACE, message, (MINISTRY_A,)))
    assert again.header.root_id == message.header.root_id
    story = advance(story, again, (MINISTRY_A,), at(2))
    assert states(story) == {MINISTRY_A: "", MINISTRY_B: ""}
    story = advance(story, notice(MINISTRY_A, OFFICE, again, S.ARRIVED), (OFFICE,), at(3))
    story = advance(story, notice(MINISTRY_A, OFFICE, again, S.ACCEPTED), (OFFICE,), at(4))
    assert states(story)[MINISTRY_A] == "03"


def test_02_without_a_reason_is_refused_by_the_model() -> None:
    with pytest.raises(pydantic.ValidationError, match="requires a reason"):
        StatusNotice(document_id="x", document_message_id="m", document_digest=b"\0" * 32, status=S.REJECTED,
                     time=T0)


@pytest.mark.parametrize("kind", [BusinessType.REVOKE, BusinessType.UPDATE])
def test_a_revoke_or_update_asks_each_recipient_it_goes_to(kind: BusinessType) -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), at(1))
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ACCEPTED), (OFFICE,), at(2))
    request = lifecycle(kind, message, (MINISTRY_A,))
    assert is_lifecycle_request(request) and asks_agreement(request)
    story = advance(story, request, (MINISTRY_A,), at(3))
    assert states(story) == {MINISTRY_A: "13", MINISTRY_B: ""}, "only the recipients it goes to are asked"
    refused(story, notice(MINISTRY_A, OFFICE, message, S.ASSIGNED), (OFFICE,), Reason.INVALID_TRANSITION)
    answer = S.RECALL_AGREED if kind == BusinessType.REVOKE else S.RECALL_REFUSED
    story = advance(story, notice(MINISTRY_A, OFFICE, request, answer), (OFFICE,), at(4))
    # 15 ends the recipient's part; 16 keeps the document in force, back at the 03 the request interrupted.
    assert states(story)[MINISTRY_A] == (answer.value if answer == S.RECALL_AGREED else S.ACCEPTED.value)
    refused(story, notice(MINISTRY_A, OFFICE, request, S.RECALL_AGREED), (OFFICE,), Reason.INVALID_TRANSITION)
    if answer == S.RECALL_REFUSED:
        story = advance(story, notice(MINISTRY_A, OFFICE, message, S.COMPLETED), (OFFICE,), at(5))
        assert states(story)[MINISTRY_A] == S.COMPLETED.value


def test_15_or_16_without_a_request_is_refused() -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), at(1))
    for status in (S.RECALL_AGREED, S.RECALL_REFUSED):
        why = refused(story, notice(MINISTRY_A, OFFICE, message, status), (OFFICE,), Reason.INVALID_TRANSITION)
        assert "answer a recall or update request (13)" in why


def test_a_completed_document_can_still_be_revoked() -> None:
    message, story = sent()
    for n, status in enumerate((S.ARRIVED, S.ACCEPTED, S.COMPLETED), start=1):
        story = advance(story, notice(MINISTRY_A, OFFICE, message, status), (OFFICE,), at(n))
    story = advance(story, lifecycle(BusinessType.REVOKE, message, (MINISTRY_A,)), (MINISTRY_A,), at(4))
    assert states(story)[MINISTRY_A] == "13"


def test_a_replacement_is_a_new_delivery() -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), at(1))
    replacement = lifecycle(BusinessType.REPLACE, message, RECIPIENTS)
    assert is_lifecycle_request(replacement) and not asks_agreement(replacement)
    story = advance(story, replacement, RECIPIENTS, at(2))
    assert states(story) == {MINISTRY_A: "", MINISTRY_B: ""}
    advance(story, notice(MINISTRY_A, OFFICE, replacement, S.ARRIVED), (OFFICE,), at(3))


def test_the_sender_may_ask_13_by_notice_and_only_the_sender() -> None:
    message, story = sent()
    story = advance(story, notice(OFFICE, MINISTRY_A, message, S.RECALL_REQUESTED), (MINISTRY_A,), at(1))
    assert states(story)[MINISTRY_A] == "13"
    why = refused(story, notice(MINISTRY_B, OFFICE, message, S.RECALL_REQUESTED), (OFFICE,), Reason.NOT_A_PARTY)
    assert f"only {OFFICE}" in why
    refused(story, notice(OFFICE, PROVINCE, message, S.RECALL_REQUESTED), (PROVINCE,), Reason.NOT_A_PARTY)


def test_a_revoke_of_a_document_never_sent_is_unknown() -> None:
    never = document_message(OFFICE, RECIPIENTS, doc=document(number="404"))
    why = refused(None, lifecycle(BusinessType.REVOKE, never, RECIPIENTS), RECIPIENTS, Reason.UNKNOWN_DOCUMENT)
    assert "never sent through this bus" in why


def test_only_the_sender_of_a_document_may_revoke_update_or_replace_it() -> None:
    message, story = sent()
    other = lifecycle(BusinessType.REPLACE, document_message(PROVINCE, RECIPIENTS, doc=document(PROVINCE)),
                      RECIPIENTS, sender=PROVINCE)
    # The province's request filed in the office's story (the router's identity check refuses it earlier too).
    header = other.header.model_copy(update={"root_id": message.header.root_id})
    why = refused(story, Message(header=header, payload=other.payload), RECIPIENTS, Reason.SENDER_MISMATCH)
    assert f"sent by {OFFICE}" in why


def test_a_request_to_an_agency_that_never_received_the_document_is_refused() -> None:
    message, story = sent()
    why = refused(story, lifecycle(BusinessType.REVOKE, message, (MINISTRY_A, PROVINCE)), (MINISTRY_A, PROVINCE),
                  Reason.NOT_A_PARTY)
    assert f"{PROVINCE} never received" in why
    refused(story, lifecycle(BusinessType.UPDATE, message, (MINISTRY_A,), affected=(MINISTRY_A, MINISTRY_B)),
            (MINISTRY_A,), Reason.NOT_A_PARTY)


def test_notices_about_unknown_stories_from_strangers_or_to_others_are_refused() -> None:
    message, story = sent()
    refused(None, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), Reason.UNKNOWN_DOCUMENT)
    why = refused(story, notice(PARTY, OFFICE, message, S.ARRIVED), (OFFICE,), Reason.NOT_A_PARTY)
    assert f"{PARTY} never received" in why
    why = refused(story, notice(MINISTRY_A, MINISTRY_B, message, S.ARRIVED), (MINISTRY_B,), Reason.NOT_A_PARTY)
    assert f"goes to its sender {OFFICE}" in why


# The audit's view of the same story: the router's audit events, folded by build_timeline.

def audit(n: int, event: AuditEventType, sender: str, recipient: str | None = None, status: str | None = None,
          kind: str = "DOCUMENT") -> AuditEvent:
    return AuditEvent(event_id=f"e{n}", event=event, at=at(n), message_id=f"m{n}", root_id="doc", kind=kind,
                      sender=sender, recipient=recipient, status=status, source_topic="t", source_partition=0,
                      source_offset=n)


def test_the_audit_timeline_computes_each_recipients_state_like_the_router() -> None:
    E = AuditEventType
    events = [
        audit(1, E.SUBMITTED, OFFICE), audit(2, E.ROUTED, OFFICE),
        audit(3, E.DELIVERED, OFFICE, MINISTRY_A), audit(4, E.DELIVERED, OFFICE, MINISTRY_B),
        audit(5, E.STATUS, MINISTRY_A, OFFICE, "01", "STATUS_NOTICE"),
        audit(6, E.STATUS, MINISTRY_A, OFFICE, "03", "STATUS_NOTICE"),
        audit(7, E.STATUS, MINISTRY_B, OFFICE, "01", "STATUS_NOTICE"),
        # A revoke to the first ministry: delivered, then 13 from the sender to it; it agrees.
        audit(8, E.SUBMITTED, OFFICE), audit(9, E.ROUTED, OFFICE), audit(10, E.DELIVERED, OFFICE, MINISTRY_A),
        audit(11, E.STATUS, OFFICE, MINISTRY_A, "13"),
        audit(12, E.STATUS, MINISTRY_A, OFFICE, "15", "STATUS_NOTICE"),
        # A 02 refused by the router is in the rejections, not in the state.
        audit(13, E.SUBMITTED, MINISTRY_B, kind="STATUS_NOTICE"),
        audit(14, E.REJECTED, MINISTRY_B, kind="STATUS_NOTICE"),
        # A replacement to the second: a new delivery.
        audit(15, E.SUBMITTED, OFFICE), audit(16, E.ROUTED, OFFICE), audit(17, E.DELIVERED, OFFICE, MINISTRY_B),
    ]
    timeline = build_timeline("doc", events)
    assert timeline.states == {MINISTRY_A: "15", MINISTRY_B: DELIVERED}
    assert list(timeline.recipients) == [MINISTRY_A, MINISTRY_B], "the sender's 13 is about a recipient"
    assert [s.status.value for s in timeline.recipients[MINISTRY_A].steps] == ["01", "03", "13", "15"]
    assert timeline.recipients[MINISTRY_B].delivered_at == at(4), "delivered_at is the first delivery"
    assert (timeline.message_id, timeline.routed_at) == ("m1", at(2))
    assert timeline.waiting == [MINISTRY_B] and len(timeline.rejections) == 1


def test_the_timeline_shows_the_accepted_document_after_a_refused_first_submission() -> None:
    E = AuditEventType
    events = [audit(1, E.SUBMITTED, OFFICE), audit(1, E.REJECTED, OFFICE), audit(3, E.SUBMITTED, OFFICE),
              audit(4, E.ROUTED, OFFICE), audit(5, E.DELIVERED, OFFICE, MINISTRY_A)]
    timeline = build_timeline("doc", events)
    assert (timeline.message_id, timeline.submitted_at) == ("m3", at(3))
    assert timeline.states == {MINISTRY_A: DELIVERED} and timeline.waiting == [MINISTRY_A]


def test_a_lifecycle_document_needs_a_reason_its_own_id_and_agencies_by_code() -> None:
    root = document().document_id
    base = dict(recipients=(MINISTRY_A,), number="9001", notation="VPCP-TTĐT")
    with pytest.raises(ValidationError, match="a revoke needs a reason"):
        lifecycle_document(OFFICE, BusinessType.REVOKE, root, reason=" ", **base)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="only its sender may update it"):
        lifecycle_document(PROVINCE, BusinessType.UPDATE, root, reason="r", **base)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="named one by one"):
        lifecycle_document(OFFICE, BusinessType.REVOKE, root, reason="r", recipients=("group:ministries",),
                           number="9001", notation="VPCP-TTĐT")
    with pytest.raises(ValidationError, match="give it its own code number"):
        lifecycle_document(OFFICE, BusinessType.REPLACE, root, reason="r", recipients=(MINISTRY_A,), number="7816",
                           notation="VPCP-TTĐT", date=dt.date(2026, 11, 26))
    revoke = lifecycle_document(OFFICE, BusinessType.REVOKE, root, reason=" Sai sót ", **base)  # type: ignore[arg-type]
    assert revoke.business.type == BusinessType.REVOKE and revoke.business.reason == "Sai sót"
    assert revoke.business.affected_recipients == (MINISTRY_A,)
    assert revoke.subject == "Thu hồi văn bản số 7816/VPCP-TTĐT" and revoke.document_id != root


def test_a_refused_recall_does_not_open_handling_that_never_began() -> None:
    message, story = sent()
    story = advance(story, notice(MINISTRY_A, OFFICE, message, S.ARRIVED), (OFFICE,), at(1))
    request = lifecycle(BusinessType.UPDATE, message, (MINISTRY_A,))
    story = advance(story, request, (MINISTRY_A,), at(2))
    story = advance(story, notice(MINISTRY_A, OFFICE, request, S.RECALL_REFUSED), (OFFICE,), at(3))
    assert states(story)[MINISTRY_A] == S.ARRIVED.value
    refused(story, notice(MINISTRY_A, OFFICE, message, S.COMPLETED), (OFFICE,), Reason.INVALID_TRANSITION)


def test_a_ballot_id_cannot_become_a_document() -> None:
    message, _ = sent()
    ballot_story = Story(message.header.root_id, "BALLOT", OFFICE, 0, deadline=10**15, options=("yes", "no"),
                         parties={MINISTRY_A: Party("", 0)})
    refused(ballot_story, message, RECIPIENTS, Reason.KEY_MISMATCH)
