"""Seal and open signed envelopes. The order is fixed: encode, then sign; on read, verify, then decode."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from cryptography import x509

from lienthong.certificates import PublicKey, agency_of, check_issuer, check_validity
from lienthong.codec import SingleObjectCodec
from lienthong.errors import DecodingError, LienthongError, Reason, SignatureError
from lienthong.messages import Message, MessageHeader
from lienthong.records import ENVELOPE, SIGNED_CONTENT, header_model, message_model, message_record
from lienthong.signing import SignatureAlgorithm, Signer, verify


@dataclass(frozen=True)
class Envelope:
    """The outer record: signed content bytes, the signature, and which certificate made it."""

    content: bytes
    signature: bytes
    certificate_fingerprint: str
    algorithm: SignatureAlgorithm

    @property
    def content_digest(self) -> bytes:
        """SHA-256 of the signed bytes: what a status notice quotes as its receipt."""
        return hashlib.sha256(self.content).digest()


@dataclass(frozen=True)
class TrustedCertificate:
    """A certificate as the directory knows it."""

    agency: str
    certificate: x509.Certificate
    revoked_at: dt.datetime | None = None

    @cached_property
    def subject_agency(self) -> str:
        """The agency code in the certificate's subject, read once: cryptography builds the subject's objects again on
        every access (7 µs per message in the router). Raises SignatureError if the subject names no agency."""
        return agency_of(self.certificate)


class CertificateSource(Protocol):
    """Where a verifier looks certificates up: the directory view."""

    def certificate(self, fingerprint: str) -> TrustedCertificate: ...

    @property
    def ca_certificate(self) -> x509.Certificate: ...


class EnvelopeCodec:
    """Turns signed messages into bus bytes and back, checking signatures before decoding content."""

    def __init__(self, codec: SingleObjectCodec) -> None:
        self.codec = codec
        # The CA's signature on a certificate and the certificate's parsed key do not change: check and parse
        # once per (certificate, CA) instead of once per message (an ECDSA verification and a key parse each).
        self._issued: dict[str, tuple[x509.Certificate, x509.Certificate, PublicKey]] = {}

    def _issued_key(self, fingerprint: str, cert: x509.Certificate, ca_certificate: x509.Certificate) -> PublicKey:
        # Keyed by the directory's fingerprint; the certificate and the CA are compared too, so neither a directory
        # that changed what a fingerprint names nor another CA can reuse an earlier check.
        cached = self._issued.get(fingerprint)
        if cached is not None and cached[0] == cert and cached[1] == ca_certificate:
            return cached[2]
        check_issuer(cert, ca_certificate)
        public_key: PublicKey = cert.public_key()  # type: ignore[assignment]
        if len(self._issued) > 10_000:
            self._issued.clear()
        self._issued[fingerprint] = (cert, ca_certificate, public_key)
        return public_key

    def seal_bytes(self, content: bytes, signer: Signer) -> bytes:
        return self.codec.encode(ENVELOPE, {
            "content": content,
            "signature": signer.sign(content),
            "certificate_fingerprint": signer.certificate_fingerprint,
            "signature_algorithm": signer.algorithm.value,
        })

    def encode_content(self, message: Message) -> bytes:
        return self.codec.encode(SIGNED_CONTENT, message_record(message))

    def seal(self, message: Message, signer: Signer) -> bytes:
        return self.seal_bytes(self.encode_content(message), signer)

    def read(self, data: bytes) -> Envelope:
        rec = self.codec.decode(data, ENVELOPE)
        return Envelope(rec["content"], rec["signature"], rec["certificate_fingerprint"],
                        SignatureAlgorithm(rec["signature_algorithm"]))

    def verify(self, envelope: Envelope, certificates: CertificateSource, at: dt.datetime) -> TrustedCertificate:
        """Check the signer's certificate and the signature over the content bytes; returns the signer."""
        trusted = certificates.certificate(envelope.certificate_fingerprint)
        public_key = self._issued_key(envelope.certificate_fingerprint, trusted.certificate,
                                      certificates.ca_certificate)
        check_validity(trusted.certificate, at)
        verify(public_key, envelope.algorithm, envelope.content, envelope.signature)
        # Revocation last: the refusal can then say which genuine message it refused.
        if trusted.revoked_at is not None and trusted.revoked_at <= at:
            raise SignatureError(f"certificate of {trusted.agency} was revoked on "
                                 f"{trusted.revoked_at:%Y-%m-%d %H:%M:%S} UTC", reason=Reason.CERTIFICATE_REVOKED)
        return trusted

    def decode_content(self, envelope: Envelope) -> Message:
        return message_model(self.codec.decode(envelope.content, SIGNED_CONTENT))

    def decode_header(self, envelope: Envelope) -> MessageHeader | None:
        """Only the header of content whose payload breaks a rule (for the audit of its rejection); None if even
        the header cannot be read."""
        try:
            return header_model(self.codec.decode(envelope.content, SIGNED_CONTENT)["header"])
        except (LienthongError, KeyError, ValueError, TypeError, OverflowError, OSError):
            return None

    def open(self, data: bytes, certificates: CertificateSource, at: dt.datetime) -> tuple[Envelope, Message]:
        """Read, verify, then decode; the sender named inside must be the certificate's agency."""
        envelope = self.read(data)
        signer = self.verify(envelope, certificates, at)
        message = self.decode_content(envelope)
        if message.header.sender != signer.agency or signer.subject_agency != signer.agency:
            raise SignatureError(
                f"message claims to come from {message.header.sender} but is signed with the key of {signer.agency}",
                reason=Reason.SENDER_MISMATCH)
        return envelope, message


def ensure_bytes(value: bytes | None) -> bytes:
    if value is None:
        raise DecodingError("empty record: no value", reason=Reason.NOT_SINGLE_OBJECT)
    return value
