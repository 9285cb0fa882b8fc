"""Names of the bus topics, from the configured prefix (DESIGN decision 3)."""

from __future__ import annotations

from dataclasses import dataclass

from lienthong.agencies import check_agency_code


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def ingress(self) -> str:
        return f"{self.prefix}.ingress"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def audit(self) -> str:
        return f"{self.prefix}.audit"

    @property
    def directory(self) -> str:
        return f"{self.prefix}.directory"

    @property
    def router_seen(self) -> str:
        """Message ids the routers delivered, one partition per ingress partition, kept for the window."""
        return f"{self.prefix}.router.seen"

    @property
    def router_stories(self) -> str:
        """The state of each story (a document's recipients and statuses, a ballot's answers), compacted by root id,
        one partition per ingress partition."""
        return f"{self.prefix}.router.stories"

    def inbox(self, agency: str) -> str:
        return f"{self.prefix}.inbox.{check_agency_code(agency)}"

    def router_group(self) -> str:
        return f"{self.prefix}.router"

    def receiver_group(self, agency: str) -> str:
        return f"{self.prefix}.receiver.{check_agency_code(agency)}"

    def projector_group(self) -> str:
        return f"{self.prefix}.audit-projector"
