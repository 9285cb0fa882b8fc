import datetime as dt

import pytest

from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.timeline import build_timeline
from lienthong.documents import Attachment
from lienthong.errors import Reason, ValidationError
from lienthong.notices import StatusCode
from lienthong.topics import Topics
from producers.gateway import Gateway
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE, Pki, document, envelopes

T0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
E = AuditEventType


def ev(n: int, event: E, sender: str | None = OFFICE, recipient: str | None = None, status: str | None = None,
       kind: str = "DOCUMENT", reason: str | None = None) -> AuditEvent:
    return AuditEvent(event_id=f"e{n}", event=event, at=T0 + dt.timedelta(seconds=n), message_id=f"m{n}",
                      root_id="doc", kind=kind, sender=sender, recipient=recipient, status=status, reason=reason,
                      source_topic="t", source_partition=0, source_offset=n)


def test_timeline_per_recipient_names_who_has_not_answered() -> None:
    events = [
        ev(1, E.SUBMITTED), ev(2, E.ROUTED),
        ev(3, E.DELIVERED, recipient=MINISTRY_A), ev(4, E.DELIVERED, recipient=MINISTRY_B),
        ev(5, E.DELIVERED, recipient=PROVINCE),
        ev(6, E.STATUS, MINISTRY_A, OFFICE, "01", "STATUS_NOTICE"),
        ev(7, E.STATUS, MINISTRY_A, OFFICE, "03", "STATUS_NOTICE"),
        ev(8, E.STATUS, MINISTRY_B, OFFICE, "01", "STATUS_NOTICE"),
        ev(9, E.STATUS, PROVINCE, OFFICE, "02", "STATUS_NOTICE", reason="sai thẩm quyền"),
    ]
    timeline = build_timeline("doc", events)
    assert timeline.sender == OFFICE and timeline.submitted_at == T0 + dt.timedelta(seconds=1)
    assert list(timeline.recipients) == [MINISTRY_A, MINISTRY_B, PROVINCE]
    assert timeline.recipients[MINISTRY_A].latest.status is StatusCode.ACCEPTED  # type: ignore[union-attr]
    assert timeline.recipients[PROVINCE].latest.reason == "sai thẩm quyền"  # type: ignore[union-attr]
    assert timeline.waiting == [MINISTRY_B]


def test_gateway_refuses_a_message_over_the_limit_before_it_reaches_the_broker() -> None:
    signer = Pki().signer(OFFICE)
    gateway = Gateway(signer, OFFICE, sink=None, envelopes=envelopes(),  # type: ignore[arg-type]
                      topics=Topics("t"), max_message_bytes=100_000)
    big = document(attachments=(Attachment.of("scan.tiff", b"\0" * 150_000),))
    with pytest.raises(ValidationError, match="over the limit of 100,000 bytes") as err:
        gateway.send_document(big, [MINISTRY_A])
    assert err.value.reason == Reason.MESSAGE_TOO_LARGE


def test_the_auditor_api_gives_each_recipient_the_state_audit_show_gives() -> None:
    from lienthong.audit.views import WAITING, recipient_view

    def revoke(n: int, event: E, **kw: str | None) -> AuditEvent:
        return ev(n, event, **kw).model_copy(update={"message_id": "revoke"})  # delivered as its request 13

    events = [
        ev(1, E.SUBMITTED), ev(2, E.ROUTED),
        ev(3, E.DELIVERED, recipient=MINISTRY_A), ev(4, E.DELIVERED, recipient=MINISTRY_B),
        ev(5, E.STATUS, MINISTRY_A, OFFICE, "03", "STATUS_NOTICE"),
        ev(6, E.STATUS, MINISTRY_B, OFFICE, "03", "STATUS_NOTICE"),
        revoke(7, E.DELIVERED, recipient=MINISTRY_A), revoke(8, E.STATUS, recipient=MINISTRY_A, status="13"),
        revoke(9, E.DELIVERED, recipient=MINISTRY_B), revoke(10, E.STATUS, recipient=MINISTRY_B, status="13"),
        ev(11, E.STATUS, MINISTRY_A, OFFICE, "16", "STATUS_NOTICE", reason="văn bản vẫn đang thực hiện"),
    ]
    timeline = build_timeline("doc", events)
    a, b = (recipient_view(timeline.recipients[code], {}) for code in (MINISTRY_A, MINISTRY_B))
    # A refused the recall: back to where the 13 found it, accepted; B has not answered the request yet.
    assert timeline.states == {MINISTRY_A: "03", MINISTRY_B: "13"}
    assert (a.state, b.state) == (StatusCode.ACCEPTED.label, WAITING)
    assert timeline.waiting == [MINISTRY_B]
