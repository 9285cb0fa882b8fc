"""The auditor's page: one self-contained HTML document (inline CSS, no scripts, no external assets).

It renders the same models the JSON API serves. Every value from the store is escaped; links are built with
urlencode.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from urllib.parse import urlencode

from lienthong.audit.views import WAITING, ChainView, OverdueListView, TimelineView

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 "Noto Sans","DejaVu Sans","Segoe UI",Arial,sans-serif;color:#1d2733;background:#f3f5f8}
header{background:#14365d;color:#fff;padding:14px 32px;display:flex;align-items:baseline;gap:16px}
header h1{margin:0;font-size:20px;font-weight:600}
header span{opacity:.8;font-size:14px}
main{max-width:1200px;margin:0 auto;padding:16px 32px 32px}
.chain{border-radius:6px;padding:9px 14px;margin-bottom:16px;border:1px solid;display:flex;gap:16px;
  justify-content:space-between}
.chain.ok{background:#e8f5ec;border-color:#9fd3ae;color:#14532d}
.chain.broken{background:#fdecec;border-color:#eaa0a0;color:#7f1d1d;font-weight:600}
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:16px 22px;margin-bottom:16px}
h2{margin:0 0 10px;font-size:17px;color:#14365d}
h3{margin:14px 0 6px;font-size:15px;color:#14365d}
form{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:12px}
label{font-size:14px;color:#4a5868}
input{font:inherit;padding:6px 10px;border:1px solid #b8c3cf;border-radius:5px}
input[name=document]{width:480px;max-width:100%;font-family:"DejaVu Sans Mono",monospace;font-size:14px}
input[name=hours]{width:90px}
button{font:inherit;padding:6px 16px;border:0;border-radius:5px;background:#14365d;color:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%;font-size:14px}
th{text-align:left;font-weight:600;color:#4a5868;border-bottom:2px solid #dde3ea;padding:7px 8px;white-space:nowrap}
td{border-bottom:1px solid #edf0f4;padding:6px 8px;vertical-align:top}
.nowrap{white-space:nowrap}
.num{text-align:right}
.code{font-family:"DejaVu Sans Mono",monospace;font-size:13px;white-space:nowrap}
.muted{color:#6b7886}
.meta{margin:0 0 12px;color:#34414f}
.meta b{color:#1d2733}
.badge{display:inline-block;border-radius:10px;padding:1px 10px;font-size:13px;font-weight:600;white-space:nowrap}
.badge.accepted,.badge.completed,.badge.assigned,.badge.in-progress{background:#dcf2e3;color:#166534}
.badge.rejected{background:#fbdcdc;color:#991b1b}
.badge.waiting{background:#fdf0d5;color:#8a4b00}
.badge.other{background:#e6ebf1;color:#34414f}
ul.steps{margin:0;padding:0;list-style:none}
ul.steps li{white-space:nowrap}
.notice{padding:7px 12px;border-radius:5px;background:#fdf0d5;color:#6b3a00;margin:12px 0 0}
.empty{color:#6b7886;font-style:italic}
a{color:#1f5fa8;text-decoration:none}
a:hover{text-decoration:underline}
footer{color:#6b7886;font-size:13px;text-align:center}
"""


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _agency(code: str | None, name: str | None) -> str:
    if not code:
        return '<span class="muted">unknown</span>'
    shown = f'<span class="code">{escape(code)}</span>'
    return f"{shown}<br>{escape(name)}" if name else shown


def _badge(state: str) -> str:
    known = {"accepted", "rejected", "completed", "assigned", "in progress", WAITING}
    css = state.replace(" ", "-") if state in known else "other"
    return f'<span class="badge {escape(css)}">{escape(state)}</span>'


def _chain(chain: ChainView) -> str:
    if not chain.ok:
        first = chain.findings[0]
        return (f'<div class="chain broken" id="chain">✘ Audit chain BROKEN at row {first.seq:,}: '
                f"{escape(first.problem.value)}: {escape(first.detail)}</div>")
    cover = f", the last at row {chain.last_checkpoint_seq:,}" if chain.checkpoints else ""
    newer = f"; {chain.uncovered:,} newer rows not yet covered" if chain.uncovered else ""
    return (f'<div class="chain ok" id="chain"><span>✔ Audit chain intact: {chain.rows:,} rows and '
            f"{chain.checkpoints:,} signed checkpoints verified{cover}{newer}.</span>"
            f'<span class="muted nowrap">checked at {chain.checked_at.astimezone(dt.UTC):%H:%M:%S} UTC</span></div>')


