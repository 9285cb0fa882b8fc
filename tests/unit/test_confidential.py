"""Confidential documents without a broker: encryption, key wrapping, the wire branch, the router, the directory."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import os
import re
import stat
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastavro import schemaless_writer

from lienthong.certificates import BusCA, check_certificate, fingerprint, write_private_key
from lienthong.codec import MAGIC
from lienthong.confidential import (
    EncryptionRecipient,
    RecipientKey,
    decrypt,
    encrypt,
    open_document,
    seal_document,
    unwrap_content_key,
)
from lienthong.directory.entries import CertificateEntry, CertificateUsage, usage_of
from lienthong.directory.view import DirectoryView
from lienthong.documents import Attachment, Business, BusinessType, ConfidentialDocument, OfficialDocument
from lienthong.errors import ConfigurationError, DecodingError, NotFoundError, Reason, SignatureError
from lienthong.keystore import KeyStore
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.records import (
    DIRECTORY_ENTRY,
    OFFICIAL_DOCUMENT,
    SIGNED_CONTENT,
    directory_entry_model,
    directory_entry_record,
    document_record,
    message_model,
    message_record,
)
from lienthong.topics import Topics
from producers.gateway import Gateway, Sent
from router.decisions import Accepted, Rejected, decide
from tests.support import (
    AGENCIES,
    MINISTRY_A,
    MINISTRY_B,
    OFFICE,
    PROVINCE,
    document,
    document_message,
    envelopes,
    make_pki,
)

ENV = envelopes()
CODEC = ENV.codec
SKEW = dt.timedelta(minutes=5)
SECRET_SUBJECT = "Mật: phương án nhân sự cấp cao 2027"
SECRET_BYTES = b"SECRET-ATTACHMENT-" + os.urandom(64)


def recipient_key(ca: BusCA, code: str) -> RecipientKey:
    key = x25519.X25519PrivateKey.generate()
    return RecipientKey(code, key, ca.issue_encryption(code, AGENCIES[code][0], key.public_key()))


def to(key: RecipientKey) -> EncryptionRecipient:
    return EncryptionRecipient(key.agency, key.certificate)


def encryption_entry(key: RecipientKey, revoked_at: dt.datetime | None = None) -> CertificateEntry:
    return CertificateEntry(fingerprint=key.certificate_fingerprint, agency=key.agency,
                            der=key.certificate.public_bytes(serialization.Encoding.DER), revoked_at=revoked_at,
                            usage=usage_of(key.certificate))


def secret_document(sender: str = OFFICE) -> OfficialDocument:
    return document(sender, subject=SECRET_SUBJECT,
                    attachments=(Attachment.of("phuong-an.pdf", SECRET_BYTES, "application/pdf"),))


def header_for(doc: OfficialDocument, recipients: tuple[str, ...] = (MINISTRY_A, MINISTRY_B),
               root_id: str | None = None) -> MessageHeader:
    return MessageHeader(kind=MessageKind.DOCUMENT, sender=OFFICE, recipients=recipients,
                         root_id=root_id or doc.document_id, created_at=utc_now())


@pytest.fixture
def world():  # type: ignore[no-untyped-def]
    """A PKI and directory view in which every agency also has an encryption certificate."""
    pki, view = make_pki()
    keys = {code: recipient_key(pki.ca, code) for code in AGENCIES}
    for key in keys.values():
        view.apply(encryption_entry(key))
    return pki, view, keys


# --- lienthong/confidential.py ------------------------------------------------------------------------------------

def test_each_recipient_decrypts_what_was_encrypted_and_the_ciphertext_hides_it(world) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    plaintext = b"plain " + SECRET_SUBJECT.encode() + SECRET_BYTES
    sealed = encrypt(plaintext, header, doc.document_id, [to(keys[MINISTRY_A]), to(keys[MINISTRY_B])])
    assert [w.agency for w in sealed.recipients] == [MINISTRY_A, MINISTRY_B]
    assert sealed.recipients[0].certificate_fingerprint == keys[MINISTRY_A].certificate_fingerprint
    assert decrypt(sealed, header, keys[MINISTRY_A]) == plaintext
    assert decrypt(sealed, header, keys[MINISTRY_B]) == plaintext
    assert SECRET_SUBJECT.encode() not in sealed.ciphertext and SECRET_BYTES not in sealed.ciphertext
    again = encrypt(plaintext, header, doc.document_id, [to(keys[MINISTRY_A])])
    assert again.nonce != sealed.nonce and again.ciphertext != sealed.ciphertext, "a fresh key and nonce each time"


def test_a_key_not_named_cannot_unwrap_and_a_wrong_key_under_a_named_certificate_fails(world) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    sealed = encrypt(b"x" * 100, header, doc.document_id, [to(keys[MINISTRY_A])])
    with pytest.raises(DecodingError, match=f"not for {re.escape(PROVINCE)}") as err:
        decrypt(sealed, header, keys[PROVINCE])
    assert err.value.reason == Reason.UNKNOWN_RECIPIENT
    # The province's key presented as the ministry's, even with the ministry's certificate, opens nothing.
    impostor = RecipientKey(MINISTRY_A, keys[PROVINCE].key, keys[MINISTRY_A].certificate)
    with pytest.raises(DecodingError, match="does not open with its encryption key") as err:
        unwrap_content_key(sealed, header, impostor)
    assert err.value.reason == Reason.CANNOT_DECRYPT
    # The ministry's key under a renewed certificate: the sender named another certificate.
    renewed = recipient_key(world[0].ca, MINISTRY_A)
    with pytest.raises(DecodingError, match="encryption certificate") as err:
        decrypt(sealed, header, renewed)
    assert err.value.reason == Reason.CANNOT_DECRYPT


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key", "ephemeral_key"])
def test_any_changed_byte_makes_decryption_fail(world, field: str) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    sealed = encrypt(b"confidential content", header, doc.document_id, [to(keys[MINISTRY_A])])

    def flip(data: bytes) -> bytes:
        return bytes([data[0] ^ 1]) + data[1:]

    if field in ("ciphertext", "nonce"):
        changed = sealed.model_copy(update={field: flip(getattr(sealed, field))})
    else:
        wrapped = sealed.recipients[0]
        changed = sealed.model_copy(update={"recipients": (
            wrapped.model_copy(update={field: flip(getattr(wrapped, field))}),)})
    with pytest.raises(DecodingError) as err:
        decrypt(changed, header, keys[MINISTRY_A])
    assert err.value.reason == Reason.CANNOT_DECRYPT


@pytest.mark.parametrize("change", ["message_id", "root_id", "sender"])
def test_the_ciphertext_opens_only_in_the_message_it_was_made_for(world, change: str) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    sealed = encrypt(b"confidential content", header, doc.document_id, [to(keys[MINISTRY_A])])
    other = {"message_id": "another-message", "root_id": "000.00.00.G22,2026/01/01,1/VPCP", "sender": MINISTRY_B}
    moved = header.model_copy(update={change: other[change]})
    with pytest.raises(DecodingError) as err:
        decrypt(sealed, moved, keys[MINISTRY_A])
    assert err.value.reason == Reason.CANNOT_DECRYPT


def test_a_wrapped_key_relabelled_for_another_recipient_does_not_open(world) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    sealed = encrypt(b"confidential content", header, doc.document_id, [to(keys[MINISTRY_A])])
    # B's certificate and agency on A's wrapped key: the HPKE info names A, and B's key is not A's.
    relabelled = sealed.model_copy(update={"recipients": (sealed.recipients[0].model_copy(update={
        "agency": MINISTRY_B, "certificate_fingerprint": keys[MINISTRY_B].certificate_fingerprint}),)})
    with pytest.raises(DecodingError):
        decrypt(relabelled, header, keys[MINISTRY_B])


def test_recipient_key_repr_shows_no_key_material(world) -> None:  # type: ignore[no-untyped-def]
    key = world[2][MINISTRY_A]
    raw = key.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    assert raw.hex() not in repr(key) and key.certificate_fingerprint[:16] in repr(key)


# --- the wire: SignedContent v2, envelopes, the router ---------------------------------------------------------------

def test_a_confidential_message_is_signed_routed_and_opened_only_by_its_recipients(world) -> None:  # type: ignore[no-untyped-def]
    pki, view, keys = world
    doc = secret_document()
    header = header_for(doc, recipients=("group:ministries",))
    sealed = seal_document(CODEC, doc, header, [to(keys[MINISTRY_A]), to(keys[MINISTRY_B])])
    value = ENV.seal(Message(header=header, payload=sealed), pki.signers[OFFICE])
    assert SECRET_SUBJECT.encode() not in value and SECRET_BYTES not in value
    assert doc.document_id.encode() in value, "routing metadata stays readable"

    decision = decide(value, view, ENV, utc_now(), SKEW)
    assert isinstance(decision, Accepted), decision
    assert decision.recipients == (MINISTRY_A, MINISTRY_B)
    assert isinstance(decision.message.payload, ConfidentialDocument)

    _, message = ENV.open(value, view, utc_now())
    for code in (MINISTRY_A, MINISTRY_B):
        opened = open_document(CODEC, message, keys[code])
        assert opened.payload == doc and opened.header == header
    with pytest.raises(DecodingError):
        open_document(CODEC, message, keys[PROVINCE])


def test_the_router_refuses_a_confidential_document_a_recipient_could_not_open(world) -> None:  # type: ignore[no-untyped-def]
    pki, view, keys = world
    doc = secret_document()
    header = header_for(doc, recipients=("group:ministries",))
    sealed = seal_document(CODEC, doc, header, [to(keys[MINISTRY_A])])
    decision = decide(ENV.seal(Message(header=header, payload=sealed), pki.signers[OFFICE]), view, ENV, utc_now(),
                      SKEW)
    assert isinstance(decision, Rejected) and decision.reason == Reason.UNKNOWN_RECIPIENT
    assert MINISTRY_B in decision.detail


def test_a_confidential_document_id_must_name_its_sender(world) -> None:  # type: ignore[no-untyped-def]
    pki, view, keys = world
    doc = secret_document(sender=MINISTRY_B)  # a DocumentId of another agency, sent by the Office
    header = header_for(doc)
    sealed = seal_document(CODEC, doc, header, [to(keys[MINISTRY_A]), to(keys[MINISTRY_B])])
    decision = decide(ENV.seal(Message(header=header, payload=sealed), pki.signers[OFFICE]), view, ENV, utc_now(),
                      SKEW)
    assert isinstance(decision, Rejected) and decision.reason == Reason.SENDER_MISMATCH


def test_recipients_check_the_rules_the_router_could_not_see(world) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    doc = secret_document()
    # A new document filed under another story: the router sees only a root id unlike the document id.
    header = header_for(doc, root_id="000.00.00.G22,2026/01/01,1/VPCP")
    message = Message(header=header, payload=seal_document(CODEC, doc, header, [to(keys[MINISTRY_A])]))
    with pytest.raises(DecodingError) as err:
        open_document(CODEC, message, keys[MINISTRY_A])
    assert err.value.reason == Reason.KEY_MISMATCH
    # An update (business type 2) may name an earlier root.
    update = doc.model_copy(update={"business": Business(type=BusinessType.UPDATE, reason="sửa số liệu")})
    message = Message(header=header, payload=seal_document(CODEC, update, header, [to(keys[MINISTRY_A])]))
    assert open_document(CODEC, message, keys[MINISTRY_A]).payload == update
    # The document inside must be the one the router saw, even when its sender encrypted it so.
    other = secret_document().model_copy(update={"document_id": "000.00.00.G22,2026/11/26,9999/VPCP-TTĐT"})
    header = header_for(doc)
    plaintext = CODEC.encode(OFFICIAL_DOCUMENT, document_record(other))
    swapped = Message(header=header, payload=encrypt(plaintext, header, doc.document_id, [to(keys[MINISTRY_A])]))
    with pytest.raises(DecodingError, match="travelled as") as err:
        open_document(CODEC, swapped, keys[MINISTRY_A])
    assert err.value.reason == Reason.SENDER_MISMATCH


def test_a_signed_content_v1_frame_still_decodes() -> None:
    old = ENV.codec.schemas.history[SIGNED_CONTENT][0]
    message = document_message(recipients=(MINISTRY_A,))
    body = io.BytesIO()
    schemaless_writer(body, old.parsed, message_record(message))
    content = MAGIC + old.fingerprint + body.getvalue()
    assert message_model(CODEC.decode(content, SIGNED_CONTENT)) == message


# --- the directory: encryption certificates ------------------------------------------------------------------------

def test_the_view_finds_the_encryption_certificate_in_force(world) -> None:  # type: ignore[no-untyped-def]
    pki, view, keys = world
    now = utc_now()
    assert view.encryption_certificate(MINISTRY_A, now).certificate == keys[MINISTRY_A].certificate
    # Never found as a signing certificate: a sender cannot sign under it.
    with pytest.raises(SignatureError) as err:
        view.certificate(keys[MINISTRY_A].certificate_fingerprint)
    assert err.value.reason == Reason.UNKNOWN_SENDER
    # A revoked one is skipped, a newer one wins.
    view.apply(encryption_entry(keys[MINISTRY_A], revoked_at=now - dt.timedelta(seconds=1)))
    with pytest.raises(NotFoundError, match="no valid encryption certificate"):
        view.encryption_certificate(MINISTRY_A, now)
    newer = recipient_key(pki.ca, MINISTRY_A)
    view.apply(encryption_entry(newer))
    assert view.encryption_certificate(MINISTRY_A, now).certificate == newer.certificate
    # A signing certificate published as an encryption one is not used; neither is one of another CA.
    signing = pki.signers[PROVINCE].certificate
    view.apply(CertificateEntry(fingerprint=fingerprint(signing), agency=PROVINCE,
                                der=signing.public_bytes(serialization.Encoding.DER),
                                usage=CertificateUsage.ENCRYPTION))
    foreign = recipient_key(BusCA.create(), MINISTRY_B)
    view.apply(encryption_entry(foreign))
    assert view.encryption_certificate(PROVINCE, now).certificate == keys[PROVINCE].certificate
    assert view.encryption_certificate(MINISTRY_B, now).certificate == keys[MINISTRY_B].certificate


def test_encryption_certificates_are_for_key_agreement_only(world) -> None:  # type: ignore[no-untyped-def]
    pki, _, keys = world
    cert = keys[MINISTRY_A].certificate
    assert usage_of(cert) is CertificateUsage.ENCRYPTION
    assert usage_of(pki.signers[MINISTRY_A].certificate) is CertificateUsage.SIGNING
    with pytest.raises(SignatureError, match="not for digital signatures"):
        check_certificate(cert, pki.ca.certificate, utc_now())


def test_certificate_entries_carry_their_usage_and_old_entries_are_signing_ones(world) -> None:  # type: ignore[no-untyped-def]
    _, _, keys = world
    entry = encryption_entry(keys[MINISTRY_A])
    frame = CODEC.encode(DIRECTORY_ENTRY, directory_entry_record(entry, utc_now()))
    assert directory_entry_model(CODEC.decode(frame, DIRECTORY_ENTRY)) == entry
    old = CODEC.schemas.history[DIRECTORY_ENTRY][0]
    record = directory_entry_record(entry, utc_now())
    record["entry"][1].pop("usage")
    body = io.BytesIO()
    schemaless_writer(body, old.parsed, record)
    decoded = directory_entry_model(CODEC.decode(MAGIC + old.fingerprint + body.getvalue(), DIRECTORY_ENTRY))
    assert isinstance(decoded, CertificateEntry) and decoded.usage is CertificateUsage.SIGNING


# --- keystore and gateway --------------------------------------------------------------------------------------------

def test_the_keystore_keeps_the_encryption_key_owner_only(tmp_path, world) -> None:  # type: ignore[no-untyped-def]
    key = world[2][MINISTRY_A]
    store = KeyStore(tmp_path / "keys")
    assert not store.has_encryption(MINISTRY_A)
    path = store.save_encryption(MINISTRY_A, key.key, key.certificate)
    assert path.name == f"{MINISTRY_A}.enc.key.pem" and stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = store.recipient_key(MINISTRY_A)
    assert loaded.certificate == key.certificate and loaded.key.public_key() == key.key.public_key()
    write_private_key(path, world[0].signers[MINISTRY_A].key)  # a signing key where the encryption key belongs
    with pytest.raises(ConfigurationError, match="must be X25519"):
        store.recipient_key(MINISTRY_A)
    with pytest.raises(NotFoundError, match="no encryption key"):
        store.recipient_key(MINISTRY_B)


@dataclasses.dataclass
class FakeDirectory:
    view: DirectoryView
    caught_up: int = 0

    def catch_up(self, timeout_s: float = 30.0) -> list[object]:
        self.caught_up += 1
        return []

    def close(self) -> None:
        pass


@dataclasses.dataclass
class FakeSink:
    values: list[bytes] = dataclasses.field(default_factory=list)

    def submit(self, header: MessageHeader, record) -> Sent:  # type: ignore[no-untyped-def]
        self.values.append(record.value)
        return Sent(header.message_id, header.root_id, len(record.value), 0, len(self.values))

    def close(self) -> None:
        pass


def test_the_gateway_encrypts_for_every_expanded_recipient(world) -> None:  # type: ignore[no-untyped-def]
    pki, view, keys = world
    sink, directory = FakeSink(), FakeDirectory(view)
    gateway = Gateway(pki.signers[OFFICE], OFFICE, sink, ENV, Topics("t"), 1_000_000, directory)
    doc = secret_document()
    gateway.send_document(doc, ["group:ministries", PROVINCE], confidential=True)
    [value] = sink.values
    assert directory.caught_up == 1 and SECRET_SUBJECT.encode() not in value and SECRET_BYTES not in value
    _, message = ENV.open(value, view, utc_now())
    assert isinstance(message.payload, ConfidentialDocument)
    assert {w.agency for w in message.payload.recipients} == {MINISTRY_A, MINISTRY_B, PROVINCE}
    assert open_document(CODEC, message, keys[PROVINCE]).payload == doc


def test_the_gateway_sends_nothing_when_a_recipient_has_no_encryption_certificate(world) -> None:  # type: ignore[no-untyped-def]
    pki, _, keys = world
    view = DirectoryView(pki.ca.certificate)  # a directory without encryption certificates…
    for entry in pki.entries(pki.signers):
        view.apply(entry)
    view.apply(encryption_entry(keys[MINISTRY_A]))  # …but for one ministry
    sink = FakeSink()
    gateway = Gateway(pki.signers[OFFICE], OFFICE, sink, ENV, Topics("t"), 1_000_000, FakeDirectory(view))
    with pytest.raises(NotFoundError, match=re.escape(f"cannot encrypt for {MINISTRY_B}, {PROVINCE}")):
        gateway.send_document(secret_document(), ["group:ministries", PROVINCE], confidential=True)
    plain = Gateway(pki.signers[OFFICE], OFFICE, sink, ENV, Topics("t"), 1_000_000)
    with pytest.raises(ConfigurationError, match="follows no directory"):
        plain.send_document(secret_document(), [MINISTRY_A], confidential=True)
    assert sink.values == []


# --- interoperability: the wrapped key is plain RFC 9180 HPKE -----------------------------------------------------

def _rfc9180_open_base(enc: bytes, sk: x25519.X25519PrivateKey, info: bytes, ct: bytes) -> bytes:
    """HPKE OpenBase with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM and empty aad, written from the RFC
    with HMAC and AES-GCM only: what another implementation of the bus would do."""
    def extract(salt: bytes, ikm: bytes) -> bytes:
        return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()

    def expand(prk: bytes, info: bytes, length: int) -> bytes:
        out, block, counter = b"", b"", 1
        while len(out) < length:
            block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
            out, counter = out + block, counter + 1
        return out[:length]

    def labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return extract(salt, b"HPKE-v1" + suite + label + ikm)

    def labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        return expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)

    kem = b"KEM" + (0x0020).to_bytes(2, "big")
    pk_r = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    dh = sk.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    eae_prk = labeled_extract(kem, b"", b"eae_prk", dh)
    shared = labeled_expand(kem, eae_prk, b"shared_secret", enc + pk_r, 32)
    hpke = b"HPKE" + (0x0020).to_bytes(2, "big") + (0x0001).to_bytes(2, "big") + (0x0002).to_bytes(2, "big")
    context = b"\x00" + labeled_extract(hpke, b"", b"psk_id_hash", b"") + labeled_extract(hpke, b"", b"info_hash",
                                                                                          info)
    secret = labeled_extract(hpke, shared, b"secret", b"")
    key = labeled_expand(hpke, secret, b"key", context, 32)
    base_nonce = labeled_expand(hpke, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(base_nonce, ct, b"")


def test_the_documented_construction_opens_without_this_library(world) -> None:  # type: ignore[no-untyped-def]
    """docs/security.md describes the bytes; this opens them from that description alone."""
    def ctx(*parts: str) -> bytes:
        return b"".join(struct.pack(">I", len(p.encode())) + p.encode() for p in parts)

    _, _, keys = world
    doc = secret_document()
    header = header_for(doc)
    sealed = seal_document(CODEC, doc, header, [to(keys[MINISTRY_A])])
    [wrapped] = sealed.recipients
    content_key = _rfc9180_open_base(wrapped.ephemeral_key, keys[MINISTRY_A].key,
                                     ctx("lienthong content key v1", header.message_id, MINISTRY_A),
                                     wrapped.wrapped_key)
    aad = ctx("lienthong confidential document v1", header.message_id, header.sender, header.root_id,
              doc.document_id)
    plaintext = AESGCM(content_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    assert plaintext[:2] == MAGIC and plaintext[2:10] == CODEC.schemas[OFFICIAL_DOCUMENT].fingerprint
    assert SECRET_BYTES in plaintext
