"""Every shipped schema version stays readable, and old and new readers resolve each other's records."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from lienthong.codec import MAGIC, SingleObjectCodec
from lienthong.schemas import SchemaSet, WireSchema, default_schema_dir

SCHEMAS = SchemaSet()
SHIPPED = [line.split() for line in (default_schema_dir() / "fingerprints.txt").read_text().splitlines()
           if line and not line.startswith("#")]


def versions(name: str) -> list[WireSchema]:
    return [*SCHEMAS.history.get(name, []), SCHEMAS[name]]


@pytest.mark.parametrize("name,version,fingerprint", SHIPPED)
def test_every_shipped_version_is_still_known(name: str, version: str, fingerprint: str) -> None:
    writer = SCHEMAS.by_fingerprint(bytes.fromhex(fingerprint))
    assert writer.name == name and writer.version in (version, "current")


def test_every_current_schema_is_listed_as_shipped() -> None:
    listed = {bytes.fromhex(fp) for _, _, fp in SHIPPED}
    missing = [n for n in SCHEMAS.names() if SCHEMAS[n].fingerprint not in listed]
    assert not missing, f"add these to schemas/fingerprints.txt (and their old forms to history/): {missing}"


PAIRS = [(w, r) for name in SCHEMAS.names() if name in SCHEMAS.history
         for w, r in itertools.permutations(versions(name), 2)]


@pytest.mark.parametrize("writer,reader", PAIRS, ids=[f"{w.name}:{w.version}->{r.version}" for w, r in PAIRS])
def test_old_and_new_readers_resolve_each_other(writer: WireSchema, reader: WireSchema) -> None:
    for record in generate_many(writer.parsed, 25):
        out = io.BytesIO()
        schemaless_writer(out, writer.parsed, record)
        out.seek(0)
        read = schemaless_reader(out, writer.parsed, reader.parsed)
        common = {f["name"] for f in writer.json["fields"]} & {f["name"] for f in reader.json["fields"]}
        assert {k: read[k] for k in common} == {k: record[k] for k in common}


def test_a_frame_written_under_an_old_version_decodes_into_the_current_schema() -> None:
    name = "gov.lienthong.AuditEvent"
    old = SCHEMAS.history[name][0]
    [record] = generate_many(old.parsed, 1)
    body = io.BytesIO()
    schemaless_writer(body, old.parsed, record)
    decoded = SingleObjectCodec(SCHEMAS).decode(MAGIC + old.fingerprint + body.getvalue(), name)
    assert decoded["envelope"] is None and decoded["event_id"] == record["event_id"]


def test_history_files_are_named_for_a_current_schema() -> None:
    for path in Path(default_schema_dir(), "history").glob("*.avsc"):
        assert path.name.rsplit(".", 2)[0] in SCHEMAS.names(), path
