"""`lienthong agency` and `lienthong directory`: the operator's directory."""

from __future__ import annotations

import typer

from lienthong.agencies import AgencyKind, check_agency_code
from lienthong.certificates import KEY_TYPES
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.errors import ConfigurationError
from lienthong.provisioning import add_agency, publish_directory

app = typer.Typer(help="Agencies: add them with a key and a certificate, list them.", no_args_is_help=True)
directory_app = typer.Typer(help="Publish the directory to the bus.", no_args_is_help=True)


@app.command("add")
def add(ctx: typer.Context,
        code: str = typer.Argument(..., help="Decision 20/2020 code, e.g. 000.00.00.G22"),
        name: str = typer.Option(..., "--name", help="Full name of the agency"),
        kind: AgencyKind = typer.Option(AgencyKind.OTHER, "--kind", help="ministry, province, party, state, …"),
        key_type: str = typer.Option("ecdsa-p256", "--key-type", help=f"One of {', '.join(KEY_TYPES)}"),
        publish: bool = typer.Option(True, "--publish/--no-publish", help="Publish the directory to the bus now"),
        ) -> None:
    """Add (or update) an agency; create its private key (mode 0600) and its certificate from the bus CA."""
    check_agency_code(code)
    if key_type not in KEY_TYPES:
        raise ConfigurationError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")
    b = bus(ctx)
    added = add_agency(b, code, name, kind, key_type)
    if added.ca_created:
        out.print(f"created a new bus CA in {b.settings.ca_dir} (no CA was there; is LIENTHONG_HOME right?)")
    verb = "added" if added.created else "updated"
    key_note = f"new key {added.key_path}" if added.new_key else f"existing key {added.key_path}"
    out.print(f"{verb} {code} {name} ({kind.value}); {key_note}; certificate {added.certificate_fingerprint[:16]}…")
    if publish:
        count = publish_directory(b)
        out.print(f"published {count} directory entries to {b.topics.directory}")
    if b.settings.security_protocol == "SSL":
        from lienthong.cli.kafka_cmd import apply_acls

        applied = apply_acls(b.settings, [code])
        out.print(f"granted {code} its Kafka ACLs ({len(applied.grants)} grants in force)"
                  + (f"; new TLS identities: {', '.join(applied.issued)}" if applied.issued else ""))


@app.command("list")
def list_agencies(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the agencies in the directory."""
    store = bus(ctx).directory_store()
    agencies = store.agencies()
    store.close()
    if as_json:
        emit_json([a.model_dump(mode="json") for a in agencies])
        return
    table(None, ["code", "name", "kind"], [[a.code, a.name, a.kind.value] for a in agencies])


@directory_app.command("publish")
def publish(ctx: typer.Context) -> None:
    """Create the bus topics and publish every agency, group and certificate, signed by the bus CA."""
    b = bus(ctx)
    count = publish_directory(b)
    out.print(f"published {count} directory entries to {b.topics.directory}")
