import json
import os

import avro.schema
import pytest

from lienthong.codec import SingleObjectCodec
from lienthong.documents import Attachment
from lienthong.errors import DecodingError, Reason
from lienthong.records import ENVELOPE, SIGNED_CONTENT, message_model, message_record
from lienthong.schemas import SchemaSet
from tests.support import MINISTRY_A, OFFICE, document, document_message, notice_message

SCHEMAS = SchemaSet()
CODEC = SingleObjectCodec(SCHEMAS)


def test_every_schema_has_its_own_fingerprint() -> None:
    fingerprints = [SCHEMAS[name].fingerprint for name in SCHEMAS.names()]
    assert len(set(fingerprints)) == len(fingerprints) >= 9


@pytest.mark.parametrize("name", SCHEMAS.names())
def test_fingerprint_and_canonical_form_agree_with_apache_avro(name: str) -> None:
    ours = SCHEMAS[name]
    theirs = avro.schema.parse(json.dumps(ours.json))
    assert theirs.canonical_form == ours.canonical_form
    assert theirs.fingerprint("CRC-64-AVRO") == ours.fingerprint


def test_named_types_from_other_files_are_defined_once_at_first_use() -> None:
    text = json.dumps(SCHEMAS[SIGNED_CONTENT].json)
    assert text.count('"name": "gov.lienthong.Attachment"') == 1
    assert text.count('"name": "gov.lienthong.Sha256"') == 1


def test_document_message_round_trips_exactly() -> None:
    doc = document(attachments=(Attachment.of("Công văn.pdf", os.urandom(2000), "application/pdf"),))
    message = document_message(doc=doc, recipients=("group:ministries", "000.00.00.H29"))
    data = CODEC.encode(SIGNED_CONTENT, message_record(message))
    assert data[:2] == b"\xc3\x01" and data[2:10] == SCHEMAS[SIGNED_CONTENT].fingerprint
    assert message_model(CODEC.decode(data, SIGNED_CONTENT)) == message


def test_notice_round_trips_exactly() -> None:
    message = notice_message(MINISTRY_A, OFFICE, document_message())
    assert message_model(CODEC.decode(CODEC.encode(SIGNED_CONTENT, message_record(message)), SIGNED_CONTENT)) == message


@pytest.mark.parametrize("data,reason", [
    (b"", Reason.NOT_SINGLE_OBJECT),
    (b"hello, this is not avro", Reason.NOT_SINGLE_OBJECT),
    (b"\xc3\x01\x00\x01\x02\x03\x04\x05\x06\x07rest", Reason.UNKNOWN_SCHEMA),
])
def test_frames_that_are_not_ours_are_refused(data: bytes, reason: Reason) -> None:
    with pytest.raises(DecodingError) as err:
        CODEC.decode(data, ENVELOPE)
    assert err.value.reason == reason


def test_truncated_and_padded_bodies_are_refused() -> None:
    data = CODEC.encode(SIGNED_CONTENT, message_record(document_message()))
    for bad in (data[:-5], data[:12], data + b"\x00"):
        with pytest.raises(DecodingError) as err:
            CODEC.decode(bad, SIGNED_CONTENT)
        assert err.value.reason == Reason.MALFORMED_AVRO


def test_a_record_of_another_schema_is_refused() -> None:
    data = CODEC.encode(SIGNED_CONTENT, message_record(document_message()))
    with pytest.raises(DecodingError, match=r"expected a gov\.lienthong\.Envelope"):
        CODEC.decode(data, ENVELOPE)
