"""The participant helper against the real broker: once-only execution, replies, dead letters.

Every test creates its own topics (commands, a two-partition inbox, a DLQ) and its own consumer
group, produces Command envelopes encoded with the codec, drives ``Participant.run_once`` until
a condition holds (with a deadline), then reads what landed by position, so an extra record
would be seen too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as TP

from connectors.errors import NonRetryableError, NoReply, RetryableError
from connectors.outcomes import OutcomeKind, OutcomeStore
from connectors.participant import CommandInfo, Participant, ParticipantConfig
from connectors.records import original_headers
from orchestrator.core import Action, idempotency_key
from orchestrator.testing.kafka_cluster import KafkaBroker, wait_for
from sagas.order import ChargePayment, PaymentCharged, ReleaseStock, ReserveStock, StockReserved
from schemas import deadletter
from schemas import headers as h
from schemas.codec import RecordType, default_catalog

pytestmark = pytest.mark.kafka

TIMEOUT_S = 30.0
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
RESERVE = json.dumps({"order_id": "o-1", "items": [{"sku": "a", "quantity": 2}]}).encode()


@dataclass
class Env:
    broker: KafkaBroker
    commands: str
    inbox: str
    dlq: str
    group: str
    state_dir: Path
    partitions: int
    calls: list[tuple[str, int]] = field(default_factory=list)
    opened: list[Participant] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def participant(self, **kwargs: Any) -> Participant:
        config = ParticipantConfig(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            topics=[self.commands],
            state_dir=self.state_dir,
            dlq_topic=self.dlq,
            batch_size=20,
            flush_timeout_s=10.0,
        )
        p = Participant(config, **kwargs)
        self.opened.append(p)
        return p

    def command(
        self,
        key: str,
        attempt: int = 1,
        *,
        command_type: str = "ReserveStock",
        payload: bytes = RESERVE,
        reply_partition: int = 1,
        saga_id: str = "order/o-1",
        action: str = "DO",
    ) -> bytes:
        return default_catalog().encode(
            RecordType.COMMAND,
            {
                "saga_id": saga_id,
                "saga_type": "order",
                "step": "reserve_stock",
                "action": action,
                "attempt": attempt,
                "idempotency_key": key,
                "command_type": command_type,
                "payload": payload,
                "reply_topic": self.inbox,
                "reply_partition": reply_partition,
                "sent_ms": 1_700_000_000_000,
            },
        )

    def send(self, *values: bytes, partition: int = 0) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        for value in values:
            producer.produce(
                self.commands,
                key=b"order/o-1",
                value=value,
                partition=partition,
                headers=[(h.TRACEPARENT, TRACEPARENT), ("x-app", b"kept")],
            )
        assert producer.flush(TIMEOUT_S) == 0


@pytest.fixture
def env(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str], tmp_path: Path
) -> Iterator[Env]:
    e = Env(
        broker=kafka_broker,
        commands=kafka_broker.create_topic(unique_topic("commands"), partitions=2),
        inbox=kafka_broker.create_topic(unique_topic("inbox"), partitions=2),
        dlq=kafka_broker.create_topic(unique_topic("dlq"), partitions=1),
        group=unique_topic("group"),
        state_dir=tmp_path / "state",
        partitions=2,
    )
    yield e
    for p in e.opened:
        p.close()


def register_reserve(env: Env, p: Participant) -> None:
    @p.handles(ReserveStock)
    def reserve(cmd: CommandInfo, payload: ReserveStock) -> StockReserved:
        env.calls.append((cmd.idempotency_key, cmd.attempt))
        return StockReserved(reservation_id=f"res-{payload.order_id}")


def drive(p: Participant, until: Callable[[], bool], what: str) -> None:
    def step() -> bool:
        p.run_once(0.2)
        return until()

    wait_for(step, TIMEOUT_S, what, interval=0)


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Message]:
    """Every record of ``topic``, read until each partition's position reaches its end."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    tps = [TP(topic, p) for p in range(partitions)]
    ends = {tp.partition: reader.get_watermark_offsets(tp, TIMEOUT_S)[1] for tp in tps}
    reader.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: list[Message] = []

    def at_end() -> bool:
        for msg in reader.consume(100, 0.1):
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg)
        return all(
            ends[tp.partition] == 0 or tp.offset >= ends[tp.partition]
            for tp in reader.position(tps)
        )

    try:
        wait_for(at_end, TIMEOUT_S, f"the end of {topic}", interval=0)
    finally:
        reader.close()
    return got


