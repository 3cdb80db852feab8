"""Run real Apache Kafka KRaft brokers on loopback for tests, the demo and the CLI.

Its one job: turn the Kafka version pinned in ``deploy/kafka/pom.xml`` into running broker JVMs
(one combined node, or a three-node static quorum), tell the caller where they listen, break them
on purpose (kill -9, SIGSTOP, restart) and take them down again. ksaga's exactly-once argument
rests on broker behaviour (transactions, fencing, read_committed, KIP-447), so the tests talk to
the real broker, never a mock; there is no Docker here, so the jars come from Maven Central.

What it never does: touch a cluster it did not start, leave a JVM behind (own process group,
``PR_SET_PDEATHSIG``, ``atexit``), or sleep blindly (every wait polls with a deadline and fails
naming what it waited for, with the tail of the broker's log).

Settings and their reasons: ``/work/shared/design/kafka-local.md``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

if TYPE_CHECKING:
    from confluent_kafka.admin._metadata import PartitionMetadata

from orchestrator.errors import KafkaClusterError
from orchestrator.lifecycle import StoppedOnExit
from orchestrator.testing.proxied_listeners import ProxiedListeners

__all__ = [
    "KRaftCluster",
    "KafkaBroker",
    "KafkaCluster",
    "KafkaJars",
    "KafkaNode",
    "ListenerSecurity",
    "kafka_jars",
    "wait_for",
]

MIN_JAVA = 17
HEAP = "512m"
# Measured on 2 cores, one broker from launch to warmed up: JVM defaults (G1, C2) 9.1 s, Kafka's
# own script flags 8.6 s, SerialGC + C1 only 5.8 s, G1 + C1 only 6.0 s. A test broker never runs
# long enough for C2 to pay off. A class-data-sharing archive of a broker run (see KafkaJars)
# takes another ~1.2 s off each JVM start (4.3 s -> 3.1 s); KSAGA_KAFKA_CDS=0 turns it off.
JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
MVN_TIMEOUT_S = 900.0
_MARKER = ".ksaga-complete.json"
_STARTED_LINE = b"Kafka Server started"
_POM_NS = "{http://maven.apache.org/POM/4.0.0}"

_log = logging.getLogger("ksaga.testing.kafka")
T = TypeVar("T")


# --------------------------------------------------------------------------- waiting


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Raises ``TimeoutError`` naming ``what`` (and the last ignored exception, if any) once
    ``timeout`` seconds have passed. Exceptions of the types in ``ignore`` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
        except ignore as exc:
            last_error, result = exc, None
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f"; last error: {last_error}" if last_error is not None else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(min(interval, remaining))


# --------------------------------------------------------------------------- the jars


class KafkaJars:
    """The resolved broker classpath: where the jars are, which Kafka, which java runs them.

    It also owns the class-data-sharing (CDS) archive next to the jars: the first broker of a
    machine that stops cleanly dumps the classes it loaded (``-XX:ArchiveClassesAtExit``, to a
    temporary name renamed into place only after a clean exit), and every later JVM maps it
    (``-XX:SharedArchiveFile``). The JVM checks the archive against the JDK and the jars and
    ignores it if either changed.
    """

    def __init__(
        self,
        *,
        version: str,
        libs_dir: Path,
        java: Path,
        java_version: str,
        log4j_config: Path,
        seconds: float,
    ) -> None:
        self.version = version
        self.libs_dir = libs_dir
        self.java = java
        self.java_version = java_version
        self.log4j_config = log4j_config
        self.resolve_seconds = seconds
        self._cds_lock = threading.Lock()
        self._cds_claimed = False

    @property
    def classpath(self) -> str:
        return f"{self.libs_dir}/*"

    @property
    def cds_archive(self) -> Path:
        return self.libs_dir / f"cds-java-{re.sub(r'[^A-Za-z0-9.]+', '_', self.java_version)}.jsa"

    def claim_cds_dump(self) -> Path | None:
        """Where a starting broker should dump a CDS archive, if one is missing and wanted."""
        if os.environ.get("KSAGA_KAFKA_CDS", "1") == "0":
            return None
        with self._cds_lock:
            if self._cds_claimed or self.cds_archive.exists():
                return None
            self._cds_claimed = True
            return self.cds_archive.with_name(f"{self.cds_archive.name}.{os.getpid()}.tmp")

    def finish_cds_dump(self, dump: Path, clean_exit: bool) -> None:
        """Publish a dumped archive after a clean exit; otherwise let another broker retry."""
        try:
            if clean_exit and dump.is_file() and dump.stat().st_size > 0:
                dump.replace(self.cds_archive)
        finally:
            dump.unlink(missing_ok=True)
            with self._cds_lock:
                self._cds_claimed = False

    def java_command(
        self, main: str, *args: str, heap: str, logs_dir: Path, cds_dump: Path | None = None
    ) -> list[str]:
        if cds_dump is not None:
            share = [f"-XX:ArchiveClassesAtExit={cds_dump}"]
        elif self.cds_archive.is_file() and os.environ.get("KSAGA_KAFKA_CDS", "1") != "0":
            share = [f"-XX:SharedArchiveFile={self.cds_archive}"]
        else:
            share = []
        return [
            str(self.java),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *JVM_FLAGS,
            *share,
            f"-Dkafka.logs.dir={logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp",
            self.classpath,
            main,
            *args,
        ]


def project_root() -> Path:
    """The ksaga checkout this module lives in: the first parent holding deploy/kafka/pom.xml."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "deploy" / "kafka" / "pom.xml").is_file():
            return parent
    raise KafkaClusterError(
        f"no deploy/kafka/pom.xml above {here}: the local Kafka broker needs a ksaga source "
        "checkout (run from the repository, e.g. `pip install -e .`), not an installed wheel"
    )


