"""The `lienthong` command as a person runs it: real processes, the real broker, one-line errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.support import MINISTRY_A, OFFICE, PROVINCE

pytestmark = pytest.mark.integration
LIENTHONG = [sys.executable, "-m", "lienthong"]


class Cli:
    def __init__(self, home: Path, bootstrap: str) -> None:
        self.env = {**os.environ, "LIENTHONG_HOME": str(home), "LIENTHONG_BOOTSTRAP": bootstrap,
                    "LIENTHONG_TOPIC_PREFIX": f"cli-{uuid.uuid4().hex[:8]}", "COLUMNS": "200"}
        self.env.pop("LIENTHONG_DEBUG", None)
        self.background: list[subprocess.Popen[str]] = []

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*LIENTHONG, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if ok:
            assert result.returncode == 0, f"lienthong {' '.join(args)}: {result.stderr}{result.stdout}"
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([*LIENTHONG, *args], env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.background.append(process)
        return process

    def stop_all(self) -> list[int]:
        codes = []
        for process in self.background:
            process.send_signal(signal.SIGTERM)
            try:
                codes.append(process.wait(timeout=30))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes


@pytest.fixture
def cli(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Cli]:
    c = Cli(tmp_path / "home", kafka_bootstrap)
    yield c
    c.stop_all()


def one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lienthong: error:"), result.stderr
    assert text in lines[0], lines[0]


def test_send_route_read_reply_and_audit_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    added = cli("agency", "add", OFFICE, "--name", "Văn phòng Chính phủ", "--kind", "government")
    assert "added 000.00.00.G22" in added.stdout and "PRIVATE" not in added.stdout + added.stderr
    key = Path(cli.env["LIENTHONG_HOME"]) / "keys" / f"{OFFICE}.key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cli("agency", "add", MINISTRY_A, "--name", "Bộ Tài chính", "--kind", "ministry", "--key-type", "rsa-2048")
    cli("agency", "add", PROVINCE, "--name", "UBND thành phố Hà Nội", "--kind", "province", "--key-type", "ed25519")
    router = cli.start("router", "run")
    cli.start("projector", "run")

    attachment = tmp_path / "to-trinh.pdf"
    attachment.write_bytes(b"%PDF-1.7 to trinh")
    sent = cli("send", "--from", OFFICE, "--to", "group:ministries", "--to", PROVINCE, "--subject", "Thử nghiệm",
               "--number", "12", "--notation", "VPCP-KSTT", "--attach", str(attachment))
    assert "as message" in sent.stdout
    doc_id = sent.stdout.split()[1]

    for code in (MINISTRY_A, PROVINCE):
        wait_for(f"{code} to read the document",
                 lambda c=code: doc_id in cli("inbox", "read", c, "--wait", "2").stdout, timeout_s=60)
    one_line_error(cli("inbox", "reply", PROVINCE, doc_id, "--status", "02", ok=False), "requires a reason")
    one_line_error(cli("inbox", "reply", PROVINCE, doc_id, "--status", "06", ok=False), "accepted (03) first")
    cli("inbox", "reply", PROVINCE, doc_id, "--status", "02", "--reason", "Sai thẩm quyền")
    cli("inbox", "reply", MINISTRY_A, doc_id, "--status", "accepted")

    wait_for("the notices to reach the Government Office",
             lambda: "Sai thẩm quyền" in cli("inbox", "read", OFFICE, "--wait", "2").stdout
             or "Sai thẩm quyền" in cli("inbox", "list", OFFICE).stdout, timeout_s=60)
    shown = wait_for("the audit timeline",
                     lambda: (r := cli("audit", "show", doc_id, ok=False)).returncode == 0
                     and "every recipient has answered" in r.stdout and r.stdout, timeout_s=60)
    assert "Sai thẩm quyền" in shown and MINISTRY_A in shown and PROVINCE in shown
    assert router.poll() is None, "the router is still running"
    assert cli.stop_all() == [0, 0], "router and projector stop cleanly on SIGTERM"

    # The auditor's tools on what was just recorded.
    assert "signed a checkpoint" in cli("audit", "checkpoint").stdout
    intact = cli("audit", "verify").stdout
    assert "audit chain intact" in intact and "anchor " in intact
    anchor = intact.split("anchor ")[1].split(")")[0]
    cli("audit", "verify", "--anchor", anchor)
    bundle = tmp_path / "bundle.json"
    assert "signed messages" in cli("audit", "export", doc_id, "--out", str(bundle)).stdout
    home = Path(cli.env["LIENTHONG_HOME"])
    held = cli("audit", "verify-bundle", str(bundle), "--ca", str(home / "ca" / "ca.cert.pem")).stdout
    assert f"evidence for {doc_id} holds" in held
    assert "000.00.00.H29" in cli("audit", "find", "--status", "02", "--csv").stdout
    import sqlite3
    with sqlite3.connect(home / "audit.db") as db:
        db.execute("UPDATE audit_events SET reason = 'Đồng ý' WHERE reason = 'Sai thẩm quyền'")
    broken = cli("audit", "verify", ok=False)
    assert broken.returncode == 1 and "BROKEN at row" in broken.stdout and "changed" in broken.stdout


def test_bad_arguments_get_one_line_and_a_non_zero_exit(cli: Cli, tmp_path: Path) -> None:
    cli("agency", "add", OFFICE, "--name", "Văn phòng Chính phủ", "--no-publish")
    one_line_error(cli("agency", "add", "1.2.3", "--name", "x", ok=False), "malformed agency code '1.2.3'")
    base = ["send", "--subject", "s", "--number", "1", "--notation", "X"]
    one_line_error(cli(*base, "--from", "000.00.00.Z77", "--to", OFFICE, ok=False),
                   "no private key for agency 000.00.00.Z77")
    one_line_error(cli(*base, "--from", OFFICE, "--to", "G22", ok=False), "malformed agency code 'G22'")
    one_line_error(cli(*base, "--from", OFFICE, "--to", OFFICE, "--attach", str(tmp_path / "missing.pdf"), ok=False),
                   "missing.pdf does not exist")
    one_line_error(cli("audit", "show", "000.00.00.G22,2026/01/01,1/X", ok=False), "no audit record")
    usage = cli("send", ok=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
