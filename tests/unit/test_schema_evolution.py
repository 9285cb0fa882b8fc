"""Every shipped schema version stays readable, and old and new readers resolve each other's records."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.utils import generate_many
from fastavro.validation import validate

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


def named_types(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(named_types(n) for n in node))
    if not isinstance(node, dict):
        return set()
    found = {node["name"]} if node.get("type") in ("record", "enum", "fixed") else set()
    for child in (node.get("type"), node.get("items"), node.get("values"), *node.get("fields", [])):
        found |= named_types(child)
    return found


def enum_symbols(node: Any) -> dict[str, list[str]]:
    """The symbols of every enum in a schema, by the enum's name."""
    if isinstance(node, list):
        return {k: v for n in node for k, v in enum_symbols(n).items()}
    if not isinstance(node, dict):
        return {}
    found = {node["name"]: node["symbols"]} if node.get("type") == "enum" else {}
    for child in (node.get("type"), node.get("items"), node.get("values"), *node.get("fields", [])):
        found |= enum_symbols(child)
    return found


def without_branches(node: Any, names: set[str], symbols: dict[str, list[str]] | None = None) -> Any:
    """The schema with the union branches named in `names` taken out, and each enum cut to `symbols[its name]`."""
    symbols = symbols or {}
    if isinstance(node, list):
        return [without_branches(n, names, symbols) for n in node
                if not (n.get("name") in names if isinstance(n, dict) else isinstance(n, str) and n in names)]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "enum" and node["name"] in symbols:
        return {**node, "symbols": [s for s in node["symbols"] if s in symbols[node["name"]]]}
    return {k: without_branches(v, names, symbols) if k in ("type", "items", "values", "fields") else v
            for k, v in node.items()}


def same_where_both_have(read: Any, written: Any) -> bool:
    """Equal in every field both sides know, at every depth (fields of records inside unions too)."""
    if isinstance(read, dict) and isinstance(written, dict):
        return all(same_where_both_have(read[k], written[k]) for k in read.keys() & written.keys())
    if isinstance(read, list) and isinstance(written, list):
        return len(read) == len(written) and all(map(same_where_both_have, read, written))
    return bool(read == written)


@pytest.mark.parametrize("writer,reader", PAIRS, ids=[f"{w.name}:{w.version}->{r.version}" for w, r in PAIRS])
def test_old_and_new_readers_resolve_each_other(writer: WireSchema, reader: WireSchema) -> None:
    # A union branch added in a newer version (SignedContent v2's ConfidentialDocument) or an enum symbol added
    # without a default (MessageHeader v2's REPORT) cannot be read by an older reader: Avro refuses such a record,
    # and that refusal is what the older reader must do, never misread it. Every record that uses neither must
    # resolve both ways.
    added = named_types(writer.json) - named_types(reader.json)
    reader_symbols = enum_symbols(reader.json)
    known_branches_only = parse_schema(without_branches(writer.json, added, reader_symbols))
    refused = 0
    for record in generate_many(writer.parsed, 40):
        out = io.BytesIO()
        schemaless_writer(out, writer.parsed, record)
        out.seek(0)
        if not validate(record, known_branches_only, raise_errors=False):
            with pytest.raises(SchemaResolutionError):
                schemaless_reader(out, writer.parsed, reader.parsed)
            refused += 1
            continue
        read = schemaless_reader(out, writer.parsed, reader.parsed)
        assert same_where_both_have(read, record)
    assert refused < 40, "no record used only the branches both versions know"


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
