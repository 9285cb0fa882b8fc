"""The auditor's API and page on SQLite and on a real PostgreSQL: one document's story, every endpoint, and the
page served by uvicorn and loaded in Debian's headless Chromium, with a screenshot in test-artifacts/."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from lienthong.audit.api import create_app
from lienthong.audit.events import AuditEvent, AuditEventType
from lienthong.audit.store import AuditStore
from lienthong.certificates import BusCA
from lienthong.codec import SingleObjectCodec
from lienthong.schemas import SchemaSet
from lienthong.signing import Signer
from tests.integration.conftest import REPO, free_port, wait_for
from tests.support import AGENCIES, MINISTRY_A, MINISTRY_B, OFFICE, PROVINCE

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec(SchemaSet())
NAMES = {code: name for code, (name, _) in AGENCIES.items()}
DOC = "000.00.00.G22,2026/11/24,4512/VPCP-KSTT"
RECENT = "000.00.00.G22,2026/11/26,4530/VPCP-TH"
REASON = "Văn bản gửi không đúng thẩm quyền; đề nghị chuyển Bộ Tài chính xử lý."
CHECKPOINT_ROWS = 10
TOPIC = "t.ingress"


@dataclass
class Story:
    """Audit events as the router writes them (router/decisions.py), one ingress record after another."""

    events: list[AuditEvent] = field(default_factory=list)
    offset: int = 0

    def _add(self, event: AuditEventType, at: dt.datetime, root: str, kind: str, sender: str,
             recipient: str | None = None, **extra: Any) -> None:
        self.events.append(AuditEvent(
            event_id=f"{TOPIC}/0/{self.offset}/{event.value}/{recipient or '-'}", event=event, at=at,
            message_id=f"m-{self.offset}", root_id=root, kind=kind, sender=sender, recipient=recipient,
            source_topic=TOPIC, source_partition=0, source_offset=self.offset, **extra))

    def document(self, root: str, at: dt.datetime, recipients: list[str]) -> None:
        self.offset += 1
        self._add(AuditEventType.SUBMITTED, at, root, "DOCUMENT", OFFICE)
        self._add(AuditEventType.ROUTED, at + dt.timedelta(milliseconds=80), root, "DOCUMENT", OFFICE)
        for r in recipients:
            self._add(AuditEventType.DELIVERED, at + dt.timedelta(milliseconds=90), root, "DOCUMENT", OFFICE, r)

    def status(self, root: str, agency: str, code: str, at: dt.datetime, reason: str | None = None) -> None:
        self.offset += 1
        self._add(AuditEventType.SUBMITTED, at, root, "STATUS_NOTICE", agency)
        self._add(AuditEventType.STATUS, at + dt.timedelta(milliseconds=50), root, "STATUS_NOTICE", agency, OFFICE,
                  status=code, reason=reason)
        self._add(AuditEventType.DELIVERED, at + dt.timedelta(milliseconds=60), root, "STATUS_NOTICE", agency, OFFICE)

    def refused(self, root: str, agency: str, at: dt.datetime, reason_code: str, reason: str) -> None:
        self.offset += 1
        self._add(AuditEventType.SUBMITTED, at, root, "STATUS_NOTICE", agency)
        self._add(AuditEventType.REJECTED, at + dt.timedelta(milliseconds=40), root, "STATUS_NOTICE", agency,
                  reason_code=reason_code, reason=reason)


@dataclass
class Filled:
    store: AuditStore
    ca: BusCA
    url: str
    sent_at: dt.datetime
    rows: int

    def app(self, **options: float) -> FastAPI:
        return create_app(lambda: AuditStore(self.url, CODEC), NAMES, self.ca.certificate, CODEC, **options)


@pytest.fixture
def filled(database_url: str) -> Iterator[Filled]:
    """A document from the Government Office to three agencies two days ago: G06 accepted, G09 rejected (and
    then tried to accept, which the bus refused), H29 only confirmed arrival; plus a recent one to G06."""
    now = dt.datetime.now(dt.UTC)
    sent = now - dt.timedelta(days=2, hours=1)
    story = Story()
    story.document(DOC, sent, [MINISTRY_A, MINISTRY_B, PROVINCE])
    for agency in (MINISTRY_A, MINISTRY_B, PROVINCE):
        story.status(DOC, agency, "01", sent + dt.timedelta(seconds=5))
    story.status(DOC, MINISTRY_A, "03", sent + dt.timedelta(hours=2))
    story.status(DOC, MINISTRY_B, "02", sent + dt.timedelta(hours=3), REASON)
    story.refused(DOC, MINISTRY_B, sent + dt.timedelta(hours=3, minutes=5), "invalid-transition",
                  "status 03 accepted cannot follow 02 rejected: a rejected document takes no further status "
                  "until it is delivered again")
    story.document(RECENT, now - dt.timedelta(hours=1), [MINISTRY_A])
    ca = BusCA.create()
    store = AuditStore(database_url, CODEC, Signer(ca.key, ca.certificate), checkpoint_rows=CHECKPOINT_ROWS)
    store.add(story.events[:12])
    store.add(story.events[12:])
    try:
        yield Filled(store, ca, database_url, sent, len(story.events))
    finally:
        store.close()


def timeline_path(document_id: str) -> str:
    return f"/api/documents/{quote(document_id, safe='')}/timeline"


def test_the_api_answers_every_question(filled: Filled) -> None:
    rows = filled.rows
    with TestClient(filled.app()) as client:
        timeline = client.get(timeline_path(DOC)).json()
        assert (timeline["sender"], timeline["sender_name"]) == (OFFICE, "Văn phòng Chính phủ")
        who = {r["recipient"]: r for r in timeline["recipients"]}
        assert list(who) == [MINISTRY_A, MINISTRY_B, PROVINCE]
        assert who[MINISTRY_A]["name"] == "Bộ Tài chính"
        assert [s["status"] for s in who[MINISTRY_A]["steps"]] == ["01", "03"]
        assert (who[MINISTRY_A]["state"], who[MINISTRY_A]["answered"]) == ("accepted", True)
        assert [s["status"] for s in who[MINISTRY_B]["steps"]] == ["01", "02"]
        assert (who[MINISTRY_B]["state"], who[MINISTRY_B]["reason"]) == ("rejected", REASON)
        assert who[MINISTRY_B]["steps"][1]["reason"] == REASON
        assert (who[PROVINCE]["state"], who[PROVINCE]["answered"]) == ("waiting", False)
        assert timeline["waiting"] == [PROVINCE]
        delivered = dt.datetime.fromisoformat(who[PROVINCE]["delivered_at"])
        assert abs(delivered - filled.sent_at) < dt.timedelta(seconds=1)
        [refusal] = timeline["rejections"]
        assert (refusal["sender"], refusal["reason_code"]) == (MINISTRY_B, "invalid-transition")
        assert client.get(f"/api/documents/{DOC}/timeline").json() == timeline, "unencoded slashes work too"

        missing = client.get(timeline_path("000.00.00.G22,2026/01/01,1/KHONG-CO"))
        assert missing.status_code == 404
        assert missing.json()["reason"] == "not-found" and "1/KHONG-CO" in missing.json()["detail"]

        statuses = client.get("/api/events", params={"document": DOC, "event": "STATUS"}).json()
        assert [(e["sender"], e["status"]) for e in statuses["events"]] == [
            (MINISTRY_A, "01"), (MINISTRY_B, "01"), (PROVINCE, "01"), (MINISTRY_A, "03"), (MINISTRY_B, "02")]
        rejected = client.get("/api/events", params={"sender": MINISTRY_B, "status": "02"}).json()
        assert [e["reason"] for e in rejected["events"]] == [REASON]
        limited = client.get("/api/events", params={"limit": 2}).json()
        assert (limited["count"], limited["truncated"], len(limited["events"])) == (2, True, 2)
        later = (filled.sent_at + dt.timedelta(hours=1)).isoformat()
        window = client.get("/api/events", params={"document": DOC, "since": later,
                                                   "until": (filled.sent_at + dt.timedelta(hours=4)).isoformat()})
        assert {e["status"] for e in window.json()["events"] if e["event"] == "STATUS"} == {"02", "03"}
        assert window.json()["truncated"] is False
        for bad in ({"limit": 10_001}, {"limit": 0}, {"since": "yesterday"}, {"since": "2026-11-24T08:00:00"},
                    {"status": "99"}, {"event": "LOST"}, {"sender": "G22"}):
            answer = client.get("/api/events", params=bad)
            assert answer.status_code == 422, (bad, answer.text)
        assert client.get("/api/overdue", params={"hours": 0}).status_code == 422

        overdue = client.get("/api/overdue").json()
        assert overdue["hours"] == 24
        assert [(o["document_id"], o["recipient"]) for o in overdue["items"]] == [(DOC, PROVINCE)]
        late = overdue["items"][0]
        assert (late["recipient_name"], late["last_status"], late["last_status_label"]) == (
            "Ủy ban nhân dân thành phố Hà Nội", "01", "arrived")
        assert 48.9 <= late["hours_waiting"] <= 49.2
        sooner = client.get("/api/overdue", params={"hours": 0.5}).json()
        assert [(o["document_id"], o["recipient"]) for o in sooner["items"]] == [(DOC, PROVINCE), (RECENT, MINISTRY_A)]

        figures = {f["agency"]: f for f in client.get("/api/agencies/figures").json()["agencies"]}
        assert (figures[OFFICE]["sent"], figures[OFFICE]["name"]) == (2, "Văn phòng Chính phủ")
        assert (figures[MINISTRY_A]["received"], figures[MINISTRY_A]["accepted"]) == (2, 1)
        assert figures[MINISTRY_A]["median_seconds_to_accept"] == pytest.approx(2 * 3600 - 0.04, abs=0.01)
        assert (figures[MINISTRY_B]["received"], figures[MINISTRY_B]["rejected"]) == (1, 1)
        assert (figures[PROVINCE]["received"], figures[PROVINCE]["accepted"]) == (1, 0)
        recent = client.get("/api/agencies/figures", params={"since": (filled.sent_at + dt.timedelta(days=1))
                                                             .isoformat()}).json()["agencies"]
        assert [(f["agency"], f["sent"], f["received"]) for f in recent] == [(MINISTRY_A, 0, 1), (OFFICE, 1, 0)]

        chain = client.get("/api/verify").json()
        assert chain["ok"] and chain["findings"] == []
        assert (chain["rows"], chain["checkpoints"]) == (rows, rows // CHECKPOINT_ROWS)
        assert chain["last_checkpoint_seq"] == rows // CHECKPOINT_ROWS * CHECKPOINT_ROWS
        assert chain["uncovered"] == rows % CHECKPOINT_ROWS > 0

        spec = client.get("/openapi.json").json()
        assert set(spec["paths"]) == {"/api/documents/{document_id}/timeline", "/api/events", "/api/overdue",
                                      "/api/agencies/figures", "/api/verify"}
        assert all(set(methods) == {"get"} for methods in spec["paths"].values())
        assert "404" in spec["paths"]["/api/documents/{document_id}/timeline"]["get"]["responses"]
        assert {"TimelineView", "EventsView", "OverdueListView", "FiguresView", "ChainView"} <= set(
            spec["components"]["schemas"])

        assert client.post("/api/verify").status_code == 405
        assert client.delete(timeline_path(DOC)).status_code == 405
        page = client.get("/", params={"document": DOC})
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/", params={"document": "<script>x</script>"}).status_code == 404
        assert "<script>x" not in client.get("/", params={"document": "<script>x</script>"}).text


def test_a_tampered_chain_shows_on_the_api_and_the_page(filled: Filled) -> None:
    with filled.store.engine.begin() as conn:
        # H29's 01 becomes a 03: a forged acceptance
        conn.execute(text("UPDATE audit_events SET status = '03' WHERE seq = 13 AND event = 'STATUS'"))
    with TestClient(filled.app(chain_max_age_s=0)) as client:
        chain = client.get("/api/verify").json()
        assert not chain["ok"]
        assert [(f["problem"], f["seq"]) for f in chain["findings"]] == [("changed", 13)]
        assert "Audit chain BROKEN at row 13: changed" in client.get("/").text


@dataclass
class Served:
    base: str
    server: uvicorn.Server
    thread: threading.Thread


@pytest.fixture
def served(filled: Filled) -> Iterator[Served]:
    """The app under a real uvicorn on a free loopback port, stopped at teardown."""
    server = uvicorn.Server(uvicorn.Config(filled.app(), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for("uvicorn to start", lambda: server.started or not thread.is_alive())
        assert server.started, "uvicorn did not start"
        yield Served(f"http://127.0.0.1:{server.config.port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not stop"


def end_leftovers(group: int, profile: str) -> None:
    """End what a chromium run left: helpers in its process group, and its crash handlers, which start a session
    of their own but name the profile folder (their database is under HOME) on their command line."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                mine = profile.encode() in (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if mine:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)


