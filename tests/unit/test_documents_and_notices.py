import datetime as dt

import pytest
from pydantic import ValidationError as PydanticValidationError

from lienthong.documents import Attachment, Code, OfficialDocument, make_document_id
from lienthong.errors import Reason, ValidationError
from lienthong.notices import StatusCode, StatusNotice, advance, check_transition, replay
from tests.support import document

S = StatusCode


def test_document_id_follows_edxml() -> None:
    doc_id = make_document_id("000.00.00.G22", dt.date(2026, 11, 26), Code(number="7816", notation="VPCP-TTĐT"))
    assert doc_id == "000.00.00.G22,2026/11/26,7816/VPCP-TTĐT"
    assert document().document_id == doc_id


def test_document_id_with_a_bad_date_is_refused() -> None:
    with pytest.raises(PydanticValidationError, match="yyyy/MM/dd"):
        OfficialDocument.model_validate({**document().model_dump(), "document_id": "000.00.00.G22,26-11-2026,1/X"})


def test_attachment_digest_must_match_its_bytes() -> None:
    good = Attachment.of("a.pdf", b"%PDF-1.7")
    with pytest.raises(PydanticValidationError, match="SHA-256"):
        Attachment(name="a.pdf", sha256=good.sha256, data=b"%PDF-1.6")


def test_rejection_needs_a_reason() -> None:
    base = dict(document_id="d", document_message_id="m", document_digest=b"\0" * 32,
                time=dt.datetime.now(dt.UTC))
    with pytest.raises(PydanticValidationError, match="requires a reason"):
        StatusNotice(status=S.REJECTED, **base)
    assert StatusNotice(status=S.REJECTED, reason="sai thẩm quyền", **base).reason == "sai thẩm quyền"


@pytest.mark.parametrize("previous,new", [
    (None, S.ARRIVED), (S.ARRIVED, S.ACCEPTED), (S.ARRIVED, S.REJECTED), (None, S.ACCEPTED),
    (S.ACCEPTED, S.ASSIGNED), (S.ASSIGNED, S.IN_PROGRESS), (S.IN_PROGRESS, S.COMPLETED), (S.ACCEPTED, S.COMPLETED),
    (S.COMPLETED, S.RECALL_REQUESTED), (S.RECALL_REQUESTED, S.RECALL_AGREED), (S.RECALL_REQUESTED, S.RECALL_REFUSED),
])
def test_sensible_transitions(previous: S | None, new: S) -> None:
    check_transition(previous, new)


@pytest.mark.parametrize("previous,new", [
    (S.REJECTED, S.ACCEPTED), (S.REJECTED, S.COMPLETED), (S.ARRIVED, S.COMPLETED), (None, S.COMPLETED),
    (S.ARRIVED, S.ARRIVED), (S.ACCEPTED, S.REJECTED), (S.ARRIVED, S.RECALL_AGREED), (S.COMPLETED, S.ACCEPTED),
    (S.RECALL_AGREED, S.COMPLETED), (S.RECALL_AGREED, S.ACCEPTED), (S.RECALL_REFUSED, S.RECALL_AGREED),
    (S.RECALL_REFUSED, S.COMPLETED),
])
def test_senseless_transitions_are_refused(previous: S | None, new: S) -> None:
    with pytest.raises(ValidationError) as err:
        check_transition(previous, new)
    assert err.value.reason == Reason.INVALID_TRANSITION
    assert new.value in err.value.message


def test_status_codes_parse_from_what_people_type() -> None:
    assert StatusCode.parse("03") is S.ACCEPTED
    assert StatusCode.parse("3") is S.ACCEPTED
    assert StatusCode.parse("rejected") is S.REJECTED
    with pytest.raises(ValidationError, match="unknown status"):
        StatusCode.parse("07")


@pytest.mark.parametrize("history,now", [
    ([None, S.ARRIVED, S.RECALL_REQUESTED, S.RECALL_REFUSED], S.ARRIVED),
    ([None, S.ACCEPTED, S.IN_PROGRESS, S.RECALL_REQUESTED, S.RECALL_REQUESTED, S.RECALL_REFUSED], S.IN_PROGRESS),
    ([None, S.RECALL_REQUESTED, S.RECALL_REFUSED], None),
    ([None, S.ACCEPTED, S.RECALL_REQUESTED, S.RECALL_AGREED], S.RECALL_AGREED),
    ([None, S.ACCEPTED, S.RECALL_REQUESTED, None], None),
])
def test_a_refused_recall_returns_to_the_state_it_interrupted(history: list[S | None], now: S | None) -> None:
    assert replay(history) is now


def test_after_a_refused_recall_handling_goes_on_where_it_was() -> None:
    state, before = advance(S.ARRIVED, None, S.RECALL_REQUESTED)
    state, before = advance(state, before, S.RECALL_REFUSED)
    with pytest.raises(ValidationError, match="must be accepted"):
        advance(state, before, S.COMPLETED)  # 01 → 13 → 16 → 06: still no 03
    state, before = advance(state, before, S.ACCEPTED)
    assert advance(state, before, S.COMPLETED) == (S.COMPLETED, None)
