"""What the figures were measured on: the machine, the software, the code, how busy the machine was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.kafka_io import CLIENT_VERSION
from lienthong import wiring
from lienthong.transport.jars import read_lock
from lienthong.transport.local_broker import LOCK_FILE


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def kafka_version() -> str:
    """The broker's version, from the pinned jars it runs on."""
    for jar in read_lock(LOCK_FILE):
        name = jar.filename
        if name.startswith("kafka-clients-") and name.endswith(".jar"):
            return name.removeprefix("kafka-clients-").removesuffix(".jar")
    return "unknown"


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
        return (out.stderr or out.stdout).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def code_state() -> dict[str, Any]:
    """The commit of the code measured (where `lienthong` was imported from), and which tracked files differed
    from it: the working tree may be shared with others while we measure."""
    root = Path(wiring.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False)
        return out.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "modified_files": changed, "path": str(root)}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "kafka": kafka_version(),
        "kafka_broker": "one KRaft node on 127.0.0.1 (lienthong's local broker, 768 MiB heap), on the same machine",
        "java": java_version(),
        "kafka_python": CLIENT_VERSION,
        "fastavro": _version("fastavro"),
        "cryptography": _version("cryptography"),
        "pydantic": _version("pydantic"),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
