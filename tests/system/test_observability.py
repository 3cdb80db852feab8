"""Observability on a real run: spans, JSON logs and metrics of a replica and the participants.

One broker for the module. Replica A sends the first commands and stops (SIGTERM) before any
participant runs; replica B, on an empty disk, restores the sagas from ``ksaga.state`` and
folds every reply; the participants run with the console span exporter. Everything is judged
from the processes' real output (spans as JSON on stdout, logs as JSON lines on stderr, the
``/metrics`` endpoint) against what the topics hold:

* every command attempt has one orchestrator span whose span id and trace id are those of the
  command's ``traceparent``, starting exactly at the command's ``sent_ms`` and ending at or after
  the fold of what ended it (a reply or a timeout), even when another replica sent it;
* every participant span is a child of the step span named in the command it handled, and the
  reply carries the participant span's own ``traceparent``;
* every saga has a root span (start to terminal), parent of its step spans;
* step latency and saga duration histograms count what happened, across the restart;
  ``ksaga_timers_pending`` equals the waiting sagas after a restore and 0 at the end;
  ``ksaga_consumer_lag`` is published per owned inbox partition and falls to 0 once all is read;
* log lines are JSON and carry the saga, step, attempt, partition and offset of their record.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from connectors.order_participants import ORDER_COMMAND_TOPICS, Behaviour, expected_outcome
from connectors.records import original_headers
from orchestrator import traceids
from orchestrator.partitioning import partition_for
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from orchestrator.testing.system import create_all_topics, publish_orders
from schemas.codec import RecordType, default_catalog
from schemas.headers import last_header

pytestmark = pytest.mark.kafka

PARTITIONS = 2
BEHAVIOUR = Behaviour(seed=11, decline_rate=0.5)


@dataclass
class Proc:
    """A child process with stdout (spans) and stderr (logs) in separate files."""

    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    files: tuple[IO[bytes], IO[bytes]]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        for f in self.files:
            f.close()
        return code

    def alive(self) -> bool:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited {code}:\n{self.err.read_text()[-3000:]}"
        return True


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Proc:
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    files = (out.open("wb"), err.open("wb"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *argv],
        env={**os.environ, **env},
        stdout=files[0],
        stderr=files[1],
    )
    return Proc(name, proc, out, err, files)


def replica(bootstrap: str, name: str, workdir: Path, port: int) -> Proc:
    env = {
        "KSAGA_BOOTSTRAP_SERVERS": bootstrap,
        "KSAGA_REPLICA_ID": name,
        "KSAGA_STATE_DIR": str(workdir / name / "rocksdb"),
        "KSAGA_TRANSACTION_TIMEOUT_MS": "10000",
        "KSAGA_SESSION_TIMEOUT_MS": "6000",
        "KSAGA_HTTP_PORT": str(port),
        "KSAGA_OTEL_EXPORTER": "console",
        "KSAGA_LOG_FORMAT": "json",
    }
    return spawn(name, ["run"], env, workdir)


def participants(bootstrap: str, workdir: Path) -> Proc:
    argv = [
        "participants", "--bootstrap", bootstrap, "--state-dir", str(workdir / "p" / "rocksdb"),
        "--seed", str(BEHAVIOUR.seed), "--decline-rate", str(BEHAVIOUR.decline_rate),
        "--poll-timeout-ms", "50",
    ]  # fmt: skip
    env = {"KSAGA_OTEL_EXPORTER": "console", "KSAGA_LOG_FORMAT": "json"}
    return spawn("participants", argv, env, workdir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            body: bytes = response.read()
            return body.decode()
    except (OSError, urllib.error.HTTPError):
        return None


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format -> {(name, labels): value} (enough for ksaga's own metrics)."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = frozenset(
            (k, v.strip('"'))
            for k, v in (p.split("=", 1) for p in rest.rstrip("}").split(",") if p)
        )
        found[(name, labels)] = float(value)
    return found


def total(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **want: str
) -> float:
    return sum(v for (n, labels), v in metrics.items() if n == name and set(want.items()) <= labels)


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Concatenated JSON objects (the console exporter's pretty-printed spans); other lines
    (a CLI's closing summary) are skipped."""
    decoder = json.JSONDecoder()
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == "{":
            obj, i = decoder.raw_decode(text, i)
            yield obj
        else:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1


