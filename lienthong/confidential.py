"""Confidential documents: encrypt an official document for its recipients; decrypt it as one of them.

Pure: certificates, keys and bytes in, bytes out; no I/O. The content (the single-object encoded OfficialDocument)
is encrypted once with AES-256-GCM under a fresh random 256-bit content key; that key is wrapped for each recipient
agency's encryption certificate with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM). The ConfidentialDocument this makes is the payload of a SignedContent, which is then encoded and
signed as every message is: the signature covers the ciphertext and the wrapped keys. On read: verify, decode,
then decrypt, then decode the document (docs/architecture.md, docs/security.md).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lienthong.certificates import fingerprint
from lienthong.codec import SingleObjectCodec
from lienthong.documents import BusinessType, ConfidentialAlgorithm, ConfidentialDocument, OfficialDocument, WrappedKey
from lienthong.errors import DecodingError, Reason, ValidationError
from lienthong.messages import Message, MessageHeader, MessageKind
from lienthong.records import OFFICIAL_DOCUMENT, document_model, document_record

ALGORITHM = ConfidentialAlgorithm.HPKE_X25519_SHA256_AES256GCM
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
CONTENT_KEY_BYTES = 32
NONCE_BYTES = 12
ENC_BYTES = 32  # HPKE Nenc of DHKEM(X25519, HKDF-SHA256): the ephemeral public key
CONTENT_LABEL = "lienthong confidential document v1"
WRAP_LABEL = "lienthong content key v1"


def context_bytes(label: str, *parts: str) -> bytes:
    """The label and each part as UTF-8, each preceded by its length (4 bytes, big-endian): unambiguous, so no
    two different lists of values give the same bytes."""
    out = bytearray()
    for text in (label, *parts):
        data = text.encode("utf-8")
        out += struct.pack(">I", len(data)) + data
    return bytes(out)


def content_aad(header: MessageHeader, document_id: str) -> bytes:
    """AES-GCM associated data of the content: the ciphertext opens only inside the message it was made for."""
    return context_bytes(CONTENT_LABEL, header.message_id, header.sender, header.root_id, document_id)


def wrap_info(header: MessageHeader, agency: str) -> bytes:
    """HPKE info of one wrapped key: it unwraps only for this message and this recipient agency."""
    return context_bytes(WRAP_LABEL, header.message_id, agency)


@dataclass(frozen=True)
class EncryptionRecipient:
    """A recipient agency and the encryption certificate the sender's directory gives for it (already checked)."""

    agency: str
    certificate: x509.Certificate

    @property
    def public_key(self) -> x25519.X25519PublicKey:
        key = self.certificate.public_key()
        if not isinstance(key, x25519.X25519PublicKey):
            raise ValidationError(f"the encryption certificate of {self.agency} holds a {type(key).__name__}, "
                                  "not an X25519 key")
        return key


@dataclass(frozen=True)
class RecipientKey:
    """An agency's encryption private key and its certificate: what opens documents encrypted for it."""

    agency: str
    key: x25519.X25519PrivateKey
    certificate: x509.Certificate

    @property
    def certificate_fingerprint(self) -> str:
        return fingerprint(self.certificate)

    def __repr__(self) -> str:  # never show key material
        return f"RecipientKey(agency={self.agency}, certificate={self.certificate_fingerprint[:16]}…)"


