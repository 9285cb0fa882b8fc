import datetime as dt
import stat

import pytest

from lienthong.certificates import BusCA, check_certificate, generate_key, read_private_key, write_private_key
from lienthong.errors import Reason, SignatureError
from lienthong.signing import SignatureAlgorithm, Signer, verify
from tests.support import OFFICE, Pki

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _now() -> None:
    """NOW is the test's own time, not the time the module was collected (a long suite runs for minutes)."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("key_type,rsa_pss,algorithm", [
    ("ecdsa-p256", False, SignatureAlgorithm.ECDSA_P256_SHA256),
    ("rsa-2048", False, SignatureAlgorithm.RSA_PKCS1V15_SHA256),
    ("rsa-2048", True, SignatureAlgorithm.RSA_PSS_SHA256),
    ("ed25519", False, SignatureAlgorithm.ED25519),
])
def test_each_accepted_algorithm_signs_and_verifies(key_type: str, rsa_pss: bool,
                                                    algorithm: SignatureAlgorithm) -> None:
    signer = Pki().signer(OFFICE, key_type=key_type, rsa_pss=rsa_pss)
    assert signer.algorithm == algorithm
    data = b"signed content bytes"
    signature = signer.sign(data)
    verify(signer.certificate.public_key(), algorithm, data, signature)
    with pytest.raises(SignatureError) as err:
        verify(signer.certificate.public_key(), algorithm, data[:-1] + b"!", signature)
    assert err.value.reason == Reason.BAD_SIGNATURE


def test_signature_of_another_key_does_not_verify() -> None:
    pki = Pki()
    ours, theirs = pki.signer(OFFICE), pki.signer(OFFICE)
    with pytest.raises(SignatureError, match="signed by another key"):
        verify(ours.certificate.public_key(), ours.algorithm, b"x", theirs.sign(b"x"))


def test_algorithm_named_in_envelope_must_fit_the_key() -> None:
    signer = Pki().signer(OFFICE, key_type="ed25519")
    with pytest.raises(SignatureError, match="ED25519"):
        verify(signer.certificate.public_key(), SignatureAlgorithm.ECDSA_P256_SHA256, b"x", signer.sign(b"x"))


def test_certificate_windows_and_issuer_are_checked() -> None:
    pki = Pki()
    expired = pki.signer(OFFICE, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    future = pki.signer(OFFICE, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))
    stranger = Pki().signer(OFFICE)
    check_certificate(pki.signer(OFFICE).certificate, pki.ca.certificate, NOW)
    for signer, text in ((expired, "expired"), (future, "not valid before"), (stranger, "not issued by")):
        with pytest.raises(SignatureError, match=text) as err:
            check_certificate(signer.certificate, pki.ca.certificate, NOW)
        assert err.value.reason == Reason.CERTIFICATE_NOT_VALID


def test_private_keys_are_written_owner_only_and_repr_hides_them(tmp_path) -> None:
    key = generate_key()
    path = tmp_path / "keys" / "k.pem"
    path.parent.mkdir()
    path.write_text("old content, world readable")
    path.chmod(0o644)
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_private_key(path).private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    ca = BusCA.create()
    signer = Signer(key, ca.issue(OFFICE, "VPCP", key.public_key()))
    assert "PRIVATE" not in repr(signer) and "private_numbers" not in repr(signer)
