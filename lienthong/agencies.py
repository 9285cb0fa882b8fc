"""Agencies as Decision 20/2020/QĐ-TTg names them, their kinds, and the groups that address many at once."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from lienthong.errors import Reason, ValidationError

_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
GROUP_PREFIX = "group:"


class AgencyKind(StrEnum):
    """What an agency is; every kind is also a group that can be addressed as a whole."""

    MINISTRY = "ministry"
    PROVINCE = "province"
    PARTY = "party"
    STATE = "state"
    GOVERNMENT = "government"
    DEPARTMENT = "department"
    OTHER = "other"


# The group every agency of a kind belongs to, by its address on the bus.
KIND_GROUPS: dict[str, AgencyKind] = {
    "ministries": AgencyKind.MINISTRY,
    "provinces": AgencyKind.PROVINCE,
    "party-bodies": AgencyKind.PARTY,
    "state-bodies": AgencyKind.STATE,
    "departments": AgencyKind.DEPARTMENT,
}


def check_agency_code(code: str) -> str:
    """Return the code if it has the shape of Decision 20/2020 (e.g. 000.00.00.G22), else raise."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValidationError(
            f"malformed agency code {code!r}: expected four dot-separated groups like 000.00.00.G22 "
            "(three digits, two digits, two digits, a capital letter and two digits)",
            reason=Reason.MALFORMED_AGENCY_CODE,
        )
    return code


def is_group_address(address: str) -> bool:
    return address.startswith(GROUP_PREFIX)


def check_address(address: str) -> str:
    """A recipient address is an agency code or `group:<name>`."""
    if is_group_address(address):
        name = address[len(GROUP_PREFIX) :]
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise ValidationError(
                f"malformed group address {address!r}: expected group:<lowercase-name>, e.g. group:ministries",
                reason=Reason.MALFORMED_AGENCY_CODE,
            )
        return address
    return check_agency_code(address)


AgencyCode = Annotated[str, AfterValidator(check_agency_code)]


class Agency(BaseModel):
    """An agency known to the bus."""

    model_config = ConfigDict(frozen=True)

    code: AgencyCode
    name: str
    kind: AgencyKind
