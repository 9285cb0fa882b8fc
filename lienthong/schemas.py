"""The wire contract: the .avsc files in schemas/, resolved across files and fingerprinted as Avro does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from lienthong.errors import ConfigurationError, DecodingError, Reason

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def default_schema_dir() -> Path:
    """The schemas/ folder of a source checkout, or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schemas", here / "_schemas"):
        if candidate.is_dir():
            return candidate
    raise ConfigurationError(f"no schemas folder found next to {here}")


@dataclass(frozen=True)
class WireSchema:
    """One top-level schema: its full name, its self-contained JSON, fastavro's parsed form, its fingerprint."""

    name: str
    json: dict[str, Any]
    parsed: Any
    canonical_form: str
    fingerprint: bytes  # 8 bytes, CRC-64-AVRO, in the byte order single-object encoding writes it
    version: str = "current"


def _wire(name: str, expanded: dict[str, Any], version: str = "current") -> WireSchema:
    # Parsed with fastavro's hint, so that its reader and writer do not parse the schema again on every record.
    parsed = parse_schema(expanded)
    canonical = to_parsing_canonical_form(parsed)
    return WireSchema(name, expanded, parsed, canonical, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")), version)


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class _Expander:
    """Inline named types from other files at their first use, as a single Schema.Parser would see them."""

    def __init__(self, sources: dict[str, dict[str, Any]]) -> None:
        self.sources = sources
        self.defined: set[str] = set()

    def expand(self, node: Any, namespace: str | None) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            full = _full_name(node, namespace)
            if full in self.defined:
                return full
            if full not in self.sources:
                raise ConfigurationError(f"schema refers to unknown type {full!r}")
            return self.expand(self.sources[full], namespace)
        if isinstance(node, list):
            return [self.expand(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            raise ConfigurationError(f"not an Avro schema node: {node!r}")
        kind = node.get("type")
        out = dict(node)
        if kind in _NAMED:
            full = _full_name(node["name"], node.get("namespace", namespace))
            self.defined.add(full)
            namespace = full.rpartition(".")[0] or None
            out["name"] = full
            out.pop("namespace", None)
            if kind in ("record", "error"):
                out["fields"] = [{**field, "type": self.expand(field["type"], namespace)}
                                 for field in node["fields"]]
        elif kind == "array":
            out["items"] = self.expand(node["items"], namespace)
        elif kind == "map":
            out["values"] = self.expand(node["values"], namespace)
        elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            return self.expand(kind, namespace)
        return out


class SchemaSet:
    """Every schema in a folder, by full name and by fingerprint; the one place schemas are loaded."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or default_schema_dir()
        sources: dict[str, dict[str, Any]] = {}
        for path in sorted(folder.glob("*.avsc")):
            try:
                node = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{path}: not valid JSON ({exc})") from exc
            full = _full_name(node["name"], node.get("namespace"))
            if path.stem != full:
                raise ConfigurationError(f"{path}: file must be named {full}.avsc")
            sources[full] = node
        if not sources:
            raise ConfigurationError(f"no .avsc files in {folder}")
        self._by_name: dict[str, WireSchema] = {}
        self._by_fingerprint: dict[bytes, WireSchema] = {}
        self.history: dict[str, list[WireSchema]] = {}
        for full in sources:
            schema = _wire(full, _Expander(sources).expand(sources[full], None))
            self._by_name[full] = schema
            self._by_fingerprint[schema.fingerprint] = schema
        # Earlier versions, kept self-contained in history/<name>.v<N>.avsc: still readable by fingerprint,
        # resolved into the current schema of the same name.
        for path in sorted((folder / "history").glob("*.v*.avsc")):
            name, _, version = path.name.removesuffix(".avsc").rpartition(".")
            if name not in self._by_name:
                raise ConfigurationError(f"{path}: no current schema {name} for this older version")
            old = _wire(name, json.loads(path.read_text(encoding="utf-8")), version)
            self.history.setdefault(name, []).append(old)
            self._by_fingerprint.setdefault(old.fingerprint, old)

    def __getitem__(self, name: str) -> WireSchema:
        return self._by_name[name]

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def by_fingerprint(self, fp: bytes) -> WireSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise DecodingError(
                f"unknown writer schema fingerprint {fp.hex()}: this reader knows {len(self._by_fingerprint)} schemas",
                reason=Reason.UNKNOWN_SCHEMA,
            ) from None
