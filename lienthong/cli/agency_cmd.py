"""`lienthong agency` and `lienthong directory`: the operator's directory."""

from __future__ import annotations

import datetime as dt

import typer

from lienthong.agencies import AgencyKind, check_agency_code
from lienthong.certificates import KEY_TYPES
from lienthong.cli.common import bus, emit_json, out, table
from lienthong.directory import lifecycle
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
    if added.encryption_certificate_fingerprint:
        state = "new" if added.new_encryption_key else "existing"
        out.print(f"  {state} encryption key (X25519) for confidential documents; certificate "
                  f"{added.encryption_certificate_fingerprint[:16]}…")
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


def _duration(text: str) -> dt.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise typer.BadParameter(f"{text!r}: write a duration like 0s, 30m, 1h or 7d")
    return dt.timedelta(seconds=int(number) * units[unit])


@app.command("revoke")
def revoke_certificates(
        ctx: typer.Context, code: str = typer.Argument(..., help="Agency code"),
        certificate: str | None = typer.Option(None, "--certificate", help="Fingerprint (or its start) of one "
                                               "certificate; default: every certificate of the agency"),
        publish: bool = typer.Option(True, "--publish/--no-publish")) -> None:
    """Revoke an agency's certificates (signing and encryption) now and publish it: routers and receivers refuse
    new messages under them from their next batch on; messages delivered before stay verifiable."""
    check_agency_code(code)
    b = bus(ctx)
    store = b.directory_store()
    try:
        revoked = lifecycle.revoke(store, code, dt.datetime.now(dt.UTC), certificate)
    finally:
        store.close()
    if not revoked:
        out.print(f"nothing to do: the certificates of {code} were already revoked")
        return
    out.print(f"revoked {len(revoked)} certificate(s) of {code}: {', '.join(f[:16] + '…' for f in revoked)}")
    if publish:
        out.print(f"published {publish_directory(b)} directory entries; routers and receivers apply it on their "
                  "next poll of the directory topic")


@app.command("rotate-key")
def rotate_key(ctx: typer.Context, code: str = typer.Argument(..., help="Agency code"),
               key_type: str = typer.Option("ecdsa-p256", "--key-type", help=f"One of {', '.join(KEY_TYPES)}"),
               grace: str = typer.Option("1h", "--grace", help="How long the old key still counts (0s, 30m, 1h…)"),
               publish: bool = typer.Option(True, "--publish/--no-publish")) -> None:
    """Give an agency a new signing key (mode 0600) and certificate; the old certificate ends after --grace."""
    check_agency_code(code)
    if key_type not in KEY_TYPES:
        raise ConfigurationError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")
    b = bus(ctx)
    rotated = lifecycle.rotate_key(b, code, key_type, _duration(grace))
    out.print(f"{code} now signs with certificate {rotated.new_fingerprint[:16]}…; "
              + (f"the old one ({', '.join(f[:16] + '…' for f in rotated.retired)}) ends at "
                 f"{rotated.retired_at:%Y-%m-%d %H:%M:%S} UTC" if rotated.retired else "it had no earlier key"))
    if publish:
        out.print(f"published {publish_directory(b)} directory entries")