def replies(env: Env) -> list[tuple[int, dict[str, Any], dict[str, bytes]]]:
    out = []
    for msg in read_all(env.bootstrap, env.inbox, 2):
        assert msg.key() == b"order/o-1"
        value = default_catalog().decode_as(RecordType.REPLY, msg.value()).value
        hdrs = {k: v for k, v in original_headers(msg) if v is not None}
        out.append((msg.partition() or 0, value, hdrs))
    return sorted(out, key=lambda r: (r[1]["replied_ms"], r[1]["attempt"]))


def committed(env: Env) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": env.bootstrap, "group.id": env.group})
    try:
        tps = [TP(env.commands, p) for p in range(env.partitions)]
        return {tp.partition: tp.offset for tp in probe.committed(tps, TIMEOUT_S)}
    finally:
        probe.close()


def ends(env: Env) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": env.bootstrap, "group.id": "probe"})
    try:
        return {
            p: probe.get_watermark_offsets(TP(env.commands, p), TIMEOUT_S)[1]
            for p in range(env.partitions)
        }
    finally:
        probe.close()


def assert_committed_to_the_end(env: Env) -> None:
    """Every partition that has records is committed up to its end (empty ones: nothing)."""
    expected = {p: end if end else -1001 for p, end in ends(env).items()}  # OFFSET_INVALID
    assert committed(env) == expected


def test_command_is_executed_once_and_answered_on_the_reply_partition(env: Env) -> None:
    p = env.participant()
    register_reserve(env, p)
    env.send(env.command("order/o-1/reserve_stock/DO"))

    drive(p, lambda: p.processed == 1, "the command to be processed")

    assert env.calls == [("order/o-1/reserve_stock/DO", 1)]
    [(partition, reply, hdrs)] = replies(env)
    assert partition == 1  # the command's reply_partition, not murmur2 of the key
    assert reply["saga_id"] == "order/o-1"
    assert (reply["step"], reply["action"], reply["attempt"]) == ("reserve_stock", "DO", 1)
    assert reply["outcome"] == "SUCCEEDED"
    assert json.loads(reply["payload"]) == {"reservation_id": "res-o-1"}
    assert reply["error_type"] is None
    assert hdrs == {
        h.RECORD_TYPE: b"Reply",
        h.SAGA_ID: b"order/o-1",
        h.IDEMPOTENCY_KEY: b"order/o-1/reserve_stock/DO",
        h.ATTEMPT: b"1",
        h.TRACEPARENT: TRACEPARENT,
    }
    assert_committed_to_the_end(env)
    assert (p.executed, p.deduplicated, p.dead_lettered) == (1, 0, 0)


def test_redelivered_attempt_is_answered_from_the_store(env: Env) -> None:
    p = env.participant()
    register_reserve(env, p)
    key = "order/o-1/reserve_stock/DO"
    env.send(env.command(key, 1), env.command(key, 2))

    drive(p, lambda: p.processed == 2, "both attempts to be processed")

    assert env.calls == [(key, 1)]
    assert (p.executed, p.deduplicated) == (1, 1)
    first, second = replies(env)
    assert (first[1]["attempt"], second[1]["attempt"]) == (1, 2)
    assert second[2][h.ATTEMPT] == b"2"
    assert second[1]["outcome"] == "SUCCEEDED"
    assert second[1]["payload"] == first[1]["payload"]


