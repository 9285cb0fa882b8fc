"""The local Apache Kafka broker: one KRaft node on 127.0.0.1, from pinned jars, started and stopped by us."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lienthong.errors import BrokerError, ConfigurationError
from lienthong.transport.client import broker_answers
from lienthong.transport.jars import PinnedJar, fetch_jars, read_lock

LOCK_FILE = Path(__file__).with_name("kafka-jars.lock")

_LOG4J = """\
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=FILE
appender.file.type=File
appender.file.name=FILE
appender.file.fileName={log}
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.state.name=state.change.logger
logger.state.level=WARN
"""


@dataclass
class BrokerStatus:
    running: bool
    pid: int | None
    answering: bool
    bootstrap: str

    def describe(self) -> str:
        if self.running and self.answering:
            return f"running (pid {self.pid}), answering on {self.bootstrap}"
        if self.running:
            return f"process {self.pid} is running but does not answer on {self.bootstrap}"
        return "not running"


class LocalBroker:
    """One Kafka node in `folder` (data, logs, config, pid file), listening on 127.0.0.1 only."""

    def __init__(self, folder: Path, *, port: int = 9092, controller_port: int = 9093,
                 maven_repo: str = "https://repo1.maven.org/maven2", heap: str = "768m",
                 start_timeout_s: float = 60.0, libs: Path | None = None) -> None:
        self.folder = folder
        self._libs = libs or folder / "libs"
        self.port = port
        self.controller_port = controller_port
        self.maven_repo = maven_repo
        self.heap = heap
        self.start_timeout_s = start_timeout_s

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def libs(self) -> Path:
        return self._libs

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "server.log"

    @property
    def _pid_file(self) -> Path:
        return self.folder / "broker.pid"

    def fetch(self, progress: Callable[[PinnedJar, bool], None] | None = None) -> list[Path]:
        return fetch_jars(LOCK_FILE, self.libs, self.maven_repo, progress)

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = Path(java_home, "bin", "java") if java_home else None
        if java and java.exists():
            return str(java)
        return "java"

    def _write_config(self) -> Path:
        data = self.folder / "data"
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "log.flush.interval.messages": "9223372036854775807",
        }
        path = self.folder / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="utf-8")
        (self.folder / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file), encoding="utf-8")
        return path

    def _classpath(self) -> str:
        # Exactly the pinned jars: a stray jar left in the folder never ends up on the broker's classpath.
        return os.pathsep.join(str(self.libs / jar.filename) for jar in read_lock(LOCK_FILE))

    def _run_java(self, main: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._java(), f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}",
             "-cp", self._classpath(), main, *args],
            capture_output=True, text=True, timeout=120, check=False,
        )

    def _format_storage(self, config: Path) -> None:
        if (self.folder / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = self._run_java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config))
        if result.returncode != 0:
            raise BrokerError(f"formatting the broker storage failed: {result.stderr.strip() or result.stdout}")

    def _pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def status(self) -> BrokerStatus:
        pid = self._pid()
        answering = pid is not None and broker_answers(self.bootstrap, timeout_s=3.0)
        return BrokerStatus(pid is not None, pid, answering, self.bootstrap)

    def log_tail(self, lines: int = 20) -> str:
        """The first ERROR lines of the broker log (what went wrong), then its last lines."""
        text = ""
        for path in (self.log_file, self.folder / "logs" / "stdout.log"):
            if path.exists():
                text += path.read_text(encoding="utf-8", errors="replace")
        all_lines = text.splitlines()
        errors: list[str] = []
        for index, line in enumerate(all_lines):
            if (" ERROR " in line or line.startswith("Error")) and len(errors) < 6:
                errors.extend(all_lines[index:index + 2])  # the error and the exception that says why
        tail = [line for line in all_lines[-lines:] if line not in errors]
        return "\n".join(errors + (["..."] if errors and tail else []) + tail)

    def up(self, progress: Callable[[PinnedJar, bool], None] | None = None) -> BrokerStatus:
        """Start the broker unless it already runs, and wait until it answers metadata requests."""
        current = self.status()
        if current.running:
            if not current.answering:
                self._wait_ready()
            return self.status()
        self.fetch(progress)
        config = self._write_config()
        self._format_storage(config)
        stdout = (self.folder / "logs" / "stdout.log").open("ab")
        try:
            process = subprocess.Popen(
                [self._java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                 f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}",
                 "-Dkafka.logs.dir=" + str(self.folder / "logs"),
                 "-cp", self._classpath(), "kafka.Kafka", str(config)],
                stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.folder,
            )
        except FileNotFoundError as exc:
            raise ConfigurationError("java was not found: install Java 17 or later, or set JAVA_HOME") from exc
        finally:
            stdout.close()
        self._pid_file.write_text(str(process.pid))
        self._wait_ready(process)
        return self.status()

    def _wait_ready(self, process: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                raise BrokerError(f"the broker exited with code {process.returncode} while starting; "
                                  f"last lines of its log:\n{self.log_tail()}")
            if broker_answers(self.bootstrap, timeout_s=2.0):
                return
            time.sleep(0.5)
        raise BrokerError(f"the broker did not answer on {self.bootstrap} within {self.start_timeout_s:.0f} s; "
                          f"last lines of its log ({self.log_file}):\n{self.log_tail()}")

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after the timeout); False if it was not running."""
        pid = self._pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.2)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            # Reap it if it is our child, so that it does not linger as a zombie.
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