def encrypt(plaintext: bytes, header: MessageHeader, document_id: str,
            recipients: Sequence[EncryptionRecipient]) -> ConfidentialDocument:
    """Encrypt `plaintext` once and wrap its key for each recipient; the header must be the one it will travel in."""
    if not recipients:
        raise ValidationError("a confidential document needs at least one recipient", reason=Reason.NO_RECIPIENTS)
    content_key = AESGCM.generate_key(bit_length=CONTENT_KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(content_key).encrypt(nonce, plaintext, content_aad(header, document_id))
    wrapped = []
    for recipient in recipients:
        sealed = SUITE.encrypt(content_key, recipient.public_key, info=wrap_info(header, recipient.agency))
        wrapped.append(WrappedKey(agency=recipient.agency, certificate_fingerprint=fingerprint(recipient.certificate),
                                  ephemeral_key=sealed[:ENC_BYTES], wrapped_key=sealed[ENC_BYTES:]))
    return ConfidentialDocument(document_id=document_id, algorithm=ALGORITHM, nonce=nonce, ciphertext=ciphertext,
                                recipients=tuple(wrapped))


def unwrap_content_key(document: ConfidentialDocument, header: MessageHeader, key: RecipientKey) -> bytes:
    """The content key, unwrapped with this agency's key; DecodingError if the document was not encrypted for it."""
    if document.algorithm is not ALGORITHM:
        raise DecodingError(f"confidential document uses {document.algorithm}, which this receiver cannot open",
                            reason=Reason.CANNOT_DECRYPT)
    entry = document.wrapped_for(key.agency)
    if entry is None:
        named = ", ".join(w.agency for w in document.recipients)
        raise DecodingError(f"confidential document {document.document_id} was encrypted for {named}, not for "
                            f"{key.agency}: ask its sender to send it again", reason=Reason.UNKNOWN_RECIPIENT)
    if entry.certificate_fingerprint != key.certificate_fingerprint:
        raise DecodingError(f"confidential document {document.document_id} was encrypted for the encryption "
                            f"certificate {entry.certificate_fingerprint[:16]}… of {key.agency}, but this receiver "
                            f"holds {key.certificate_fingerprint[:16]}…: open it with the key of that certificate",
                            reason=Reason.CANNOT_DECRYPT)
    try:
        content_key = SUITE.decrypt(entry.ephemeral_key + entry.wrapped_key, key.key,
                                    info=wrap_info(header, key.agency))
    except InvalidTag:
        raise DecodingError(f"the content key wrapped for {key.agency} does not open with its encryption key",
                            reason=Reason.CANNOT_DECRYPT) from None
    if len(content_key) != CONTENT_KEY_BYTES:
        raise DecodingError("the wrapped content key is not 256 bits", reason=Reason.CANNOT_DECRYPT)
    return content_key


def decrypt(document: ConfidentialDocument, header: MessageHeader, key: RecipientKey) -> bytes:
    """The plaintext, if `key` is one it was encrypted for and nothing was changed or moved to another message."""
    content_key = unwrap_content_key(document, header, key)
    try:
        return AESGCM(content_key).decrypt(document.nonce, document.ciphertext,
                                           content_aad(header, document.document_id))
    except InvalidTag:
        raise DecodingError(f"confidential document {document.document_id} does not open: its ciphertext was "
                            "altered or made for another message", reason=Reason.CANNOT_DECRYPT) from None


def seal_document(codec: SingleObjectCodec, document: OfficialDocument, header: MessageHeader,
                  recipients: Sequence[EncryptionRecipient]) -> ConfidentialDocument:
    """Encode the document (single-object OfficialDocument) and encrypt it for `recipients`."""
    return encrypt(codec.encode(OFFICIAL_DOCUMENT, document_record(document)), header, document.document_id,
                   recipients)


def open_document(codec: SingleObjectCodec, message: Message, key: RecipientKey) -> Message:
    """The verified message with its ConfidentialDocument replaced by the OfficialDocument inside.

    The router could read only the outer document id, so the rules it applies to a plain document are checked
    here on the decrypted one: same document id, and a new document is its own root."""
    outer = message.payload
    if not isinstance(outer, ConfidentialDocument) or message.header.kind is not MessageKind.DOCUMENT:
        raise DecodingError("not a confidential document", reason=Reason.WRONG_KIND)
    inner = document_model(codec.decode(decrypt(outer, message.header, key), OFFICIAL_DOCUMENT))
    if inner.document_id != outer.document_id:
        raise DecodingError(f"the encrypted document is {inner.document_id}, but it travelled as "
                            f"{outer.document_id}", reason=Reason.SENDER_MISMATCH)
    if inner.business.type == BusinessType.NEW and message.header.root_id != inner.document_id:
        raise DecodingError("a new document is its own root: root id must equal its document id",
                            reason=Reason.KEY_MISMATCH)
    return Message(header=message.header, payload=inner)
