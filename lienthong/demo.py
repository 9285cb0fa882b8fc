"""The demo exchange: sample agencies, one document to the ministries and provinces, every answer, the timeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from consumers.audit_projector import AuditProjector
from consumers.receiver import Receiver
from lienthong.agencies import AgencyKind
from lienthong.audit.timeline import Timeline, build_timeline
from lienthong.errors import LienthongError
from lienthong.notices import StatusCode
from lienthong.provisioning import add_agency, publish_directory
from lienthong.wiring import Bus
from producers.builder import new_document
from producers.connect import gateway as connect_gateway
from router.service import Router

GOVERNMENT_OFFICE = "000.00.00.G22"

# Codes have the shape of Decision 20/2020; names are the bodies' own. The pairing is illustrative.
AGENCIES: list[tuple[str, str, AgencyKind]] = [
    (GOVERNMENT_OFFICE, "Văn phòng Chính phủ", AgencyKind.GOVERNMENT),
    ("000.00.00.G06", "Bộ Tài chính", AgencyKind.MINISTRY),
    ("000.00.00.G09", "Bộ Nội vụ", AgencyKind.MINISTRY),
    ("000.00.00.G12", "Bộ Khoa học và Công nghệ", AgencyKind.MINISTRY),
    ("000.00.00.H29", "Ủy ban nhân dân thành phố Hà Nội", AgencyKind.PROVINCE),
    ("000.00.00.H58", "Ủy ban nhân dân Thành phố Hồ Chí Minh", AgencyKind.PROVINCE),
    ("000.00.00.A01", "Văn phòng Trung ương Đảng", AgencyKind.PARTY),
]
EXPECTED_RECIPIENTS = {code for code, _, kind in AGENCIES if kind in (AgencyKind.MINISTRY, AgencyKind.PROVINCE)}
REJECTING = "000.00.00.H58"
REJECT_REASON = "Văn bản gửi không đúng thẩm quyền xử lý của Ủy ban"


@dataclass
class _Services:
    """The router and the audit projector running in threads of this process."""

    router: Router
    projector: AuditProjector
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        self.router.start()
        for name, target in (("router", self.router.run), ("projector", self.projector.run)):
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guard(self, target: Callable[[threading.Event], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target(self.stop)
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()
        return run

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.router.close()
        self.projector.close()


def run_demo(bus: Bus, say: Callable[[str], None], timeout_s: float = 120.0) -> Timeline:
    """Run the whole exchange; returns the final timeline once every recipient has answered."""
    for code, name, kind in AGENCIES:
        add_agency(bus, code, name, kind)
    say(f"directory: {publish_directory(bus)} entries published ({len(AGENCIES)} agencies)")
    audit = bus.audit_store(writer=True)
    services = _Services(Router(bus, "demo-router"), AuditProjector.connect(bus, audit))
    receivers: dict[str, Receiver] = {}
    try:
        services.start()
        office = Receiver.connect(bus, GOVERNMENT_OFFICE)
        receivers[GOVERNMENT_OFFICE] = office
        number = str(int(time.time()) % 1_000_000)
        document = new_document(
            GOVERNMENT_OFFICE, number=number, notation="VPCP-TTĐT",
            subject="Triển khai thí điểm trục liên thông văn bản lienthong",
            summary="Đề nghị các bộ, địa phương phối hợp thử nghiệm gửi nhận văn bản điện tử qua lienthong.",
            signer_name="Nguyễn Văn A", signer_position="Phó Chủ nhiệm")
        gateway = connect_gateway(bus, GOVERNMENT_OFFICE)
        try:
            sent = gateway.send_document(document, ["group:ministries", "group:provinces"])
        finally:
            gateway.close()
        say(f"sent {document.document_id} (message {sent.message_id}) to group:ministries and group:provinces")

        deadline = time.monotonic() + timeout_s
        answered: set[str] = set()
        timeline = build_timeline(document.document_id, [])
        while time.monotonic() < deadline:
            services.check()
            timeline = build_timeline(document.document_id, audit.events(document.document_id))
            for code in timeline.recipients:
                if code not in receivers:
                    receivers[code] = Receiver.connect(bus, code)
            for code, receiver in receivers.items():
                for item in receiver.poll(200):
                    if item.kind == "document" and item.message and item.message.header.message_id == sent.message_id:
                        say(f"{code} received and verified the document; sent 01 arrived")
                if code != GOVERNMENT_OFFICE and code not in answered and receiver.store.has(sent.message_id):
                    if code == REJECTING:
                        receiver.reply(sent.message_id, StatusCode.REJECTED, reason=REJECT_REASON, staff="Văn thư")
                        say(f"{code} rejected it: {REJECT_REASON}")
                    else:
                        receiver.reply(sent.message_id, StatusCode.ACCEPTED, staff="Văn thư")
                        say(f"{code} accepted it")
                    answered.add(code)
            if set(timeline.recipients) == EXPECTED_RECIPIENTS and not timeline.waiting:
                return timeline
        raise LienthongError(f"not every recipient answered within {timeout_s:.0f} s; "
                             f"still waiting for {', '.join(timeline.waiting) or 'deliveries'}")
    finally:
        for receiver in receivers.values():
            receiver.close()
        services.close()
        audit.close()