def pom_kafka_version(pom: Path) -> str:
    """The ``kafka.version`` property of the pom: the one place the Kafka version is written."""
    node = ET.parse(pom).getroot().find(f"{_POM_NS}properties/{_POM_NS}kafka.version")
    if node is None or not (node.text or "").strip():
        raise KafkaClusterError(f"{pom} has no <properties><kafka.version>; add it (e.g. 4.3.1)")
    return (node.text or "").strip()


def _run(cmd: Sequence[str], timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run a short command; return its exit code and its stdout and stderr interleaved."""
    try:
        done = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode(errors="replace") if exc.output else ""
        return -1, out + f"\n(killed after {timeout:g} s)"
    return done.returncode, done.stdout.decode(errors="replace")


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def find_java() -> tuple[Path, str]:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH, checked to be Java 17 or newer.

    Returns the executable and its full version (e.g. ``17.0.15``).
    """
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    found = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if found is None:
        raise KafkaClusterError(
            f"`java` not found: Kafka needs Java {MIN_JAVA}+. Install it (Debian/Ubuntu: "
            f"`apt-get install openjdk-{MIN_JAVA}-jre-headless`) or set JAVA_HOME"
        )
    code, out = _run([found, "-version"], timeout=60)
    match = re.search(r'version "((\d+)(?:\.(\d+))?[^"]*)"', out)
    if code != 0 or match is None:
        raise KafkaClusterError(f"`{found} -version` failed (exit {code}):\n{_tail(out)}")
    major = int(match.group(2))
    if major == 1 and match.group(3):  # "1.8.0_392" means Java 8
        major = int(match.group(3))
    if major < MIN_JAVA:
        raise KafkaClusterError(
            f"{found} is Java {major}; Kafka needs Java {MIN_JAVA}+. Install a newer JDK "
            "and put it first on PATH or point JAVA_HOME at it"
        )
    return Path(found), match.group(1)


def _libs_complete(libs_dir: Path, version: str) -> bool:
    """True if a previous resolution finished (its marker lists jars that are all still there)."""
    try:
        marker = json.loads((libs_dir / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    jars = marker.get("jars") if isinstance(marker, dict) else None
    if marker.get("kafka_version") != version or not isinstance(jars, dict) or not jars:
        return False
    return all(
        (libs_dir / name).is_file() and (libs_dir / name).stat().st_size == size
        for name, size in jars.items()
    )


def _resolve_with_maven(java: Path, pom: Path, libs_dir: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaClusterError(
            "`mvn` not found: it fetches the Kafka broker jars once (then they are cached in "
            f"{libs_dir}). Install Maven 3.8+ (`apt-get install maven`), or copy a resolved cache "
            "(.cache/kafka/libs-<version>, marker file included) from another machine and point "
            "KSAGA_KAFKA_LIBS at it"
        )
    libs_dir.mkdir(parents=True, exist_ok=True)
    # A half-copied jar is newer than the repository's, so copy-dependencies would keep it.
    for stale in [*libs_dir.glob("*.jar"), *libs_dir.glob("*.jsa"), libs_dir / _MARKER]:
        stale.unlink(missing_ok=True)
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), f"-Dkafka.libs={libs_dir}"]
    cmd.append("package")
    _log.info("resolving Kafka %s jars: %s", version, " ".join(cmd))
    code, out = _run(cmd, timeout=MVN_TIMEOUT_S, cwd=pom.parent)
    if code != 0:
        raise KafkaClusterError(
            f"`{' '.join(cmd)}` failed (exit {code}) resolving the Kafka {version} jars. Check "
            "that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) and that "
            f"org.apache.kafka:kafka_2.13:{version} exists. Last lines of mvn's output:\n"
            f"{_tail(out)}"
        )
    if not (libs_dir / f"kafka_2.13-{version}.jar").is_file():
        raise KafkaClusterError(
            f"mvn succeeded but {libs_dir} has no kafka_2.13-{version}.jar; is -Dkafka.libs "
            f"still the copy-dependencies outputDirectory in {pom}?"
        )
    # Confirm the classpath really is that Kafka before declaring the cache complete.
    code, out = _run([str(java), "-cp", f"{libs_dir}/*", "kafka.Kafka", "--version"], 120)
    reported = out.strip().splitlines()[0].strip() if out.strip() else ""
    if code != 0 or reported != version:
        raise KafkaClusterError(
            f"`kafka.Kafka --version` from {libs_dir} printed {reported!r} (exit {code}), "
            f"expected {version}; delete {libs_dir} and retry:\n{_tail(out)}"
        )
    jars = {p.name: p.stat().st_size for p in sorted(libs_dir.glob("*.jar"))}
    marker = {"kafka_version": reported, "jars": jars}
    tmp = libs_dir / f"{_MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=1))
    tmp.replace(libs_dir / _MARKER)


@functools.cache
def kafka_jars() -> KafkaJars:
    """Resolve the broker jars once per process (and once per machine: they are cached).

    The cache is ``<root>/.cache/kafka/libs-<kafka.version>`` or ``$KSAGA_KAFKA_LIBS``. It counts
    as complete only once a marker file was written after mvn and ``kafka.Kafka --version``
    succeeded; anything less is resolved again. A file lock keeps parallel runs from racing.
    """
    began = time.monotonic()
    root = project_root()
    pom = root / "deploy" / "kafka" / "pom.xml"
    log4j_config = root / "deploy" / "kafka" / "log4j2.properties"
    version = pom_kafka_version(pom)
    java, java_version = find_java()
    override = os.environ.get("KSAGA_KAFKA_LIBS")
    libs_dir = (
        Path(override).resolve() if override else root / ".cache" / "kafka" / f"libs-{version}"
    )
    if not _libs_complete(libs_dir, version):
        libs_dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = libs_dir.parent / f".{libs_dir.name}.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _libs_complete(libs_dir, version):  # another process may have finished
                _resolve_with_maven(java, pom, libs_dir, version)
    if not log4j_config.is_file():
        raise KafkaClusterError(f"{log4j_config} is missing; restore it from git")
    seconds = time.monotonic() - began
    return KafkaJars(
        version=version,
        libs_dir=libs_dir,
        java=java,
        java_version=java_version,
        log4j_config=log4j_config,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- processes

_PR_SET_PDEATHSIG = 1
_live_nodes: set[KafkaNode] = set()
_live_lock = threading.Lock()


def _death_signal_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGKILL the child when this process dies.

    Caveat (prctl semantics): the signal fires when the *thread* that started the child exits,
    so start brokers from a long-lived thread (pytest fixtures run in the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not after
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        nodes = list(_live_nodes)
    for node in nodes:
        node.kill()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def new_cluster_id() -> str:
    """A KRaft cluster id, as ``StorageTool random-uuid`` prints it, without starting a JVM.

    Kafka's ``Uuid.toString`` is the URL-safe base64 of 16 random bytes without padding, and
    ``Uuid.randomUuid`` never hands out one that starts with ``-``; saving the extra JVM start
    is worth about a second per cluster on two cores.
    """
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaNode:
    """One broker JVM (combined broker and controller) with its own dirs, ports and config."""

    def __init__(
        self,
        node_id: int,
        workdir: Path,
        port: int,
        controller_port: int,
        jars: KafkaJars,
        *,
        heap: str = HEAP,
    ) -> None:
        self.node_id = node_id
        self.workdir = workdir
        self.port = port
        self.controller_port = controller_port
        self.jars = jars
        self.heap = heap
        self.data_dir = workdir / "data"
        self.log_dir = workdir / "logs"
        self.config_file = workdir / "server.properties"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._paused = False
        self._cds_dump: Path | None = None
        self._served = False  # this run logged "Kafka Server started"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "down"
        return f"<KafkaNode {self.node_id} {self.bootstrap} {state}>"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def write_config(self, properties: Mapping[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in properties.items()]
        self.config_file.write_text("\n".join(lines) + "\n")

    def format(self, cluster_id: str, *, standalone: bool, extra_args: Sequence[str] = ()) -> None:
        """Format the data dir with ``kafka.tools.StorageTool``: once, never on a restart."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        args = ["format", "-t", cluster_id, "-c", str(self.config_file), "--ignore-formatted"]
        args += extra_args
        if standalone:
            args.append("--standalone")
        cmd = self.jars.java_command(
            "kafka.tools.StorageTool", *args, heap="256m", logs_dir=self.log_dir
        )
        code, out = _run(cmd, timeout=120)
        if code != 0:
            raise KafkaClusterError(
                f"formatting node {self.node_id} ({self.data_dir}) failed (exit {code}); "
                f"config {self.config_file}:\n{_tail(out)}"
            )

    def start(self) -> None:
        """Launch the JVM in its own process group; readiness is :meth:`started` plus metadata."""
        if self.is_running:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        self._cds_dump = self.jars.claim_cds_dump()
        cmd = self.jars.java_command(
            "kafka.Kafka",
            str(self.config_file),
            heap=self.heap,
            logs_dir=self.log_dir,
            cds_dump=self._cds_dump,
        )
        with self.stdout_log.open("ab") as out:
            out.write(f"\n==== starting: {' '.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_death_signal_setup(),  # noqa: PLW1509 (nothing else is safe here)
            )
        self._paused = False
        self._served = False
        with _live_lock:
            _live_nodes.add(self)

    def started(self) -> bool:
        """True once this run logged "Kafka Server started"; raises if the JVM already exited."""
        self.check_alive()
        if not self._served:
            try:
                with self.server_log.open("rb") as log:
                    log.seek(self._log_offset)
                    self._served = _STARTED_LINE in log.read()
            except FileNotFoundError:
                pass
        return self._served

    def check_alive(self) -> None:
        if self._proc is None:
            raise KafkaClusterError(f"node {self.node_id} was never started")
        code = self._proc.poll()
        if code is not None:
            raise KafkaClusterError(
                f"Kafka node {self.node_id} exited early with code {code}.\n{self.diagnostics()}"
            )

    def diagnostics(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of server.log and stdout.log, for error messages."""
        parts = []
        for path in (self.server_log, self.stdout_log):
            try:
                text = path.read_bytes()[-200_000:].decode(errors="replace")
            except FileNotFoundError:
                text = "(missing)"
            parts.append(f"--- last {lines} lines of {path}:\n{_tail(text, lines)}")
        return "\n".join(parts)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def _reap(self, timeout: float) -> bool:
        if self._proc is None:
            return True
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        with _live_lock:
            _live_nodes.discard(self)
        if self._cds_dump is not None:
            dump, self._cds_dump = self._cds_dump, None
            # Only a broker that got all the way up and then exited on its own has a full archive.
            self.jars.finish_cds_dump(dump, clean_exit=self._served and code != -signal.SIGKILL)
        return True

    def terminate(self) -> None:
        """Send SIGTERM (controlled shutdown) without waiting; a paused node is resumed for it."""
        self._signal(signal.SIGTERM)
        if self._paused:
            self.resume()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Idempotent."""
        self.terminate()
        if not self._reap(timeout):
            _log.warning("node %s ignored SIGTERM for %g s; killing it", self.node_id, timeout)
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash: no controlled shutdown, no flush) and reap. Idempotent."""
        self._signal(signal.SIGKILL)
        self._reap(30.0)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the process hangs with its sockets open (a zombie broker)."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)
        self._paused = False

    @property
    def is_paused(self) -> bool:
        return self._paused and self.is_running


# --------------------------------------------------------------------------- clusters


class ListenerSecurity(Protocol):
    """How a secured cluster authenticates (and maybe authorises) clients: an overlay.

    Implemented by ``broker_security.BrokerSecurity`` (SASL/SCRAM + ACLs), ``broker_tls.BrokerTls``
    (mutual TLS) and ``broker_oauth.BrokerOAuth`` (unsecured OAUTHBEARER + ACLs). The listener
    *names* stay ``PLAINTEXT``/``CONTROLLER``/``PX_*``; an overlay rewrites only their protocols
    and adds its settings, so the rest of the harness is unchanged.
    """

    def format_args(self) -> list[str]:
        """Extra ``kafka-storage format`` arguments (credentials in the bootstrap metadata)."""
        ...

    def broker_properties(self, base: Mapping[str, str]) -> dict[str, str]:
        """Settings laid over a node's ``base`` properties."""
        ...

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings of the harness's own clients (a super user where ACLs apply)."""
        ...


def _client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for the harness's own clients; their logs go to Python logging."""
    return {"bootstrap.servers": bootstrap, "logger": _log, **extra}


class KRaftCluster(StoppedOnExit):
    """Common life cycle of :class:`KafkaBroker` and :class:`KafkaCluster` (N combined nodes)."""

    def __init__(
        self,
        size: int,
        workdir: Path | None,
        *,
        heap: str,
        extra_config: Mapping[str, str] | None,
        ready_timeout: float,
        proxied: Sequence[str] = (),
        security: ListenerSecurity | None = None,
    ) -> None:
        self.size = size
        self.proxied = ProxiedListeners(proxied)
        self.security = security
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="ksaga-kafka-")) if workdir is None else workdir
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.ready_timeout = ready_timeout
        self.nodes: list[KafkaNode] = []
        self.cluster_id = ""
        self.jars: KafkaJars | None = None
        self.startup_seconds = 0.0
        self.timings: dict[str, float] = {}
        self._admin: AdminClient | None = None
        self._stopped = False

    # -- configuration, specialised by the subclasses

    def _quorum_config(self, ports: Sequence[tuple[int, int]]) -> dict[str, str]:
        raise NotImplementedError

    def _standalone(self) -> bool:
        raise NotImplementedError

    def _replication_config(self) -> dict[str, str]:
        raise NotImplementedError

    # -- authentication and ACLs (only with ``security``; see ListenerSecurity)

    def _secured(self, properties: dict[str, str]) -> dict[str, str]:
        if self.security is None:
            return properties
        return {**properties, **self.security.broker_properties(properties), **self.extra_config}

    def _login(self) -> dict[str, Any]:
        """The harness's own clients log in as the super user when the cluster is secured."""
        return self.security.client_config() if self.security is not None else {}

    def node_properties(self, node: KafkaNode, quorum: Mapping[str, str]) -> dict[str, str]:
        px_listeners, px_advertised, px_protocols = self.proxied.node_listeners(node.node_id)
        listeners = [
            f"PLAINTEXT://127.0.0.1:{node.port}",
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            *px_listeners,
        ]
        return {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(
                [f"PLAINTEXT://127.0.0.1:{node.port}", *px_advertised]
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT", *px_protocols]
            ),
            "log.dirs": str(node.data_dir),
            **quorum,
            **self._replication_config(),
            # Tests start consumers and transactions constantly: no waiting, few partitions.
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.num.partitions": "10",
            "auto.create.topics.enable": "false",
            # Client transaction.timeout.ms must stay below this cap (tests use 10-30 s); a
            # timed-out transaction is aborted within a second instead of ten.
            "transaction.max.timeout.ms": "300000",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            # A small box: two cores, a 512 MB heap.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
            **self.extra_config,
        }

    # -- life cycle

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def version(self) -> str:
        return (
            self.jars.version
            if self.jars is not None
            else pom_kafka_version(project_root() / "deploy" / "kafka" / "pom.xml")
        )

    @property
    def log_dir(self) -> Path:
        """The cluster's working directory: one ``node-<id>/{data,logs}`` per node."""
        return self.workdir

    def start(self) -> Self:
        """Resolve jars, format, launch, wait until every broker serves, warm up.

        Idempotent while running; a stopped cluster is not started again (make a new one).
        """
        if self._stopped:
            raise KafkaClusterError(f"{type(self).__name__} in {self.workdir} was stopped")
        if self.nodes:
            return self
        began = time.monotonic()
        try:
            self.jars = kafka_jars()
            self.timings["jars"] = time.monotonic() - began
            self._start_nodes()
        except BaseException:
            self._own_workdir = False  # keep the logs the error message points at
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        _log.info(
            "Kafka %s up at %s in %.1f s",
            self.version,
            self.bootstrap_servers,
            self.startup_seconds,
        )
        return self

    def _start_nodes(self) -> None:
        assert self.jars is not None
        ports = free_ports(2 * self.size + self.proxied.port_count(self.size))
        pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(self.size)]
        self.proxied.plan(range(1, self.size + 1), ports[2 * self.size :])
        self.proxied.start()
        quorum = self._quorum_config(pairs)
        self.cluster_id = new_cluster_id()
        for index, (port, cport) in enumerate(pairs):
            node_id = index + 1
            node = KafkaNode(
                node_id, self.workdir / f"node-{node_id}", port, cport, self.jars, heap=self.heap
            )
            node.write_config(self._secured(self.node_properties(node, quorum)))
            self.nodes.append(node)
        t0 = time.monotonic()
        extra_args = self.security.format_args() if self.security is not None else []
        self._parallel(
            lambda node: node.format(
                self.cluster_id, standalone=self._standalone(), extra_args=extra_args
            )
        )
        t1 = time.monotonic()
        for node in self.nodes:
            node.start()
        self.wait_ready(self.ready_timeout)
        t2 = time.monotonic()
        self._warm_up(self.ready_timeout)
        t3 = time.monotonic()
        self.timings.update(format=t1 - t0, ready=t2 - t1, warm_up=t3 - t2)

    def _parallel(self, action: Callable[[KafkaNode], None]) -> None:
        errors: list[BaseException] = []

        def run(node: KafkaNode) -> None:
            try:
                action(node)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(_client_config(self.bootstrap_servers, **self._login()))
        return self._admin

    def live_broker_ids(self, timeout: float = 5.0) -> set[int]:
        return set(self.admin().list_topics(timeout=timeout).brokers)

    def wait_ready(self, timeout: float, nodes: Sequence[KafkaNode] | None = None) -> None:
        """Wait until ``nodes`` (all by default) logged "started" and metadata lists them all."""
        waiting = list(self.nodes if nodes is None else nodes)

        def ready() -> bool:
            for node in waiting:
                node.check_alive()  # a JVM that exited fails the wait at once, with its log
            if not all(node.started() for node in waiting):
                return False
            return {node.node_id for node in self.nodes if node.is_running} <= (
                self.live_broker_ids(timeout=2.0)
            )

        ids = ", ".join(str(node.node_id) for node in waiting)
        self._wait(ready, timeout, f"Kafka node(s) {ids} to serve requests")

    def _wait(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        try:
            return wait_for(predicate, timeout, what, interval=0.2, ignore=(KafkaException,))
        except TimeoutError as exc:
            logs = "\n".join(node.diagnostics() for node in self.nodes)
            raise KafkaClusterError(f"{exc}; broker logs in {self.workdir}\n{logs}") from exc

    def _warm_up(self, timeout: float) -> None:
        """Create ``__transaction_state`` and ``__consumer_offsets`` now, not in the first test."""
        producer = Producer(
            _client_config(
                self.bootstrap_servers,
                **self._login(),
                **{"transactional.id": "ksaga-warm-up", "transaction.timeout.ms": 10000},
            )
        )

        def init() -> bool:
            producer.init_transactions(5.0)
            return True

        self._wait(init, timeout, "the transaction coordinator (__transaction_state)")
        producer.begin_transaction()
        producer.commit_transaction(timeout)
        consumer = Consumer(
            _client_config(
                self.bootstrap_servers,
                **self._login(),
                **{"group.id": "ksaga-warm-up", "enable.auto.commit": False},
            )
        )
        try:
            self._wait(
                lambda: consumer.committed([TopicPartition("ksaga-warm-up", 0)], timeout=5.0),
                timeout,
                "the group coordinator (__consumer_offsets)",
            )
        finally:
            consumer.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node at once, wait up to ``timeout`` s in all, SIGKILL the rest.

        Idempotent. A work dir this object created itself is deleted, unless starting failed.
        """
        for node in self.nodes:
            node.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if not node._reap(max(0.0, deadline - time.monotonic())):
                _log.warning("node %s ignored SIGTERM; killing it", node.node_id)
                node.kill()
        self.proxied.stop()
        self._admin = None
        self._stopped = True
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- topics and leaders

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = -1,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> str:
        """Create a topic (broker defaults for RF and min ISR unless given); wait for leaders."""
        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        for future in self.admin().create_topics([topic], operation_timeout=timeout).values():
            future.result(timeout)

        def has_leaders() -> bool:
            meta = self.admin().list_topics(name, timeout=5.0).topics.get(name)
            return bool(
                meta
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            )

        self._wait(has_leaders, timeout, f"leaders for all partitions of {name}")
        return name

    def partition(self, topic: str, partition: int = 0) -> PartitionMetadata:
        """Current metadata (leader, replicas, ISR) of one partition."""
        meta = self.admin().list_topics(topic, timeout=5.0).topics[topic]
        return meta.partitions[partition]

    def leader_of(
        self, topic: str, partition: int = 0, *, not_: int | None = None, timeout: float = 60.0
    ) -> int:
        """The broker id leading ``topic``/``partition``; waits for one (other than ``not_``)."""

        def leader() -> int | None:
            found = self.partition(topic, partition).leader
            return found if found >= 0 and found != not_ else None

        other = f" other than {not_}" if not_ is not None else ""
        return self._wait(leader, timeout, f"a leader of {topic}-{partition}{other}")

    def leader_node(self, topic: str, partition: int = 0) -> KafkaNode:
        """The node object of the current leader of ``topic``/``partition``."""
        return self.node(self.leader_of(topic, partition))

    def node(self, broker_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == broker_id:
                return node
        raise KeyError(
            f"no node with broker id {broker_id} (have {[n.node_id for n in self.nodes]})"
        )

    # -- faults

    def kill_node(self, broker_id: int) -> KafkaNode:
        """kill -9 one node: a crash with no controlled shutdown."""
        node = self.node(broker_id)
        node.kill()
        return node

    def pause_node(self, broker_id: int) -> KafkaNode:
        node = self.node(broker_id)
        node.pause()
        return node

    def resume_node(self, broker_id: int) -> KafkaNode:
        node = self.node(broker_id)
        node.resume()
        return node

    def stop_node(self, broker_id: int, timeout: float = STOP_TIMEOUT_S) -> KafkaNode:
        """SIGTERM one node: controlled shutdown, leadership moves first."""
        node = self.node(broker_id)
        node.stop(timeout)
        return node

    def restart_node(self, broker_id: int, *, wait: bool = True) -> KafkaNode:
        """Start a stopped or killed node again on the same dirs and ports (no re-format)."""
        node = self.node(broker_id)
        if node.is_paused:  # a paused JVM still holds its ports; make it a crash first
            node.kill()
        node.start()
        if wait:
            self.wait_ready(self.ready_timeout, [node])
        return node

    def heal(self) -> None:
        """Resume paused nodes and restart dead ones, so the next test gets a whole cluster."""
        restarted = []
        for node in self.nodes:
            if node.is_paused:
                node.resume()
            if not node.is_running:
                node.start()
                restarted.append(node)
        if restarted:
            self.wait_ready(self.ready_timeout, restarted)


class KafkaBroker(KRaftCluster):
    """One combined KRaft node (broker and controller): the broker of the integration tests.

    Every internal topic is RF 1 / min ISR 1, otherwise transactions hang on one node.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        heap: str = HEAP,
        extra_config: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        proxied: Sequence[str] = (),
        security: ListenerSecurity | None = None,
    ) -> None:
        super().__init__(
            1, workdir, heap=heap, extra_config=extra_config, ready_timeout=ready_timeout,
            proxied=proxied, security=security,
        )  # fmt: skip

    def _quorum_config(self, ports: Sequence[tuple[int, int]]) -> dict[str, str]:
        return {"controller.quorum.bootstrap.servers": f"127.0.0.1:{ports[0][1]}"}

    def _standalone(self) -> bool:
        return True

    def _replication_config(self) -> dict[str, str]:
        return {
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
        }


class KafkaCluster(KRaftCluster):
    """Three (or more) combined KRaft nodes on a static quorum: the cluster of the fault tests.

    ``controller.quorum.voters`` lists every node, all share one cluster id and are formatted
    without ``--standalone``. Internal and data topics default to RF 3 / min ISR 2, so one node
    may crash while ``acks=all`` writes continue.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        size: int = 3,
        heap: str = HEAP,
        extra_config: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        proxied: Sequence[str] = (),
        security: ListenerSecurity | None = None,
    ) -> None:
        if size < 3:
            raise KafkaClusterError(f"KafkaCluster needs 3+ nodes (got {size}); use KafkaBroker")
        super().__init__(
            size, workdir, heap=heap, extra_config=extra_config, ready_timeout=ready_timeout,
            proxied=proxied, security=security,
        )  # fmt: skip

    def _quorum_config(self, ports: Sequence[tuple[int, int]]) -> dict[str, str]:
        voters = ",".join(f"{i + 1}@127.0.0.1:{cport}" for i, (_, cport) in enumerate(ports))
        return {"controller.quorum.voters": voters}

    def _standalone(self) -> bool:
        return False

    def _replication_config(self) -> dict[str, str]:
        rf = str(min(self.size, 3))
        return {
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "2",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "2",
            "default.replication.factor": rf,
            "min.insync.replicas": "2",
            # After a kill -9 the ISR shrinks within ~10 s rather than 30.
            "replica.lag.time.max.ms": "10000",
            # The controller fences a silent broker (and moves its leaders) after 5 s, not 9.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "5000",
        }
