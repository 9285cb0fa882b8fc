"""Opinion ballots of the e-Cabinet: the Government Office asks, each member answers once before the deadline."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lienthong.agencies import AgencyCode, check_agency_code


def check_ballot_id(value: str) -> str:
    """`<sender code>,<yyyy/MM/dd>,<number>`, like a document id without the notation."""
    parts = value.split(",")
    if len(parts) != 3 or not parts[2]:
        raise ValueError(f"ballot id {value!r} must read <sender code>,<yyyy/MM/dd>,<number>")
    check_agency_code(parts[0])
    try:
        dt.datetime.strptime(parts[1], "%Y/%m/%d")
    except ValueError:
        raise ValueError(f"ballot id {value!r}: date must be yyyy/MM/dd") from None
    return value


class Ballot(BaseModel):
    model_config = ConfigDict(frozen=True)

    ballot_id: str
    question: str = Field(min_length=1)
    description: str = ""
    options: tuple[str, ...] = Field(min_length=2)
    deadline: dt.datetime
    members: tuple[AgencyCode, ...] = Field(min_length=1)

    @field_validator("ballot_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        return check_ballot_id(value)

    @model_validator(mode="after")
    def _consistent(self) -> Ballot:
        if len(set(self.options)) != len(self.options) or not all(o.strip() for o in self.options):
            raise ValueError("ballot options must be distinct and not blank")
        if len(set(self.members)) != len(self.members):
            raise ValueError("a member is listed once")
        return self

    @property
    def sender(self) -> str:
        return self.ballot_id.partition(",")[0]


class BallotAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    ballot_id: str
    option: str = Field(min_length=1)
    comment: str = ""
    time: dt.datetime

    @field_validator("ballot_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        return check_ballot_id(value)
