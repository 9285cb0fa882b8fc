"""`lienthong reports`: reporting regimes (Decree 09/2019), sending reports, and the receiving agency's views."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
import typer

from lienthong.agencies import check_agency_code
from lienthong.cli.common import bus, emit_json, emit_rows, out, output_format, table
from lienthong.directory.view import DirectoryView
from lienthong.errors import ConfigurationError, ValidationError, first_error
from lienthong.messages import utc_now
from lienthong.provisioning import publish_directory
from lienthong.reports import IndicatorValue, Period, Regime, Report, make_report_id
from lienthong.wiring import Bus

if TYPE_CHECKING:
    from consumers.report_projector import IndicatorFigure, Submission

app = typer.Typer(help="Reports under reporting regimes (Decree 09/2019): regimes, sending, the receiver's views.",
                  no_args_is_help=True)
regime_app = typer.Typer(help="Reporting regimes in the operator's directory.", no_args_is_help=True)
app.add_typer(regime_app, name="regime")


def _first_error(exc: pydantic.ValidationError, what: str) -> ValidationError:
    return ValidationError(f"{what}: {first_error(exc)[0]}")


@regime_app.command("add")
def add_regime(ctx: typer.Context,
               file: Path = typer.Option(..., "--file", help="The regime as JSON (see docs/reports.md)"),
               publish: bool = typer.Option(True, "--publish/--no-publish", help="Publish the directory now")) -> None:
    """Add (or replace) a reporting regime from a JSON file and publish the directory."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {file}: {exc.strerror}") from exc
    try:
        regime = Regime.model_validate_json(text)
    except pydantic.ValidationError as exc:
        raise _first_error(exc, str(file)) from exc
    b = bus(ctx)
    store = b.directory_store()
    try:
        created = store.set_regime(regime)
    finally:
        store.close()
    out.print(f"{'added' if created else 'updated'} regime {regime.code} {regime.name} "
              f"({regime.period_type.value.lower()}, {len(regime.indicators)} indicators, to {regime.receiving})")
    if publish:
        out.print(f"published {publish_directory(b)} directory entries to {b.topics.directory}")


