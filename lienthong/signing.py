"""Sign the bytes that travel, and verify them before anything decodes them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from lienthong.certificates import PrivateKey, PublicKey, fingerprint
from lienthong.errors import Reason, SignatureError


class SignatureAlgorithm(StrEnum):
    """The signature schemes the bus accepts; the names are the Avro enum symbols."""

    ECDSA_P256_SHA256 = "ECDSA_P256_SHA256"
    RSA_PKCS1V15_SHA256 = "RSA_PKCS1V15_SHA256"
    RSA_PSS_SHA256 = "RSA_PSS_SHA256"
    ED25519 = "ED25519"


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def algorithm_for(key: PrivateKey | PublicKey, rsa_pss: bool = False) -> SignatureAlgorithm:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name != "secp256r1":
            raise SignatureError(f"EC curve {key.curve.name} is not accepted; use P-256")
        return SignatureAlgorithm.ECDSA_P256_SHA256
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < 2048:
            raise SignatureError(f"RSA key of {key.key_size} bits is too short; 2048 bits or more")
        return SignatureAlgorithm.RSA_PSS_SHA256 if rsa_pss else SignatureAlgorithm.RSA_PKCS1V15_SHA256
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return SignatureAlgorithm.ED25519
    raise SignatureError(f"key type {type(key).__name__} is not accepted on the bus",
                         reason=Reason.CERTIFICATE_NOT_VALID)


@dataclass(frozen=True)
class Signer:
    """An agency's private key and the certificate that names it."""

    key: PrivateKey
    certificate: x509.Certificate
    rsa_pss: bool = False

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return algorithm_for(self.key, self.rsa_pss)

    @property
    def certificate_fingerprint(self) -> str:
        return fingerprint(self.certificate)

    def sign(self, data: bytes) -> bytes:
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            pad = _pss() if self.rsa_pss else padding.PKCS1v15()
            return key.sign(data, pad, hashes.SHA256())
        return key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"Signer(certificate={self.certificate_fingerprint[:16]}…, algorithm={self.algorithm})"


def verify(public_key: PublicKey, algorithm: SignatureAlgorithm, data: bytes, signature: bytes) -> None:
    """Raise SignatureError unless signature is valid for data under public_key with algorithm."""
    try:
        expected = algorithm_for(public_key, rsa_pss=algorithm == SignatureAlgorithm.RSA_PSS_SHA256)
    except SignatureError as exc:
        raise SignatureError(exc.message, reason=Reason.CERTIFICATE_NOT_VALID) from exc
    if expected != algorithm:
        raise SignatureError(f"envelope says {algorithm} but the certificate holds a key for {expected}")
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            pad = _pss() if algorithm == SignatureAlgorithm.RSA_PSS_SHA256 else padding.PKCS1v15()
            public_key.verify(signature, data, pad, hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            raise SignatureError(f"key type {type(public_key).__name__} is not accepted")
    except InvalidSignature:
        raise SignatureError("signature does not match the signed content: altered or signed by another key",
                             reason=Reason.BAD_SIGNATURE) from None