def test_an_undo_fences_a_late_do_of_the_same_step(env: Env) -> None:
    p = env.participant()
    register_reserve(env, p)
    released: list[int] = []

    @p.handles(ReleaseStock)
    def release(cmd: CommandInfo, payload: ReleaseStock) -> None:
        released.append(cmd.attempt)

    do_key = idempotency_key("order/o-1", "reserve_stock", Action.DO)
    undo = env.command(
        idempotency_key("order/o-1", "reserve_stock", Action.UNDO), action="UNDO",
        command_type="ReleaseStock", payload=b'{"order_id": "o-1", "reservation_id": null}',
    )  # fmt: skip
    env.send(undo, env.command(do_key, 1))  # the timed-out DO arrives after its UNDO

    drive(p, lambda: p.processed == 2, "the UNDO and the late DO")

    assert released == [1]
    assert env.calls == []  # the DO never ran: nothing is left that nobody undoes
    late = replies(env)[1][1]
    assert (late["action"], late["outcome"], late["error_type"]) == ("DO", "FAILED", "Compensated")


class Crash(Exception):
    pass


def test_crash_after_the_work_before_the_reply_answers_from_the_store(env: Env) -> None:
    key = "order/o-1/reserve_stock/DO"

    def crash(info: CommandInfo) -> None:
        raise Crash(info.idempotency_key)

    doomed = env.participant(on_stored=crash)
    register_reserve(env, doomed)
    env.send(env.command(key))
    with pytest.raises(Crash):
        drive(doomed, lambda: False, "the crash")
    doomed.close()  # leaves the group; nothing was committed, nothing was produced
    assert env.calls == [(key, 1)]
    assert committed(env) == {0: -1001, 1: -1001}  # OFFSET_INVALID: no commit

    restarted = env.participant()
    register_reserve(env, restarted)
    drive(restarted, lambda: restarted.processed == 1, "the redelivered command")

    assert env.calls == [(key, 1)]  # not executed again
    assert (restarted.executed, restarted.deduplicated) == (0, 1)
    [(_, reply, _)] = replies(env)
    assert (reply["attempt"], reply["outcome"]) == (1, "SUCCEEDED")
    assert json.loads(reply["payload"]) == {"reservation_id": "res-o-1"}
    assert_committed_to_the_end(env)


def test_final_failures_are_cached_retryable_ones_and_silence_are_not(env: Env) -> None:
    p = env.participant()
    behaviour: dict[str, Callable[[int], Exception | None]] = {
        "flaky": lambda attempt: (
            RetryableError("GatewayTimeout", "no answer") if attempt == 1 else None
        ),
        "declined": lambda attempt: NonRetryableError("CardDeclined", "no funds"),
        "crashing": lambda attempt: ValueError("bug") if attempt == 1 else None,
        "silent": lambda attempt: NoReply() if attempt == 1 else None,
    }

    @p.handles(ChargePayment)
    def charge(cmd: CommandInfo, payload: ChargePayment) -> PaymentCharged:
        env.calls.append((cmd.idempotency_key, cmd.attempt))
        error = behaviour[cmd.idempotency_key](cmd.attempt)
        if error is not None:
            raise error
        return PaymentCharged(payment_id=f"pay-{payload.order_id}")

    charge_json = json.dumps({"order_id": "o-1", "customer_id": "c", "amount_cents": 5}).encode()
    values = [
        env.command(key, attempt, command_type="ChargePayment", payload=charge_json)
        for attempt in (1, 2)
        for key in behaviour
    ]
    env.send(*values)
    drive(p, lambda: p.processed == 8, "8 command attempts")

    # every handler ran on attempt 1; on attempt 2 all but the declined one ran again
    assert sorted(env.calls) == sorted(
        [(key, 1) for key in behaviour] + [(key, 2) for key in behaviour if key != "declined"]
    )
    assert (p.executed, p.deduplicated, p.silent) == (7, 1, 1)
    got = {(r["attempt"], hdrs[h.IDEMPOTENCY_KEY].decode()): r for _, r, hdrs in replies(env)}
    assert len(got) == 7  # the silent attempt 1 was not answered
    assert (1, "silent") not in got
    outcome = {k: (r["outcome"], r["error_type"]) for k, r in got.items()}
    assert outcome[1, "flaky"] == ("FAILED_RETRYABLE", "GatewayTimeout")
    assert outcome[1, "crashing"] == ("FAILED_RETRYABLE", "ValueError")
    assert outcome[1, "declined"] == outcome[2, "declined"] == ("FAILED", "CardDeclined")
    assert got[2, "declined"]["message"] == "no funds"
    for key in ("flaky", "crashing", "silent"):
        assert outcome[2, key] == ("SUCCEEDED", None)
    assert_committed_to_the_end(env)