@regime_app.command("list")
def list_regimes(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the reporting regimes in the operator's directory."""
    store = bus(ctx).directory_store()
    try:
        regimes = store.regimes()
    finally:
        store.close()
    if as_json:
        emit_json([r.model_dump(mode="json") for r in regimes])
        return
    table(None, ["code", "name", "period", "reporting", "receiving", "indicators", "due", "accepted"],
          [[r.code, r.name, r.period_type.value.lower(), ", ".join(r.reporting), r.receiving,
            ", ".join(i.code for i in r.indicators), f"+{r.due_days} d", f"+{r.accept_days} d"] for r in regimes])


def _values(pairs: list[str]) -> tuple[IndicatorValue, ...]:
    found: list[IndicatorValue] = []
    for pair in pairs:
        code, sep, value = pair.partition("=")
        if not sep or not code.strip():
            raise typer.BadParameter(f"{pair!r}: write an indicator value as CODE=VALUE, e.g. DT01=1234.5",
                                     param_hint="--value")
        try:
            found.append(IndicatorValue(indicator=code.strip(), value=value.strip()))
        except pydantic.ValidationError as exc:
            raise _first_error(exc, f"--value {pair}") from exc
    return tuple(found)


@app.command("send")
def send(ctx: typer.Context,
         sender: str = typer.Option(..., "--from", help="Reporting agency code"),
         regime_code: str = typer.Option(..., "--regime", help="Regime code"),
         period_label: str = typer.Option(..., "--period", help="2026-M03, 2026-Q1, 2026-H1 or 2026"),
         value: list[str] = typer.Option(..., "--value", help="CODE=VALUE, e.g. DT01=1234.5; repeat for more"),
         note: str = typer.Option("", "--note")) -> None:
    """Sign a report and send it to the regime's receiving agency; a report sent again for the same period
    replaces the earlier one (a correction). Checked first against the directory on the bus."""
    from lienthong.cli.messaging_cmd import gateway_for

    check_agency_code(sender)
    indicator_values = _values(value)
    b = bus(ctx)
    regime = b.directory_view().regime(regime_code)
    report = Report(report_id=make_report_id(sender, regime.code, period_label.strip()), regime=regime.code,
                    period=period_label.strip(), values=indicator_values, note=note, time=utc_now())
    # The router decides; these are its checks made early, so a clerk sees the reason here, not in the DLQ.
    regime.check_open(report.check_against(regime), report.time)
    gateway = gateway_for(b, sender)
    try:
        sent = gateway.send(report, [regime.receiving])
    finally:
        gateway.close()
    if sent.queued:
        out.print(f"queued report {report.report_id} as message {sent.message_id} ({sent.size:,} bytes): the broker "
                  "did not take it now; `lienthong outbox relay` publishes it when the broker is back")
        return
    out.print(f"sent report {report.report_id} to {regime.receiving} as message {sent.message_id} "
              f"({sent.size:,} bytes, ingress partition {sent.partition} offset {sent.offset})")


@app.command("project")
def project(ctx: typer.Context,
            agency: str = typer.Option(..., "--agency", help="The receiving agency"),
            once: bool = typer.Option(False, "--once", help="Stop when the inbox has been quiet for --wait seconds"),
            wait: float = typer.Option(3.0, "--wait", help="Seconds of quiet that end --once")) -> None:
    """Read the agency's inbox and keep the indicator values of every report it receives, first those `inbox read`
    already stored; until Ctrl-C (or SIGTERM), or with --once until the inbox is quiet."""
    from consumers.projection import run_projector
    from consumers.receiver import Receiver
    from consumers.report_projector import ReportProjector
    from lienthong.messages import Message

    check_agency_code(agency)
    b = bus(ctx)
    if not once:
        out.print(f"projecting reports received by {agency} into {_display(b)}; Ctrl-C stops")

    def changed(message: Message) -> None:
        header = message.header
        out.print(f"report {header.root_id} from {header.sender} (message {header.message_id})", markup=False)

    receiver = Receiver.connect(b, agency)
    try:
        # Regimes as the directory the receiver follows has them when each report is handled.
        projector = ReportProjector(b.settings.projections_db_url(), receiver.follower.view)
        try:
            run = run_projector(receiver, projector, once=once, wait=wait, on_change=changed)
        finally:
            projector.close()
    finally:
        receiver.close()
    out.print(f"projected {run.changed} new report(s) for {agency}{run.quarantine_note}")


def _display(b: Bus) -> str:
    from lienthong.db import display_url

    return display_url(b.settings.projections_db_url())


def _regime_and_period(b: Bus, regime_code: str, period_label: str) -> tuple[DirectoryView, Regime, Period]:
    view = b.directory_view()
    regime = view.regime(regime_code)
    return view, regime, Period.parse(period_label.strip(), regime.period_type)


def _expected(view: DirectoryView, regime: Regime) -> list[str]:
    """The reporting agencies of the regime as the directory now expands them, the receiving agency left out."""
    return [code for code in view.expand(regime.reporting) if code != regime.receiving]


def _submissions(b: Bus, view: DirectoryView, regime: Regime,
                 period: Period) -> tuple[dict[str, Submission], list[IndicatorFigure]]:
    """The reports the receiving agency has in for a period, by agency, and their values; first the reports
    `lienthong inbox read` stored in its inbox and no projector has applied yet (re-verified, idempotent)."""
    from consumers.projection import replay_agency_inbox
    from consumers.report_projector import ReportProjector

    projector = ReportProjector(b.settings.projections_db_url(), view)
    try:
        replay_agency_inbox(b.settings.inbox_dir, regime.receiving, projector, b.envelopes, view)
        return ({s.agency: s for s in projector.submissions(regime.code, period.label)},
                projector.figures(regime.code, period.label))
    finally:
        projector.close()


def _name(view: DirectoryView, code: str) -> str:
    agency = view.agencies.get(code)
    return agency.name if agency else ""


@app.command("summary")
def summary(ctx: typer.Context,
            regime_code: str = typer.Option(..., "--regime"),
            period_label: str = typer.Option(..., "--period"),
            as_json: bool = typer.Option(False, "--json"),
            as_csv: bool = typer.Option(False, "--csv")) -> None:
    """The command-center view: each indicator's values across the reporting agencies, with units and totals,
    and the agencies whose report is missing. Reads the projections `reports project` keeps, with what the
    receiving agency's inbox store holds besides."""
    fmt = output_format(as_json, as_csv)
    b = bus(ctx)
    view, regime, period = _regime_and_period(b, regime_code, period_label)
    submitted, figures = _submissions(b, view, regime, period)
    missing = [code for code in _expected(view, regime) if code not in submitted]
    rows: list[list[Any]] = []
    totals: list[dict[str, Any]] = []
    for indicator in regime.indicators:
        mine = [f for f in figures if f.indicator == indicator.code]
        for f in mine:
            status = "late" if submitted[f.agency].late else "reported"
            rows.append([indicator.code, indicator.name, indicator.unit, f.agency, f.value, status])
        total = sum((f.number for f in mine), Decimal(0))
        totals.append({"indicator": indicator.code, "name": indicator.name, "unit": indicator.unit,
                       "total": str(total), "agencies": len(mine)})
    if fmt == "json":
        emit_json({"regime": regime.code, "period": period.label, "closing_day": period.end.isoformat(),
                   "due": regime.due(period).isoformat(), "reported": sorted(submitted),
                   "values": [dict(zip(["indicator", "name", "unit", "agency", "value", "status"], r, strict=True))
                              for r in rows],
                   "totals": totals,
                   "missing": [{"agency": code, "name": _name(view, code)} for code in missing]})
        return
    if fmt == "csv":
        emit_rows(["indicator", "name", "unit", "agency", "value", "status"],
                  rows + [["", "", "", code, "", "missing"] for code in missing], fmt)
        return
    by_indicator = {t["indicator"]: t for t in totals}
    table_rows: list[list[Any]] = []
    for indicator in regime.indicators:
        table_rows.extend([r[0], r[3], r[4], r[2], r[5]] for r in rows if r[0] == indicator.code)
        t = by_indicator[indicator.code]
        table_rows.append([indicator.code, f"total ({t['agencies']} agencies)", t["total"], indicator.unit, ""])
    title = (f"{regime.code} {regime.name}, period {period.label} ({period.start} – {period.end}): "
             f"{len(submitted)} reported, {len(missing)} missing")
    table(title, ["indicator", "agency", "value", "unit", "status"], table_rows)
    names = ", ".join(f"{i.code} = {i.name}" for i in regime.indicators)
    out.print(f"indicators: {names}")
    if missing:
        out.print("missing: " + ", ".join(f"{code} {_name(view, code)}".strip() for code in missing))
    else:
        out.print("missing: none")


@app.command("late")
def late(ctx: typer.Context,
         regime_code: str = typer.Option(..., "--regime"),
         period_label: str = typer.Option(..., "--period"),
         as_json: bool = typer.Option(False, "--json"),
         as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Late reports (with days late) and missing ones for a regime's period, as the receiving agency sees them."""
    fmt = output_format(as_json, as_csv)
    b = bus(ctx)
    view, regime, period = _regime_and_period(b, regime_code, period_label)
    submitted, _ = _submissions(b, view, regime, period)
    due = regime.due(period)
    today = dt.datetime.now(dt.UTC)
    rows: list[list[Any]] = []
    for code in _expected(view, regime):
        s = submitted.get(code)
        if s is None:
            rows.append([code, _name(view, code), "missing", None, due.isoformat(), regime.days_late(period, today)])
        elif s.late:
            rows.append([code, _name(view, code), "late", s.first_received_at, due.isoformat(), s.days_late])
    emit_rows(["agency", "name", "status", "received", "due", "days_late"], rows, fmt,
              title=f"{regime.code} period {period.label}: due {due}, accepted until {regime.closes(period)}; "
                    f"{sum(r[2] == 'late' for r in rows)} late, {sum(r[2] == 'missing' for r in rows)} missing")
