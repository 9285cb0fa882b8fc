"""Reports on the real broker: a regime published from the CLI, reports routed to the receiving agency and
projected (SQLite and PostgreSQL), the command-center summary, and each bad report rejected with its reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.receiver import Receiver
from consumers.report_projector import report_receiver
from lienthong.audit.events import AuditEventType
from lienthong.messages import utc_now
from lienthong.reports import VIETNAM, IndicatorValue, Period, PeriodType, Regime, Report, make_report_id
from tests.integration.conftest import BusHarness, wait_for
from tests.support import MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE

pytestmark = pytest.mark.integration

REGIME = {
    "code": "BC-KTXH", "name": "Báo cáo tình hình kinh tế - xã hội", "period_type": "MONTH",
    "reporting": [MINISTRY_A, MINISTRY_B, PROVINCE], "receiving": OFFICE,
    "indicators": [{"code": "GRDP", "name": "Tăng trưởng GRDP", "unit": "%"},
                   {"code": "THU_NSNN", "name": "Thu ngân sách nhà nước", "unit": "tỷ đồng"}],
    "due_days": 0, "accept_days": 60,
}


def today() -> dt.date:
    return dt.datetime.now(VIETNAM).date()


def open_period() -> Period:
    """The month whose data closed most recently: open now, and (with due_days 0) already late."""
    return Period.containing(today(), PeriodType.MONTH).previous()


def lienthong(harness: BusHarness, *args: str, url: str | None = None) -> str:
    s = harness.bus.settings
    env = {**os.environ, "LIENTHONG_HOME": str(s.home), "LIENTHONG_BOOTSTRAP": s.bootstrap,
           "LIENTHONG_TOPIC_PREFIX": s.topic_prefix, "LIENTHONG_INGRESS_PARTITIONS": str(s.ingress_partitions),
           "COLUMNS": "200"}
    if url:
        env["LIENTHONG_PROJECTIONS_URL"] = url
    result = subprocess.run([sys.executable, "-m", "lienthong", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"lienthong {' '.join(args)}: {result.stderr}{result.stdout}"
    return result.stdout


def report(sender: str, period: str, regime: str = "BC-KTXH", **values: str) -> Report:
    return Report(report_id=make_report_id(sender, regime, period), regime=regime, period=period,
                  values=tuple(IndicatorValue(indicator=k, value=v) for k, v in values.items()), time=utc_now())


def test_reports_are_routed_projected_and_summarized(harness: BusHarness, database_url: str,
                                                     tmp_path: Path) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    regime_file = tmp_path / "regime.json"
    regime_file.write_text(json.dumps(REGIME, ensure_ascii=False), encoding="utf-8")
    added = lienthong(harness, "reports", "regime", "add", "--file", str(regime_file))
    assert "added regime BC-KTXH" in added and "published" in added
    sqlite = database_url.startswith("sqlite")
    if sqlite:  # the CLI's own output once; the projection on both databases (each CLI call costs a process start)
        listed = json.loads(lienthong(harness, "reports", "regime", "list", "--json"))
        assert [r["code"] for r in listed] == ["BC-KTXH"]

    published = harness.bus.directory_view().regime("BC-KTXH")
    assert published == Regime.model_validate(REGIME), "the regime is on the directory topic"

    harness.start_router()
    period = open_period().label
    receiver, projector = report_receiver(harness.bus, OFFICE, database_url)
    harness.closers += [projector.close, receiver.close]
    harness.gateway(MINISTRY_A).send(report(MINISTRY_A, period, GRDP="6.1", THU_NSNN="1200.5"), [OFFICE])
    sent = lienthong(harness, "reports", "send", "--from", MINISTRY_B, "--regime", "BC-KTXH", "--period", period,
                     "--value", "GRDP=5.9", "--value", "THU_NSNN=800", "--note", "Số liệu sơ bộ")
    assert sent.startswith(f"sent report {MINISTRY_B},BC-KTXH,{period} to {OFFICE}")

    got: list[str] = []
    wait_for("two reports projected at the Government Office",
             lambda: got.extend(i.kind for i in receiver.poll(200)) or got.count("report") >= 2)
    # A correction: the same report id again, later; its values replace the first ones.
    harness.gateway(MINISTRY_A).send(report(MINISTRY_A, period, GRDP="6.3", THU_NSNN="1210"), [OFFICE])
    wait_for("the correction", lambda: got.extend(i.kind for i in receiver.poll(200)) or got.count("report") >= 3)

    figures = {(f.agency, f.indicator): f.value for f in projector.figures("BC-KTXH", period)}
    assert figures == {(MINISTRY_A, "GRDP"): "6.3", (MINISTRY_A, "THU_NSNN"): "1210",
                       (MINISTRY_B, "GRDP"): "5.9", (MINISTRY_B, "THU_NSNN"): "800"}
    submissions = projector.submissions("BC-KTXH", period)
    assert [s.agency for s in submissions] == [MINISTRY_A, MINISTRY_B]
    expected_late = (today() - Period.parse(period, PeriodType.MONTH).end).days
    assert all(s.late and s.days_late == expected_late for s in submissions), "due_days 0: due on the closing day"

    summary = json.loads(lienthong(harness, "reports", "summary", "--regime", "BC-KTXH", "--period", period,
                                   "--json", url=database_url))
    assert summary["missing"] == [{"agency": PROVINCE, "name": "Ủy ban nhân dân thành phố Hà Nội"}]
    assert summary["reported"] == [MINISTRY_A, MINISTRY_B]
    totals = {t["indicator"]: (t["total"], t["unit"], t["agencies"]) for t in summary["totals"]}
    assert totals == {"GRDP": ("12.2", "%", 2), "THU_NSNN": ("2010", "tỷ đồng", 2)}
    assert {(v["agency"], v["indicator"], v["value"]) for v in summary["values"]} == {
        (a, i, v) for (a, i), v in figures.items()}
    if sqlite:
        table = lienthong(harness, "reports", "summary", "--regime", "BC-KTXH", "--period", period,
                          url=database_url)
        assert "total (2 agencies)" in table and f"missing: {PROVINCE}" in table
    late: list[dict[str, Any]] = json.loads(lienthong(harness, "reports", "late", "--regime", "BC-KTXH",
                                                      "--period", period, "--json", url=database_url))
    assert {(r["agency"], r["status"], r["days_late"]) for r in late} == {
        (MINISTRY_A, "late", expected_late), (MINISTRY_B, "late", expected_late),
        (PROVINCE, "missing", expected_late)}


def test_each_bad_report_is_rejected_with_its_reason(harness: BusHarness) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    store = harness.bus.directory_store()
    store.set_regime(Regime.model_validate({**REGIME, "reporting": [MINISTRY_A, MINISTRY_B]}))
    store.close()
    from lienthong.provisioning import publish_directory

    publish_directory(harness.bus)
    harness.start_router()
    harness.start_projector()
    good = open_period().label
    not_closed = Period.containing(today() + dt.timedelta(days=1), PeriodType.MONTH).label
    cases = {
        "unknown regime": (MINISTRY_A, report(MINISTRY_A, good, regime="BC-KHONG", GRDP="1"), "unknown-regime"),
        "closed period": (MINISTRY_A, report(MINISTRY_A, "2020-M01", GRDP="1"), "period-not-open"),
        "not closed yet": (MINISTRY_B, report(MINISTRY_B, not_closed, GRDP="1"), "period-not-open"),
        "not a reporting agency": (PROVINCE, report(PROVINCE, good, GRDP="1"), "not-authorized"),
        "unknown indicator": (MINISTRY_B, report(MINISTRY_B, good, GRDP="1", CPI="3.2"), "unknown-indicator"),
    }
    gateways = {code: harness.gateway(code) for code in (MINISTRY_A, MINISTRY_B, PROVINCE)}
    expected = {}
    for sender, bad, reason in cases.values():
        expected[gateways[sender].send(bad, [OFFICE]).message_id] = (bad.report_id, reason)
    harness.gateway(MINISTRY_A).send(report(MINISTRY_A, good, GRDP="6.0"), [OFFICE])

    dlq = harness.read_topic(harness.bus.topics.dlq, len(cases))
    assert {(r.key.decode() if r.key else "", r.headers["lienthong_reason_code"].decode()) for r in dlq} == set(
        expected.values())
    [delivered] = harness.read_topic(harness.bus.topics.inbox(OFFICE), 1)
    assert delivered.key == make_report_id(MINISTRY_A, "BC-KTXH", good).encode()

    def audited():  # type: ignore[no-untyped-def]
        rejected = [e for e in harness.audit.events() if e.event == AuditEventType.REJECTED]
        return rejected if len(rejected) >= len(cases) else None

    rejected = {e.message_id: e for e in wait_for("a REJECTED audit row per bad report", audited)}
    assert {m: (e.root_id, e.reason_code) for m, e in rejected.items()} == expected
    reasons = {e.reason_code: e.reason or "" for e in rejected.values() if e.reason_code != "period-not-open"}
    assert "BC-KHONG" in reasons["unknown-regime"] and "regime add" in reasons["unknown-regime"]
    assert PROVINCE in reasons["not-authorized"] and "CPI" in reasons["unknown-indicator"]
    periods = sorted(e.reason or "" for e in rejected.values() if e.reason_code == "period-not-open")
    assert any("was closed to reports" in r for r in periods) and any("has not closed yet" in r for r in periods)


def _taken_by_inbox_read(harness: BusHarness, agency: str, count: int) -> None:
    """What `lienthong inbox read` does: a receiver without projectors, in the agency's consumer group, stores the
    reports and commits their offsets."""
    reader = Receiver.connect(harness.bus, agency)
    try:
        taken: list[str] = []
        wait_for(f"{count} report(s) taken by the inbox reader",
                 lambda: taken.extend(r.kind for r in reader.poll(200)) or taken.count("report") >= count)
    finally:
        reader.close()


def test_reports_inbox_read_took_first_are_still_projected(harness: BusHarness, tmp_path: Path) -> None:
    harness.add_agencies([OFFICE, MINISTRY_A, MINISTRY_B, PROVINCE])
    store = harness.bus.directory_store()
    store.set_regime(Regime.model_validate(REGIME))
    store.close()
    from lienthong.provisioning import publish_directory

    publish_directory(harness.bus)
    harness.start_router()
    period = open_period().label
    url = f"sqlite:///{tmp_path / 'projections.db'}"
    harness.gateway(MINISTRY_A).send(report(MINISTRY_A, period, GRDP="6.1"), [OFFICE])
    _taken_by_inbox_read(harness, OFFICE, 1)
    projected = lienthong(harness, "reports", "project", "--agency", OFFICE, "--once", "--wait", "1", url=url)
    assert f"report {MINISTRY_A},BC-KTXH,{period} from {MINISTRY_A}" in projected
    assert f"projected 1 new report(s) for {OFFICE}" in projected
    again = lienthong(harness, "reports", "project", "--agency", OFFICE, "--once", "--wait", "1", url=url)
    assert f"projected 0 new report(s) for {OFFICE}" in again

    # Taken again before any projector ran: the summary applies it itself, once.
    harness.gateway(MINISTRY_B).send(report(MINISTRY_B, period, GRDP="5.9"), [OFFICE])
    _taken_by_inbox_read(harness, OFFICE, 1)
    summary = json.loads(lienthong(harness, "reports", "summary", "--regime", "BC-KTXH", "--period", period,
                                   "--json", url=url))
    assert summary["reported"] == [MINISTRY_A, MINISTRY_B]
    assert {t["indicator"]: t["total"] for t in summary["totals"]}["GRDP"] == "12.0"
