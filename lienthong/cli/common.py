"""What every subcommand shares: the settings built once in main, output helpers, one-line errors."""

from __future__ import annotations

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


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
