"""What every subcommand shares: the settings built once in main, output helpers, one-line errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from lienthong.settings import Settings
from lienthong.wiring import Bus

# Wide enough for the audit tables when the output is a file or a pipe (CI logs, `make demo | tee`).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):
        raise RuntimeError("settings were not built by the main callback")
    return obj


def bus(ctx: typer.Context) -> Bus:
    return Bus(settings(ctx))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    out.print(t)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=_plain) + "\n")


def emit_rows(columns: list[str], rows: list[list[Any]], fmt: str, title: str | None = None) -> None:
    """The same rows as a table for people, or as JSON or CSV for machines."""
    if fmt == "json":
        emit_json([{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows])
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in row] for row in rows])
    else:
        table(title, columns, [[_plain(v) if not isinstance(v, dt.datetime) else v.strftime("%Y-%m-%d %H:%M:%S")
                                for v in row] for row in rows])


def output_format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    return "json" if as_json else "csv" if as_csv else "table"