def chromium(tmp_path: Path, *arguments: str) -> str:
    """Run Debian's chromium headless with its own profile and home; every process it starts is ended."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Debian's chromium is not installed; the auditor's page is tested in it: apt-get install chromium")
    profile = tmp_path / "chromium"
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "HOME": str(profile)})
    try:
        stdout, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("chromium did not finish within 90 s") from None
    finally:
        end_leftovers(process.pid, str(profile))
    assert process.returncode == 0, f"chromium failed ({process.returncode}): {stderr[-2000:]}"
    return stdout


def between(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin:html.index(end, begin)]


def test_the_page_in_headless_chromium(filled: Filled, served: Served, tmp_path: Path) -> None:
    url = f"{served.base}/?{urlencode({'document': DOC, 'hours': 24})}"
    dom = chromium(tmp_path, "--dump-dom", url)

    assert "lienthong · Auditor" in dom
    chain = between(dom, 'id="chain"', "</div>")
    assert "Audit chain intact" in chain and f"{filled.rows} rows" in chain
    timeline = between(dom, 'id="timeline"', 'id="waiting"')
    rows = {code: between(timeline, code, "</tr>") for code in (MINISTRY_A, MINISTRY_B, PROVINCE)}
    assert "Bộ Tài chính" in rows[MINISTRY_A] and "accepted" in rows[MINISTRY_A]
    assert "Bộ Nội vụ" in rows[MINISTRY_B] and "rejected" in rows[MINISTRY_B] and REASON in rows[MINISTRY_B]
    assert "Ủy ban nhân dân thành phố Hà Nội" in rows[PROVINCE] and "waiting" in rows[PROVINCE]
    assert "Văn phòng Chính phủ" in timeline
    assert PROVINCE in between(dom, 'id="waiting"', "</p>")
    overdue = between(dom, 'id="overdue"', "</table>")
    assert PROVINCE in overdue and "Ủy ban nhân dân thành phố Hà Nội" in overdue and DOC in overdue
    assert MINISTRY_A not in overdue and MINISTRY_B not in overdue
    assert "invalid-transition" in dom

    backend = make_url(filled.url).get_backend_name()
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / f"auditor-page-{backend}.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