def span_ns(stamp: str) -> int:
    """The console exporter's ISO time (microseconds) -> epoch ns."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def hex_id(value: str | None) -> int | None:
    return None if value is None else int(value, 16)


def read_all(bootstrap: str, topics: list[str]) -> list[Message]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"obs-reader-{os.getpid()}",
         "isolation.level": "read_committed", "enable.auto.commit": False,
         "enable.partition.eof": True, "auto.offset.reset": "earliest"}
    )  # fmt: skip
    metadata = consumer.list_topics(timeout=10)
    tps = [TopicPartition(t, p, 0) for t in topics for p in sorted(metadata.topics[t].partitions)]
    consumer.assign(tps)
    pending = {(tp.topic, tp.partition) for tp in tps}
    out: list[Message] = []

    def drained() -> bool:
        for msg in consumer.consume(500, 0.5):
            err = msg.error()
            if err is None:
                out.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                pending.discard((msg.topic() or "", msg.partition() or 0))
        return not pending

    wait_for(drained, 30, f"reading {topics} to the end", interval=0)
    consumer.close()
    return out


def header(msg: Message, name: str) -> bytes | None:
    return last_header(original_headers(msg), name)


def traceparent_ids(value: bytes) -> tuple[int, int]:
    _version, trace, span, _flags = value.decode().split("-")
    return int(trace, 16), int(span, 16)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(tmp_path_factory.mktemp("obs-kafka")) as started:
        create_all_topics(started.bootstrap_servers, PARTITIONS)
        yield started


def test_spans_logs_and_metrics_of_a_run_across_a_replica_restart(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    candidates = [f"obs-{i:03d}" for i in range(40)]
    done = [o for o in candidates if expected_outcome(o, BEHAVIOUR) == "COMPLETED"][:2]
    undone = [o for o in candidates if expected_outcome(o, BEHAVIOUR) == "COMPENSATED"][:2]
    order_ids = done + undone
    saga_ids = [f"order/{o}" for o in order_ids]

    # Replica A sends the first commands; nobody answers them yet.
    port_a = free_port()
    a = replica(bootstrap, "obs-a", tmp_path, port_a)
    wait_for(lambda: a.alive() and http(port_a, "/ready"), 60, "replica A ready")
    publish_orders(bootstrap, order_ids)

    def first_commands() -> bool:
        a.alive()
        return len(read_all(bootstrap, ["inventory.commands"])) >= len(order_ids)

    wait_for(first_commands, 30, "replica A to send the first commands")
    assert a.stop() == 0

    # Replica B restores from ksaga.state on a fresh disk: every saga waits on one timer.
    port_b = free_port()
    b = replica(bootstrap, "obs-b", tmp_path, port_b)
    b_started_ns = datetime.now().timestamp() * 1e9
    wait_for(lambda: b.alive() and http(port_b, "/ready"), 60, "replica B ready")
    after_restore = samples(http(port_b, "/metrics") or "")
    assert total(after_restore, "ksaga_timers_pending") == len(order_ids)

    p = participants(bootstrap, tmp_path)
    poison = default_catalog().encode(
        RecordType.REPLY,
        {"saga_id": saga_ids[0], "step": "teleport", "action": "DO", "attempt": 3,
         "outcome": "SUCCEEDED", "payload": b"{}", "replied_ms": 1},
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap})
    poison_partition = partition_for(saga_ids[0], PARTITIONS)
    producer.produce("ksaga.inbox", partition=poison_partition, key=b"x", value=poison)
    assert producer.flush(10) == 0

    def finished() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        b.alive()
        p.alive()
        metrics = samples(http(port_b, "/metrics") or "")
        if total(metrics, "ksaga_saga_duration_seconds_count") < len(order_ids):
            return None
        if total(metrics, "ksaga_timers_pending") != 0:
            return None
        lags = {
            dict(k)["partition"]: v for (n, k), v in metrics.items() if n == "ksaga_consumer_lag"
        }
        return metrics if lags == {"0": 0, "1": 0} else None  # B owns both; all read

    metrics = wait_for(finished, 90, "every saga terminal, timers 0, lag sampled")
    assert p.stop() == 0
    assert b.stop() == 0

    # ---------------------------------------------------------------- metrics (replica B)
    for saga_type_status, orders_ in (("COMPLETED", done), ("COMPENSATED", undone)):
        count = total(
            metrics, "ksaga_saga_duration_seconds_count", saga_type="order", status=saga_type_status
        )
        assert count == len(orders_)
    # B folded the replies to A's reserve_stock commands: their latency includes the restart.
    reserve = total(metrics, "ksaga_step_latency_seconds_count", step="reserve_stock", action="DO")
    assert reserve >= len(order_ids)
    assert total(metrics, "ksaga_step_latency_seconds_count", step="charge_payment",
                 outcome="failed") == len(undone)  # fmt: skip
    assert total(metrics, "ksaga_step_latency_seconds_count", step="reserve_stock",
                 action="UNDO", outcome="succeeded") == len(undone)  # fmt: skip
    assert total(metrics, "ksaga_dead_letters_total", reason="unknown-step") == 1

    # ---------------------------------------------------------------- spans
    a_spans = list(json_objects(a.out.read_text()))
    b_spans = list(json_objects(b.out.read_text()))
    orchestrator_spans = a_spans + b_spans
    made_by_b = {hex_id(s["context"]["span_id"]) for s in b_spans}
    participant_spans = list(json_objects(p.out.read_text()))
    by_id = {hex_id(s["context"]["span_id"]): s for s in orchestrator_spans}
    assert len(by_id) == len(orchestrator_spans), "one span per attempt and per saga"
    assert all(s["resource"]["attributes"]["service.name"] == "ksaga-orchestrator"
               for s in orchestrator_spans)  # fmt: skip

    commands = read_all(bootstrap, list(ORDER_COMMAND_TOPICS))
    inbox = read_all(bootstrap, ["ksaga.inbox"])
    replies: dict[tuple[str, str, str, int], Message] = {}
    for msg in inbox:
        if header(msg, "ksaga.type") == b"Reply":
            r = default_catalog().decode_as(RecordType.REPLY, msg.value()).value
            replies[(r["saga_id"], r["step"], r["action"], r["attempt"])] = msg
    assert commands
    sent_by_a = 0
    for msg in commands:
        c = default_catalog().decode_as(RecordType.COMMAND, msg.value()).value
        trace_id, span_id = traceparent_ids(header(msg, "traceparent") or b"")
        span = by_id.get(span_id)
        assert span is not None, f"no span for {c['step']}/{c['action']}#{c['attempt']}"
        attrs = span["attributes"]
        named = (attrs["ksaga.saga_id"], attrs["ksaga.step"], attrs["ksaga.action"],
                 attrs["ksaga.attempt"])  # fmt: skip
        assert named == (c["saga_id"], c["step"], c["action"], c["attempt"])
        assert hex_id(span["context"]["trace_id"]) == trace_id == traceids.trace_id(c["saga_id"])
        assert hex_id(span["parent_id"]) == traceids.saga_span_id(c["saga_id"])
        # start = the command's send, exactly (the console exporter prints microseconds)
        assert span_ns(span["start_time"]) == c["sent_ms"] * 1_000_000
        reply = replies.get((c["saga_id"], c["step"], c["action"], c["attempt"]))
        if attrs["ksaga.outcome"] != "timed_out":
            assert reply is not None
            # end = the reply's fold: after the broker appended the reply
            assert span_ns(span["end_time"]) >= reply.timestamp()[1] * 1_000_000
        if c["sent_ms"] * 1e6 < b_started_ns and span_id in made_by_b:
            sent_by_a += 1  # A sent it, B folded its reply (or timeout) after restoring

    assert sent_by_a >= 1

    # Sagas: one root span each, from start to terminal.
    for saga_id, order_id in zip(saga_ids, order_ids, strict=True):
        root = by_id[traceids.saga_span_id(saga_id)]
        assert root["parent_id"] is None
        assert root["attributes"]["ksaga.status"] == expected_outcome(order_id, BEHAVIOUR)

    # Participants: a child of the step span in the command's traceparent; the reply carries it.
    assert participant_spans
    for span in participant_spans:
        attrs = span["attributes"]
        key = (attrs["ksaga.saga_id"], attrs["ksaga.step"], attrs["ksaga.action"],
               attrs["ksaga.attempt"])  # fmt: skip
        step_span_id = traceids.step_span_id(*key)
        assert hex_id(span["parent_id"]) == step_span_id
        assert hex_id(span["context"]["trace_id"]) == traceids.trace_id(key[0])
        assert span["resource"]["attributes"]["service.name"] == "ksaga-participants"
        reply = replies[key]
        assert traceparent_ids(header(reply, "traceparent") or b"") == (
            hex_id(span["context"]["trace_id"]),
            hex_id(span["context"]["span_id"]),
        )
    handled = {
        (s["attributes"]["ksaga.saga_id"], s["attributes"]["ksaga.step"],
         s["attributes"]["ksaga.action"], s["attributes"]["ksaga.attempt"])
        for s in participant_spans
    }  # fmt: skip
    assert handled == set(replies) - {(saga_ids[0], "teleport", "DO", 3)}

    # ---------------------------------------------------------------- logs
    for proc in (a, b, p):
        lines = [json.loads(line) for line in proc.err.read_text().splitlines() if line.strip()]
        assert lines, proc.name
        assert all("event" in line and "timestamp" in line for line in lines)
    b_logs = [json.loads(line) for line in b.err.read_text().splitlines()]
    dead = [line for line in b_logs if line["event"] == "dead-lettered"]
    assert len(dead) == 1
    assert dead[0]["saga_id"] == saga_ids[0]
    assert (dead[0]["step"], dead[0]["attempt"]) == ("teleport", 3)
    assert dead[0]["partition"] == poison_partition
    assert isinstance(dead[0]["offset"], int)
    finished_lines = [line for line in b_logs if line["event"] == "saga finished"]
    assert {line["saga_id"] for line in finished_lines} == set(saga_ids)
    for line in finished_lines:
        assert {"step", "attempt", "partition", "status", "duration_ms"} <= set(line)
    p_logs = [json.loads(line) for line in p.err.read_text().splitlines()]
    declined = [line for line in p_logs if line["event"] == "handler failed"]
    assert len(declined) == len(undone)
    for line in declined:
        assert line["step"] == "charge_payment"
        assert line["topic"] == "payments.commands"
        assert {"saga_id", "attempt", "partition", "offset"} <= set(line)
