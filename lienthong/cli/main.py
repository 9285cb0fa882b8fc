"""The `lienthong` entry point: builds the settings once, dispatches, turns errors into one line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pydantic
import typer

from lienthong import logs
from lienthong.cli import (
    agency_cmd,
    audit_cmd,
    ballot_cmd,
    dossier_cmd,
    kafka_cmd,
    messaging_cmd,
    reports_cmd,
    services_cmd,
)
from lienthong.cli.common import bus, out, settings
from lienthong.errors import LienthongError, first_error
from lienthong.settings import Settings
from lienthong.transport.client import broker_answers

app = typer.Typer(
    help="lienthong: an exchange bus for official documents between state agencies, on Apache Kafka.",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(agency_cmd.app, name="agency")
app.add_typer(agency_cmd.directory_app, name="directory")
app.add_typer(messaging_cmd.inbox_app, name="inbox")
app.add_typer(messaging_cmd.outbox_app, name="outbox")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(services_cmd.router_app, name="router")
app.add_typer(services_cmd.projector_app, name="projector")
app.add_typer(reports_cmd.app, name="reports")
app.add_typer(ballot_cmd.app, name="ballot")
app.add_typer(dossier_cmd.app, name="dossier")
app.command("send")(messaging_cmd.send)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", help="Folder for local state (env LIENTHONG_HOME; ./var)"),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help="Kafka bootstrap (env LIENTHONG_BOOTSTRAP)"),
    prefix: str | None = typer.Option(None, "--prefix", help="Topic prefix (env LIENTHONG_TOPIC_PREFIX)"),
) -> None:
    logs.configure()
    overrides = {k: v for k, v in {"home": home, "bootstrap": bootstrap, "topic_prefix": prefix}.items() if v}
    try:
        ctx.obj = Settings(**overrides)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        text = first["msg"].removeprefix("Value error, ")
        raise LienthongError(f"bad setting {'.'.join(map(str, first['loc']))}: {text}") from exc


@app.command()
def demo(ctx: typer.Context,
         keep_broker: bool = typer.Option(False, "--keep-broker", help="Leave the broker running afterwards"),
         timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for every answer")) -> None:
    """From nothing: start the broker, create agencies, route a document, collect every answer, print the audit."""
    from lienthong.demo import AGENCIES, run_demo

    s = settings(ctx)
    started = time.monotonic()
    broker = kafka_cmd.local_broker(s)
    started_here = False
    if broker_answers(s.bootstrap, tls=bus(ctx).tls):
        out.print(f"using the Kafka broker that answers on {s.bootstrap}")
    else:
        kafka_cmd.fetch_with_progress(broker)
        started_here = not broker.status().running
        out.print(f"Kafka broker {broker.up().describe()}")
    try:
        timeline = run_demo(bus(ctx), out.print, timeout)
        directory = bus(ctx).directory_store()
        names = {code: name for code, name, _ in AGENCIES} | {a.code: a.name for a in directory.agencies()}
        directory.close()
        out.print("")
        audit_cmd.print_timeline(timeline, names)
        out.print(f"\ndemo finished in {time.monotonic() - started:.1f} s: every recipient answered")
    finally:
        if started_here and not keep_broker:
            broker.down()
            out.print("Kafka broker stopped (it was started by this demo)")


def main() -> None:
    """Console script: `lienthong`."""
    try:
        # Typer's standalone mode prints usage errors itself and exits 2; our errors come through to here.
        app()
    except LienthongError as exc:
        print(f"lienthong: error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except pydantic.ValidationError as exc:
        print(f"lienthong: error: {first_error(exc)[0]}", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("lienthong: aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("LIENTHONG_DEBUG"):
            raise
        print(f"lienthong: internal error: {exc!r} (set LIENTHONG_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
