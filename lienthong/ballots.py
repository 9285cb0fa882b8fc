"""Opinion ballots of the e-Cabinet: the Government Office asks, each member answers once before the deadline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lienthong.agencies import AgencyCode, check_agency_code
from lienthong.documents import slash_date
from lienthong.errors import Reason, ValidationError


def check_ballot_id(value: str) -> str:
    """`<sender code>,<yyyy/MM/dd>,<number>`, like a document id without the notation."""
    parts = value.split(",")
    if len(parts) != 3 or not parts[2].strip() or parts[2] != parts[2].strip():
        raise ValueError(f"ballot id {value!r} must read <sender code>,<yyyy/MM/dd>,<number>")
    check_agency_code(parts[0])
    try:
        slash_date(parts[1])
    except ValueError:
        raise ValueError(f"ballot id {value!r}: date must be yyyy/MM/dd") from None
    return value


def make_ballot_id(sender: str, date: dt.date, number: str) -> str:
    return check_ballot_id(f"{sender},{date:%Y/%m/%d},{number}")


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone")
    return value


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    return value


BallotId = Annotated[str, AfterValidator(check_ballot_id)]


class Ballot(BaseModel):
    """What the Office signs: the question, the options, the deadline and the members who may answer."""

    model_config = ConfigDict(frozen=True)

    ballot_id: BallotId
    question: str = Field(min_length=1)
    description: str = ""
    options: tuple[str, ...] = Field(min_length=2)
    deadline: dt.datetime
    members: tuple[AgencyCode, ...] = Field(min_length=1)

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return _not_blank(value, "the question")

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value, "the deadline")

    @model_validator(mode="after")
    def _consistent(self) -> Ballot:
        # An answer names its option exactly, so "Đồng ý" and "Đồng ý " would be two options nobody can tell apart.
        if not all(o.strip() and o == o.strip() for o in self.options):
            raise ValueError("ballot options must not be blank nor start or end with spaces")
        if len(set(self.options)) != len(self.options):
            raise ValueError("ballot options must be distinct")
        if len(set(self.members)) != len(self.members):
            raise ValueError("a member is listed once")
        if self.sender in self.members:
            raise ValueError(f"the sender {self.sender} cannot be one of its own ballot's members")
        return self

    @property
    def sender(self) -> str:
        return self.ballot_id.partition(",")[0]

    def check_answer(self, member: str, option: str) -> None:
        """What the router will check of an answer, said before it is sent (the deadline aside)."""
        if member not in self.members:
            raise ValidationError(f"{member} is not a member asked by ballot {self.ballot_id}",
                                  reason=Reason.NOT_A_PARTY)
        if option not in self.options:
            raise ValidationError(f"{option!r} is not an option of ballot {self.ballot_id}; choose one of: "
                                  f"{' | '.join(self.options)}", reason=Reason.INVALID_CONTENT)


class BallotAnswer(BaseModel):
    """A member's signed answer: one of the ballot's options, exactly, with an optional comment."""

    model_config = ConfigDict(frozen=True)

    ballot_id: BallotId
    option: str = Field(min_length=1)
    comment: str = ""
    time: dt.datetime

    @field_validator("time")
    @classmethod
    def _time(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value, "the answer time")


@dataclass(frozen=True)
class CastAnswer:
    """An answer as the Office received it: who, what, the member's signed time and when it reached the inbox."""

    member: str
    option: str
    comment: str
    answered_at: dt.datetime
    delivered_at: dt.datetime | None = None


@dataclass(frozen=True)
class Tally:
    """Counts per option (every option, zeros too), who answered what, who has not, and whether it is open."""

    ballot: Ballot
    counts: dict[str, int]
    answers: tuple[CastAnswer, ...]
    not_answered: tuple[str, ...]
    closed: bool
    ignored: tuple[CastAnswer, ...] = ()  # answers that break the ballot's rules: never counted

    @property
    def state(self) -> str:
        return "closed" if self.closed else "open"


def tally(ballot: Ballot, answers: list[CastAnswer], now: dt.datetime) -> Tally:
    """The ballot's result as of `now`. Answers are taken in the order given (the order they were received): a
    member's first answer counts, as the router routes only the first; an answer from an agency that is not a
    member, or naming an option the ballot does not have, is set aside."""
    counted: dict[str, CastAnswer] = {}
    ignored: list[CastAnswer] = []
    for answer in answers:
        if answer.member in ballot.members and answer.option in ballot.options and answer.member not in counted:
            counted[answer.member] = answer
        else:
            ignored.append(answer)
    counts = {option: 0 for option in ballot.options}
    for answer in counted.values():
        counts[answer.option] += 1
    in_member_order = tuple(counted[m] for m in ballot.members if m in counted)
    return Tally(ballot, counts, in_member_order, tuple(m for m in ballot.members if m not in counted),
                 closed=now > ballot.deadline, ignored=tuple(ignored))