def test_bad_commands_are_dead_lettered_and_good_ones_still_answered(env: Env) -> None:
    p = env.participant()
    register_reserve(env, p)
    bad = [
        (b"garbage, not avro", "bad-marker", "DecodeError"),
        (
            env.command("k-unknown", command_type="LaunchRocket"),
            "unknown-command",
            "UnknownCommand",
        ),
        (
            env.command("k-invalid", payload=b'{"order_id": 5}'),
            "invalid-payload",
            "ValidationError",
        ),
        (env.command("k-nowhere", reply_partition=7), "undeliverable-reply", "KafkaError"),
    ]
    env.send(*(value for value, _, _ in bad), env.command("k-good"), partition=1)

    drive(p, lambda: p.processed == 5, "five records to be processed")

    assert p.dead_lettered == 4
    letters = read_all(env.bootstrap, env.dlq, 1)
    assert len(letters) == 4
    by_offset = {}
    for msg in letters:
        info = deadletter.from_headers(original_headers(msg))
        assert (info.source_topic, info.source_partition) == (env.commands, 1)
        assert info.first_seen_ms > 0
        assert msg.key() == b"order/o-1"
        names = [k for k, _ in original_headers(msg)]
        assert names[:2] == [h.TRACEPARENT, "x-app"]  # the original headers come first
        by_offset[info.source_offset] = (msg.value(), info.reason, info.error_class)
    assert by_offset == {offset: bad[offset] for offset in range(4)}
    # the good command after them was executed and answered
    assert [(key, attempt) for key, attempt in env.calls] == [
        ("k-nowhere", 1),
        ("k-good", 1),
    ]
    [(partition, reply, hdrs)] = replies(env)
    assert (partition, hdrs[h.IDEMPOTENCY_KEY], reply["outcome"]) == (1, b"k-good", "SUCCEEDED")
    assert_committed_to_the_end(env)


def test_stop_finishes_the_batch_commits_and_closes_the_store(env: Env) -> None:
    p = env.participant()
    register_reserve(env, p)
    env.send(*(env.command(f"k-{i}") for i in range(5)))
    stop = threading.Event()
    runner = threading.Thread(target=p.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: p.processed == 5, TIMEOUT_S, "five commands to be processed")
    finally:
        stop.set()
        runner.join(TIMEOUT_S)
    assert not runner.is_alive()
    assert_committed_to_the_end(env)
    store = OutcomeStore(env.state_dir)  # the lock is released: the participant closed it
    try:
        outcomes = [store.get(f"k-{i}") for i in range(5)]
    finally:
        store.close()
    assert [o.kind if o else None for o in outcomes] == [OutcomeKind.SUCCEEDED] * 5


def test_cli_participants_stop_cleanly_on_sigterm(
    kafka_broker: KafkaBroker, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    code = "from connectors.cli import participants_command; participants_command()"
    args = ["--bootstrap", kafka_broker.bootstrap_servers, "--group-id", unique_topic("group")]
    args += ["--state-dir", str(tmp_path / "state"), "--seed", "3", "--decline-rate", "0.5"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        stdout = proc.stdout

        def started() -> bool:
            lines.append(stdout.readline())
            return "participant started" in lines[-1]

        wait_for(started, TIMEOUT_S, "the participants to start", interval=0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + out
    assert "participants stopped" in out
    assert (tmp_path / "state").is_dir()
