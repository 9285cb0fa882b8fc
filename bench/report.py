"""The benchmark's figures as a table for people (rich, and Markdown for the README) and the targets' verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# Issue 7's targets, on a 2-core machine with the broker on it.
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("router_docs_per_s", "router, 1 recipient, docs/s", ">=", 3000),
    ("router_to_raw_ratio", "router / raw pipe", ">=", 0.4),
    ("fanout_deliveries_per_s.10", "fan-out to 10, deliveries/s", ">=", 10_000),
    ("fanout_deliveries_per_s.60", "fan-out to 60, deliveries/s", ">=", 10_000),
    ("latency_ms.500.p99", "p99 latency at 500 docs/s, ms", "<=", 250),
    ("router_rss_mb", "router resident size, MiB", "<=", 250),
)


def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for path, label, op, limit in TARGETS:
        value = _get(results, path)
        met = value is not None and (value >= limit if op == ">=" else value <= limit)
        out[path] = {"label": label, "target": f"{op} {limit:,}", "value": value, "met": met}
    return out


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}" if abs(value) >= 10 or digits == 0 else f"{value:,.2f}"
    return str(value)


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, verdict) rows, the same for the terminal and the README."""
    verdicts = results.get("targets", {})

    def verdict(path: str) -> tuple[str, str]:
        entry = verdicts.get(path)
        if not entry:
            return "", ""
        return entry["target"], "met" if entry["met"] else "MISSED"

    variants = results.get("raw_pipe_variants_msgs_per_s", {})
    out: list[tuple[str, str, str, str]] = [
        ("raw pipe, transactional, 1 MiB batches, msgs/s", _fmt(results.get("raw_pipe_msgs_per_s")), "", ""),
        ("raw pipe, transactional, default 16 KiB batches, msgs/s",
         _fmt(variants.get("transactional_default_batch")), "", ""),
        ("raw pipe, no transactions, 1 MiB batches, msgs/s", _fmt(variants.get("plain_1MiB")), "", ""),
        ("router, 1 recipient, signed docs/s", _fmt(results.get("router_docs_per_s")), *verdict("router_docs_per_s")),
        ("router / raw pipe", _fmt(results.get("router_to_raw_ratio"), 2), *verdict("router_to_raw_ratio")),
    ]
    for k in ("10", "60"):
        out.append((f"raw pipe copying each record to {k} topics, msgs/s",
                    _fmt(_get(results, f"raw_fanout_msgs_per_s.{k}")), "", ""))
        out.append((f"router, fan-out to {k}, deliveries/s ({_fmt(_get(results, f'fanout_docs_per_s.{k}'))} docs/s)",
                    _fmt(_get(results, f"fanout_deliveries_per_s.{k}")), *verdict(f"fanout_deliveries_per_s.{k}")))
    for load, figures in results.get("latency_ms", {}).items():
        text = " / ".join(_fmt(figures.get(p), 1) for p in ("p50", "p95", "p99"))
        out.append((f"latency at {int(load):,} docs/s offered, p50 / p95 / p99 ms", text,
                    *verdict(f"latency_ms.{load}.p99")))
    out.append(("router resident size at steady state, MiB", _fmt(results.get("router_rss_mb"), 1),
                *verdict("router_rss_mb")))
    return out


STAGES = ("consume", "decode_envelope", "verify", "decode_content", "authorize", "encode", "story", "audit", "produce",
          "flush", "commit", "route")


def stage_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    one, sixty = results.get("stages_us", {}), results.get("stages_fanout60_us", {})
    return [(name, _fmt(one.get(name), 1), _fmt(sixty.get(name), 1)) for name in STAGES if name in one]


def machine_line(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    code = m.get("code", {})
    dirty = f", {len(code.get('modified_files', []))} files modified" if code.get("modified_files") else ""
    return (f"{m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gb')} GB, {m.get('os')}; Python "
            f"{m.get('python')}, Apache Kafka {m.get('kafka')} (one KRaft node on the same machine), kafka-python "
            f"{m.get('kafka_python')}, fastavro {m.get('fastavro')}, cryptography {m.get('cryptography')}; "
            f"load average {m.get('load_average_at_start')} at start, {m.get('load_average_at_end')} at end; "
            f"commit {code.get('commit')}{dirty}; {results.get('generated_at')}")


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(title="lienthong benchmarks", title_justify="left")
    for column, justify in (("figure", "left"), ("value", "right"), ("target", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for figure, value, target, status in rows(results):
        style = "red" if status == "MISSED" else ("green" if status == "met" else None)
        table.add_row(figure, value, target, status, style=style)
    console.print(table)
    stages = Table(title="µs per message, by stage (median)", title_justify="left")
    for column in ("stage", "1 recipient", "60 recipients"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for row in stage_rows(results):
        stages.add_row(*row)
    console.print(stages)
    console.print(f"[dim]{machine_line(results)}[/dim]")


def markdown(results: dict[str, Any]) -> str:
    lines = ["| figure | value | target | |", "|---|---:|---:|---|"]
    lines += [f"| {figure} | {value} | {target} | {status} |" for figure, value, target, status in rows(results)]
    lines += ["", "| stage, µs per message (median) | 1 recipient | 60 recipients |", "|---|---:|---:|"]
    lines += [f"| {name} | {one} | {sixty} |" for name, one, sixty in stage_rows(results)]
    lines += ["", f"Measured on: {machine_line(results)}.", ""]
    return "\n".join(lines)