def _timeline(timeline: TimelineView) -> str:
    rows = []
    for r in timeline.recipients:
        steps = "".join(f'<li><span class="code">{escape(s.status)}</span> {escape(s.label)} '
                        f'<span class="muted">{_t(s.at)}</span></li>' for s in r.steps)
        rows.append(f'<tr><td>{_agency(r.recipient, r.name)}</td><td class="nowrap">{_t(r.delivered_at)}</td>'
                    f'<td><ul class="steps">{steps}</ul></td><td>{_badge(r.state)}</td>'
                    f"<td>{escape(r.reason or '')}</td></tr>")
    table = ("<table><thead><tr><th>Recipient</th><th>Delivered (UTC)</th><th>Status notices (UTC)</th>"
             f"<th>State</th><th>Reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table>" if rows
             else '<p class="empty">The document was not delivered to anyone.</p>')
    sender = _agency(timeline.sender, timeline.sender_name).replace("<br>", " ")
    meta = (f'<p class="meta">From {sender} · submitted <b>{_t(timeline.submitted_at)}</b> UTC · routed to '
            f"{len(timeline.recipients)} recipients <b>{_t(timeline.routed_at)}</b> UTC<br>"
            f'<span class="muted">Message <span class="code">{escape(timeline.message_id or "")}</span></span></p>')
    names = {r.recipient: r.name for r in timeline.recipients}
    waiting = ", ".join(_agency(code, names.get(code)).replace("<br>", " ") for code in timeline.waiting)
    waiting = (f'<p class="notice" id="waiting">Not answered yet: {waiting}</p>' if waiting
               else '<p class="muted" id="waiting">Every recipient has answered.</p>')
    refused = "".join(f"<li>{_t(e.at)} UTC: {escape((e.kind or 'message').lower().replace('_', ' '))} from "
                      f"{_agency(e.sender, e.sender_name).replace('<br>', ' ')}: "
                      f'<span class="code">{escape(e.reason_code or "")}</span> {escape(e.reason or "")}</li>'
                      for e in timeline.rejections)
    refusals = f'<h3>Refused by the bus</h3><ul id="refused">{refused}</ul>' if refused else ""
    return (f'<div id="timeline"><h2>Document <span class="code">{escape(timeline.document_id)}</span></h2>'
            f"{meta}{table}{waiting}{refusals}</div>")


def _overdue(overdue: OverdueListView) -> str:
    rows = []
    for o in overdue.items:
        link = "/?" + urlencode({"document": o.document_id, "hours": f"{overdue.hours:g}"})
        status = f"{o.last_status} {o.last_status_label or ''}" if o.last_status else "none"
        rows.append(f'<tr><td><a class="code" href="{escape(link)}">{escape(o.document_id)}</a></td>'
                    f"<td>{_agency(o.sender, o.sender_name)}</td><td>{_agency(o.recipient, o.recipient_name)}</td>"
                    f'<td class="nowrap">{_t(o.delivered_at)}</td><td>{escape(status)}</td>'
                    f'<td class="num">{o.hours_waiting:,.1f}</td></tr>')
    if not rows:
        return (f'<p class="empty" id="overdue">Nothing is overdue: every delivery older than {overdue.hours:g} h '
                "has been accepted or rejected.</p>")
    head = ("<th>Document</th><th>From</th><th>Recipient</th><th>Delivered (UTC)</th><th>Last status</th>"
            '<th class="num">Hours waiting</th>')
    return f'<table id="overdue"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_page(chain: ChainView, overdue: OverdueListView, document_id: str | None,
                timeline: TimelineView | None) -> str:
    """The whole page; `document_id` without a timeline means the store has no record of that document."""
    hours = f"{overdue.hours:g}"
    lookup = ""
    if timeline is not None:
        lookup = _timeline(timeline)
    elif document_id:
        lookup = (f'<p class="notice" id="timeline">No audit record for document '
                  f'<span class="code">{escape(document_id)}</span>.</p>')
    return f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lienthong · Auditor</title><style>{_CSS}</style></head>
<body><header><h1>lienthong · Auditor</h1><span>Delivery record of official documents between agencies</span></header>
<main>{_chain(chain)}
<section><h2>Document timeline</h2>
<form method="get" action="/"><label for="document">Document id</label>
<input id="document" name="document" value="{escape(document_id or '')}" placeholder="000.00.00.G22,2026/11/24,…"
 required><input type="hidden" name="hours" value="{escape(hours)}"><button type="submit">Show</button></form>
{lookup}</section>
<section><h2>Overdue: delivered more than {escape(hours)} h ago, neither accepted nor rejected</h2>
<form method="get" action="/"><label for="hours">Deadline in hours</label>
<input id="hours" name="hours" type="number" min="0.1" step="any" value="{escape(hours)}">
<input type="hidden" name="document" value="{escape(document_id or '')}"><button type="submit">Apply</button></form>
{_overdue(overdue)}</section>
<footer>Read-only view of the audit store. Times in UTC, as of {_t(overdue.now)}.
JSON API described at <a href="/openapi.json">/openapi.json</a>.</footer></main></body></html>
"""
