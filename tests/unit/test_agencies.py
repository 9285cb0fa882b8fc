import pytest

from lienthong.agencies import check_address, check_agency_code
from lienthong.errors import Reason, ValidationError


@pytest.mark.parametrize("code", ["000.00.00.G22", "000.00.00.H20", "000.00.14.H20", "999.99.99.Z99"])
def test_decision_20_codes_are_accepted(code: str) -> None:
    assert check_agency_code(code) == code


@pytest.mark.parametrize("code", ["", "000.00.00", "000.00.00.g22", "00.00.00.G22", "000.00.00.G2",
                                  "000.00.00.G222", "000-00-00-G22", "000.00.00.22G", " 000.00.00.G22"])
def test_malformed_codes_are_refused_with_the_expected_shape(code: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_agency_code(code)
    assert err.value.reason == Reason.MALFORMED_AGENCY_CODE
    assert "000.00.00.G22" in err.value.message


def test_addresses_are_codes_or_groups() -> None:
    assert check_address("group:ministries") == "group:ministries"
    with pytest.raises(ValidationError):
        check_address("group:Bộ")
    with pytest.raises(ValidationError):
        check_address("ministries")
