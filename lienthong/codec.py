"""Avro single-object encoding: C3 01, the writer schema's CRC-64-AVRO fingerprint, the Avro body."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from lienthong.errors import DecodingError, Reason
from lienthong.schemas import SchemaSet, WireSchema

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class SingleObjectCodec:
    """Encodes records under our schemas; decodes any known writer schema into our reader schema."""

    def __init__(self, schemas: SchemaSet) -> None:
        self.schemas = schemas

    def encode(self, schema_name: str, record: dict[str, Any]) -> bytes:
        schema = self.schemas[schema_name]
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(schema.fingerprint)
        schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def writer_name(self, data: bytes) -> str:
        """The name of the schema a single-object frame was written with (raises if it is no frame, or the schema
        is unknown): for a reader that takes more than one record type from one topic."""
        return self._writer(data).name

    def _writer(self, data: bytes) -> WireSchema:
        if not isinstance(data, (bytes, bytearray)) or len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodingError("not an Avro single-object frame (expected the bytes C3 01 and a fingerprint)",
                                reason=Reason.NOT_SINGLE_OBJECT, raw=bytes(data or b""))
        return self.schemas.by_fingerprint(bytes(data[2:HEADER_LEN]))

    def decode(self, data: bytes, expected: str) -> dict[str, Any]:
        """Decode a single-object frame whose writer schema must be a version of `expected`."""
        writer = self._writer(data)
        if writer.name != expected:
            raise DecodingError(f"expected a {expected} record, got {writer.name}",
                                reason=Reason.UNKNOWN_SCHEMA, raw=bytes(data))
        reader = self.schemas[expected]
        stream = io.BytesIO(data)
        stream.seek(HEADER_LEN)
        # Resolution only when the writer is another version: fastavro's resolving reader is several times slower.
        resolve_into = None if writer is reader else reader.parsed
        try:
            record = schemaless_reader(stream, writer.parsed, resolve_into)
        except (EOFError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, OverflowError) as exc:
            raise DecodingError(f"truncated or malformed Avro body for {expected}: {exc!r}",
                                reason=Reason.MALFORMED_AVRO, raw=bytes(data)) from exc
        if stream.tell() != len(data):
            raise DecodingError(f"{len(data) - stream.tell()} bytes left over after the {expected} record",
                                reason=Reason.MALFORMED_AVRO, raw=bytes(data))
        if not isinstance(record, dict):
            raise DecodingError(f"{expected} did not decode to a record", reason=Reason.MALFORMED_AVRO, raw=bytes(data))
        return record
