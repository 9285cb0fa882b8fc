"""Dossier status events of the National Public Service Portal: where a citizen's or business's dossier is."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from lienthong.agencies import check_agency_code
from lienthong.errors import Reason, ValidationError
from lienthong.reports import VIETNAM


class OwnerKind(StrEnum):
    CITIZEN = "CITIZEN"
    BUSINESS = "BUSINESS"


class DossierStatus(StrEnum):
    """The names are the Avro enum symbols; the order of declaration is the order of handling."""

    RECEIVED = "RECEIVED"
    IN_PROGRESS = "IN_PROGRESS"
    SUPPLEMENT_REQUESTED = "SUPPLEMENT_REQUESTED"
    ON_HOLD = "ON_HOLD"
    RESULT_READY = "RESULT_READY"
    RETURNED = "RETURNED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"

    @property
    def label(self) -> str:
        """The status in plain words, for a citizen."""
        return _LABELS[self]

    @property
    def rank(self) -> int:
        """Position in the handling order: breaks a tie between two events of the same millisecond."""
        return _RANKS[self]

    @property
    def finished(self) -> bool:
        """Handling is over: the dossier can no longer be overdue."""
        return self in _FINISHED


_LABELS = {
    DossierStatus.RECEIVED: "received, waiting to be handled (Đã tiếp nhận)",
    DossierStatus.IN_PROGRESS: "being handled (Đang xử lý)",
    DossierStatus.SUPPLEMENT_REQUESTED: "waiting for the applicant to supplement the dossier (Yêu cầu bổ sung)",
    DossierStatus.ON_HOLD: "on hold (Tạm dừng)",
    DossierStatus.RESULT_READY: "result ready to collect (Đã có kết quả)",
    DossierStatus.RETURNED: "result handed to the applicant (Đã trả kết quả)",
    DossierStatus.REJECTED: "refused (Từ chối giải quyết)",
    DossierStatus.WITHDRAWN: "withdrawn by the applicant (Rút hồ sơ)",
}
_RANKS = {status: n for n, status in enumerate(DossierStatus)}
_FINISHED = frozenset({DossierStatus.RESULT_READY, DossierStatus.RETURNED, DossierStatus.REJECTED,
                       DossierStatus.WITHDRAWN})

# The portal opened in 2019; a dossier received before the electronic one-stop shops existed is a typing error.
EARLIEST_RECEIVED = dt.date(2000, 1, 1)


class DossierStatusEvent(BaseModel):
    """One status change of one dossier, as the portal that handles it reports it."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    dossier_code: str = Field(min_length=1, max_length=128)
    procedure_code: str = Field(min_length=1, max_length=128)
    field: str = Field(min_length=1, max_length=256)
    owner_kind: OwnerKind
    received_date: dt.date
    due_date: dt.date | None = None
    status: DossierStatus
    handling_unit: str = Field(min_length=1, max_length=256)
    handler: str = Field("", max_length=256)
    # With its offset: a time without one would be read in whatever zone the reading machine is in.
    time: AwareDatetime

    @model_validator(mode="after")
    def _possible_dates(self) -> DossierStatusEvent:
        if self.received_date < EARLIEST_RECEIVED:
            raise ValidationError(f"dossier {self.dossier_code}: received date {self.received_date} is before "
                                  f"{EARLIEST_RECEIVED}", reason=Reason.IMPOSSIBLE_DATE)
        if self.due_date is not None and self.due_date < self.received_date:
            raise ValidationError(f"dossier {self.dossier_code}: due date {self.due_date} is before its received "
                                  f"date {self.received_date}", reason=Reason.IMPOSSIBLE_DATE)
        changed_on = self.time.astimezone(VIETNAM).date()
        if changed_on < self.received_date:
            raise ValidationError(f"dossier {self.dossier_code}: status time {changed_on} is before its received "
                                  f"date {self.received_date}", reason=Reason.IMPOSSIBLE_DATE)
        return self


class DossierStatusBatch(BaseModel):
    """Status events signed together; accepted or rejected as a whole."""

    model_config = ConfigDict(frozen=True)

    batch_id: str = Field(max_length=256)
    events: tuple[DossierStatusEvent, ...] = Field(min_length=1)

    @field_validator("batch_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        sender, _, rest = value.partition(",")
        check_agency_code(sender)
        if not rest.strip():
            raise ValueError(f"batch id {value!r} must read <sender code>,<unique text>")
        return value

    @property
    def sender(self) -> str:
        return self.batch_id.partition(",")[0]


DOSSIER_BATCH = TypeAdapter(DossierStatusBatch)
