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
from lienthong.transport.client import TlsClientConfig, broker_answers
from lienthong.transport.jars import PinnedJar, fetch_jars, read_lock

LOCK_FILE = Path(__file__).with_name("kafka-jars.lock")

# The principal of a TLS client is the CN of a bus transport certificate (CN=<name>,OU=transport,O=lienthong,
# as Java prints the subject in RFC 2253 order): User:router, User:agency-000.00.00.G22. Any other subject the
# CA signed (an agency's signing certificate, say) keeps its whole DN as principal, which no ACL names.
PRINCIPAL_MAPPING_RULES = "RULE:^CN=([A-Za-z0-9._-]+),OU=transport,O=lienthong$/$1/,DEFAULT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

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


@dataclass(frozen=True)
class TlsMaterial:
    """The broker's side of mutual TLS: the CA it trusts (PEM), its own certificate and key (PEM, issued by the bus
    CA with server and client authentication for 127.0.0.1), and the principals that bypass the ACLs."""

    ca: Path
    certificate: Path
    key: Path
    super_users: tuple[str, ...] = ("broker", "operator")

    def client(self) -> TlsClientConfig:
        """The broker's own identity as a client: how `status` and the start-up wait reach it."""
        return TlsClientConfig(self.ca, self.certificate, self.key)


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


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id as Kafka's own Uuid.randomUuid makes it: URL-safe base64 of 16 random bytes,
    never starting with '-' (the storage tool's argument parser would read such an id as an option;
    one id in 64 does, which once failed a CI run)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalBroker:
    """One Kafka node in `folder` (data, logs, config, pid file), listening on 127.0.0.1 only.

    Without `tls` both listeners are PLAINTEXT and anyone who reaches the port may do anything: the local demo
    only. With `tls` both listeners require a client certificate from the bus CA (mutual TLS), and the
    StandardAuthorizer allows only what an ACL grants (lienthong/transport/acls.py) or a super user does.
    """

    def __init__(self, folder: Path, *, port: int = 9092, controller_port: int = 9093,
                 maven_repo: str = "https://repo1.maven.org/maven2", heap: str = "768m",
                 start_timeout_s: float = 60.0, libs: Path | None = None, tls: TlsMaterial | None = None) -> None:
        self.folder = folder
        self.tls = tls
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
    def security_protocol(self) -> str:
        return "SSL" if self.tls else "PLAINTEXT"

    def _client_tls(self) -> TlsClientConfig | None:
        return self.tls.client() if self.tls else None

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
        protocol = self.security_protocol
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{protocol}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"{protocol}://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": protocol,
            "listener.security.protocol.map": f"{protocol}:{protocol},CONTROLLER:{protocol}",
            **(self._tls_config(self.tls) if self.tls else {}),
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

    def _tls_config(self, tls: TlsMaterial) -> dict[str, str]:
        """Mutual TLS on both listeners, principals from the certificate subject, and the StandardAuthorizer.

        The controller listener is TLS too, with the same client authentication. Under the authorizer the
        controller checks the principal of the broker registering with it (CLUSTER_ACTION); over a PLAINTEXT
        controller listener that principal is User:ANONYMOUS, which would then have to be a super user, and any
        local process could use that listener to rewrite the ACLs.
        """
        for what, path in (("CA certificate", tls.ca), ("certificate", tls.certificate), ("key", tls.key)):
            if not path.is_file():
                raise ConfigurationError(f"the broker's TLS {what} {path} does not exist")
        # Kafka reads a PEM key store from one file holding the key and the certificate chain; it is rewritten
        # from the identity's files at every start, readable by its owner only.
        keystore = self.folder / "tls-keystore.pem"
        fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, tls.key.read_bytes() + tls.certificate.read_bytes())
        finally:
            os.close(fd)
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca),
            "ssl.client.auth": "required",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            "ssl.principal.mapping.rules": PRINCIPAL_MAPPING_RULES,
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": ";".join(f"User:{name}" for name in tls.super_users),
        }

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
        result = self._run_java(
            "kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}", "--config", str(config)
        )
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
        answering = pid is not None and broker_answers(self.bootstrap, timeout_s=3.0, tls=self._client_tls())
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
            if broker_answers(self.bootstrap, timeout_s=2.0, tls=self._client_tls()):
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
