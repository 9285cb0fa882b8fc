"""Apache Avro, in Java and in Python, reads our schemas and our bytes exactly as we do."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest

from lienthong.certificates import BusCA, generate_key
from lienthong.codec import HEADER_LEN, MAGIC, SingleObjectCodec
from lienthong.documents import Attachment
from lienthong.envelope import EnvelopeCodec
from lienthong.messages import Message, MessageHeader, MessageKind, utc_now
from lienthong.records import ENVELOPE, SIGNED_CONTENT
from lienthong.schemas import SchemaSet, default_schema_dir
from lienthong.signing import SignatureAlgorithm, Signer, verify
from lienthong.transport.jars import fetch_jars
from producers.builder import new_document

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SCHEMA_DIR = default_schema_dir()
SCHEMAS = SchemaSet(SCHEMA_DIR)
JAVA_TIMEOUT = 120  # seconds; the source launcher compiles AvroCheck.java on every run

SENDER = "000.00.00.G22"
SUBJECT = "Về việc triển khai trục liên thông văn bản quốc gia"
ATTACHMENT = Attachment.of("báo-cáo-tổng-hợp.pdf", b"%PDF-1.7\n\x00\xc3\x01\xff", "application/pdf")

AvroJava = Callable[..., str]


@pytest.fixture(scope="module")
def avro_java() -> AvroJava:
    """Runs AvroCheck.java against Apache Avro Java, fetching its pinned jars into var/ on first use."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not on PATH: the Avro interop tests need a JDK 17 or newer")
    repo = os.environ.get("LIENTHONG_MAVEN_REPO", "https://repo1.maven.org/maven2")
    jars = fetch_jars(HERE / "avro-java.lock", REPO_ROOT / "var" / "interop-jars", repo)
    classpath = os.pathsep.join(str(jar) for jar in jars)  # exactly the locked jars, not the whole folder

    def run(*args: str) -> str:
        done = subprocess.run([java, "-cp", classpath, str(HERE / "AvroCheck.java"), *args],
                              capture_output=True, encoding="utf-8", timeout=JAVA_TIMEOUT, check=False)
        if done.returncode != 0:
            pytest.fail(f"AvroCheck {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done.stdout

    return run


@pytest.fixture(scope="module")
def java_schemas(avro_java: AvroJava) -> dict[str, tuple[str, str]]:
    """Full name -> (fingerprint hex, Parsing Canonical Form), as Avro Java computes them from the files."""
    lines = avro_java("fingerprints", str(SCHEMA_DIR)).splitlines()
    return {name: (fp, canonical)
            for (name, fp), canonical in zip((line.split() for line in lines[::2]), lines[1::2], strict=True)}


@pytest.fixture(scope="module")
def signer() -> Signer:
    ca = BusCA.create()
    key = generate_key()
    return Signer(key, ca.issue(SENDER, "Văn phòng Chính phủ", key.public_key()))


@pytest.fixture(scope="module")
def frames(signer: Signer) -> dict[str, bytes]:
    """A real document message encoded by our codec: the SignedContent frame and its sealed Envelope."""
    document = new_document(SENDER, number="7816", notation="VPCP-TTĐT", subject=SUBJECT,
                            date=dt.date(2025, 3, 14), attachments=(ATTACHMENT,))
    header = MessageHeader(kind=MessageKind.DOCUMENT, sender=SENDER, recipients=("000.00.01.H26",),
                           root_id=document.document_id, created_at=utc_now())
    envelopes = EnvelopeCodec(SingleObjectCodec(SCHEMAS))
    message = Message(header=header, payload=document)
    return {SIGNED_CONTENT: envelopes.encode_content(message), ENVELOPE: envelopes.seal(message, signer)}


def test_every_schema_is_known_to_java(java_schemas: dict[str, tuple[str, str]]) -> None:
    assert sorted(java_schemas) == SCHEMAS.names()


@pytest.mark.parametrize("name", SCHEMAS.names())
def test_java_fingerprint_and_canonical_form_match_ours(name: str,
                                                        java_schemas: dict[str, tuple[str, str]]) -> None:
    fingerprint, canonical = java_schemas[name]
    assert canonical == SCHEMAS[name].canonical_form
    assert fingerprint == SCHEMAS[name].fingerprint.hex()


@pytest.mark.parametrize("name", SCHEMAS.names())
def test_apache_python_fingerprint_and_canonical_form_match_ours(name: str) -> None:
    schema = avro.schema.parse(json.dumps(SCHEMAS[name].json))
    assert schema.canonical_form == SCHEMAS[name].canonical_form
    assert schema.fingerprint("CRC-64-AVRO") == SCHEMAS[name].fingerprint


def _java_decode(avro_java: AvroJava, tmp_path: Path, name: str, frame: bytes) -> dict[str, Any]:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(frame)
    record: dict[str, Any] = json.loads(avro_java("decode", str(SCHEMA_DIR), name, str(path)))
    return record


def _java_bytes(value: str) -> bytes:
    # GenericData prints a bytes value as a JSON string of one ISO-8859-1 character per byte.
    return value.encode("latin-1")


def test_java_opens_our_envelope(avro_java: AvroJava, tmp_path: Path, frames: dict[str, bytes],
                                 signer: Signer) -> None:
    envelope = _java_decode(avro_java, tmp_path, ENVELOPE, frames[ENVELOPE])
    assert envelope["certificate_fingerprint"] == signer.certificate_fingerprint
    assert envelope["signature_algorithm"] == SignatureAlgorithm.ECDSA_P256_SHA256
    content, signature = _java_bytes(envelope["content"]), _java_bytes(envelope["signature"])
    assert content == frames[SIGNED_CONTENT]
    public_key = signer.certificate.public_key()
    verify(public_key, SignatureAlgorithm.ECDSA_P256_SHA256, content, signature)  # type: ignore[arg-type]


def test_java_reads_our_signed_content(avro_java: AvroJava, tmp_path: Path, frames: dict[str, bytes]) -> None:
    content = _java_decode(avro_java, tmp_path, SIGNED_CONTENT, frames[SIGNED_CONTENT])
    assert content["header"]["sender"] == SENDER
    assert content["payload"]["subject"] == SUBJECT
    [attachment] = content["payload"]["attachments"]
    assert attachment["name"] == ATTACHMENT.name
    assert _java_bytes(attachment["data"]) == ATTACHMENT.data
    assert bytes(b & 0xFF for b in attachment["sha256"]) == ATTACHMENT.sha256  # a fixed prints signed bytes


@pytest.mark.parametrize("name", [ENVELOPE, SIGNED_CONTENT])
def test_apache_python_reads_our_frames(name: str, frames: dict[str, bytes]) -> None:
    frame = frames[name]
    writer = avro.schema.parse(json.dumps(SCHEMAS[name].json))
    assert frame[:2] == MAGIC
    assert frame[2:HEADER_LEN] == writer.fingerprint("CRC-64-AVRO")
    body = io.BytesIO(frame[HEADER_LEN:])
    record = avro.io.DatumReader(writer).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(frame) - HEADER_LEN, "Apache avro left bytes unread"
    assert record == SingleObjectCodec(SCHEMAS).decode(frame, name)
    if name == SIGNED_CONTENT:
        assert record["header"]["sender"] == SENDER
        assert record["payload"]["subject"] == SUBJECT
        assert record["payload"]["attachments"][0]["name"] == ATTACHMENT.name
