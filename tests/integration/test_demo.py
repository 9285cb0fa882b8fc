"""`lienthong demo` prints the timeline and exits 0, twice in a row."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_twice_in_a_row(tmp_path: Path, kafka_bootstrap: str) -> None:
    env = {**os.environ, "LIENTHONG_HOME": str(tmp_path / "home"), "LIENTHONG_BOOTSTRAP": kafka_bootstrap,
           "LIENTHONG_TOPIC_PREFIX": f"demo-{uuid.uuid4().hex[:8]}"}
    for run in (1, 2):
        result = subprocess.run([sys.executable, "-m", "lienthong", "demo", "--timeout", "90"], env=env,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"run {run}: {result.stderr}\n{result.stdout}"
        out = result.stdout
        assert "using the Kafka broker that answers" in out
        assert "every recipient has answered" in out and "demo finished" in out
        assert "000.00.00.H58 rejected it" in out and "không đúng thẩm quyền" in out
        assert out.count("accepted it") == 4, out
        assert "Traceback" not in result.stderr
