"""The checker: judge a run only from what the log says, read with read_committed after quiescence.

Its one idea is ksaga's own: a saga's life is the deterministic fold of its inbox records. So the
checker reads every committed record of ``ksaga.inbox`` and folds each saga's records through the
very ``decide`` the orchestrator runs (``now`` = the record's LogAppendTime, as in the loop), then
demands that the log agrees with that fold:

* every published trigger has exactly one saga, and it is terminal;
* the last ``ksaga.state`` record of every saga equals the fold of its inbox records;
* the commands in the command topics are exactly the fold's ``SendCommand`` effects: none
  missing, none extra, no (idempotency key, attempt) twice, attempts 1..n per key in log order;
* compensations are exactly the completed compensable steps (plus an in-doubt one: the step
  whose last attempt timed out, or the one in flight when an operator cancelled) in reverse
  order, after the last DO; a declined order never completes;
* ``ksaga.dlq`` holds exactly the injected poison, and the fold rejects nothing else.

It prints counts, then the minimal evidence of each problem (saga id and records), then one line
``verdict: PASS sagas=<n> faults=<f>`` or ``verdict: FAIL ...``.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from orchestrator.core import (
    Action,
    Decision,
    Input,
    SagaCancelled,
    SagaState,
    SagaStatus,
    SendCommand,
    StepKind,
    TimerFired,
)
from orchestrator.inbox import Refold
from orchestrator.ops.reader import read_to_end
from orchestrator.registry import Registry, load_registry
from orchestrator.wire import decode_state
from schemas.codec import RecordType, default_catalog

__all__ = ["CheckInput", "CheckReport", "check", "read_to_end"]


@dataclass(frozen=True)
class CheckInput:
    bootstrap: str
    order_ids: Sequence[str]
    """Unique order ids whose OrderPlaced was published (duplicates published count once)."""
    declined: frozenset[str] | set[str] = frozenset()
    """Order ids the participants always decline: such an order must never complete."""
    poison: Mapping[str, int] = field(default_factory=dict)
    """Dead-letter reasons injected on purpose, with their counts (anything else is a failure)."""
    topic_prefix: str = "ksaga."
    sagas_module: str = "sagas"
    saga_id_prefix: str = "order/"
    client: Mapping[str, Any] = field(default_factory=dict)
    """Extra librdkafka settings for the checker's clients (a secured broker's admin login)."""


@dataclass
class CheckReport:
    passed: bool
    sagas: int
    commands: int
    inbox_records: int
    statuses: Counter[str]
    problems: list[str]
    faults: Mapping[str, int]

    def verdict(self) -> str:
        faults = sum(self.faults.values())
        if self.passed:
            return f"verdict: PASS sagas={self.sagas} faults={faults}"
        return f"verdict: FAIL sagas={self.sagas} faults={faults} problems={len(self.problems)}"


def check(
    given: CheckInput, *, faults: Mapping[str, int] | None = None, out: TextIO | None = None
) -> CheckReport:
    out = out or sys.stdout
    registry = load_registry(given.sagas_module)
    prefix = given.topic_prefix
    inbox_topic, state_topic, dlq_topic = f"{prefix}inbox", f"{prefix}state", f"{prefix}dlq"
    command_topics = sorted(registry.command_topics)
    records = read_to_end(
        given.bootstrap, [inbox_topic, state_topic, dlq_topic, *command_topics], given.client
    )
    by_topic: dict[str, list[Message]] = defaultdict(list)
    for msg in records:
        by_topic[msg.topic() or ""].append(msg)
    for msgs in by_topic.values():
        msgs.sort(key=lambda m: (m.partition(), m.offset()))

    problems: list[str] = []
    partitions = _partition_count(given.bootstrap, inbox_topic, given.client)
    fold = _Fold(registry, partitions)
    for msg in by_topic[inbox_topic]:
        fold.feed(msg)
    last_state: dict[str, SagaState | None] = {}
    for msg in by_topic[state_topic]:
        key, value = msg.key(), msg.value()
        if key is not None:
            last_state[key.decode()] = decode_state(value) if value is not None else None

    # 1. every trigger: one saga, terminal; declined orders never complete.
    saga_ids = {f"{given.saga_id_prefix}{o}" for o in given.order_ids}
    statuses: Counter[str] = Counter()
    for order_id in given.order_ids:
        saga_id = f"{given.saga_id_prefix}{order_id}"
        state = last_state.get(saga_id)
        if state is None:
            problems.append(f"{saga_id}: no saga in {state_topic} (trigger lost?)")
            continue
        statuses[state.status.value] += 1
        if not state.status.terminal:
            problems.append(f"{saga_id}: not terminal: {state.status.value} {_brief(state)}")
        if order_id in given.declined and state.status is SagaStatus.COMPLETED:
            problems.append(f"{saga_id}: completed although payment was always declined")

    # 2. the state topic equals the fold of the inbox.
    for saga_id, folded in fold.states.items():
        stored = last_state.get(saga_id)
        if stored != folded:
            problems.append(
                f"{saga_id}: {state_topic} has {_brief(stored)} but the inbox folds to"
                f" {_brief(folded)}; inputs: {fold.describe(saga_id)}"
            )
    for saga_id in sorted(set(last_state) - set(fold.states)):
        problems.append(f"{saga_id}: a state record without any inbox record")

    # 3. commands: exactly the fold's, each (key, attempt) once, attempts 1..n.
    catalog = default_catalog()
    seen = [
        catalog.decode_as(RecordType.COMMAND, msg.value()).value
        for topic in command_topics
        for msg in by_topic[topic]
    ]
    problems.extend(_check_commands([(c["idempotency_key"], c["attempt"]) for c in seen], fold))

    # 4. compensations: exactly the right steps, reverse order, after the last DO.
    for saga_id, state in fold.states.items():
        if state is None or saga_id not in saga_ids:
            continue
        problems.extend(
            _check_compensation(
                registry, saga_id, state, fold.effects[saga_id],
                in_doubt=fold.forward_ended_in_doubt.get(saga_id, False),
            )
        )  # fmt: skip

    # 5. the DLQ holds exactly the injected poison; the fold rejects nothing else.
    dlq = Counter(_header(msg, "ksaga.dlq.reason") or "?" for msg in by_topic[dlq_topic])
    injected = Counter(given.poison)
    if dlq != injected:
        problems.append(f"{dlq_topic} holds {dict(dlq)} but {dict(injected)} was injected")
    if fold.rejected - injected:
        problems.append(f"the inbox holds rejected records nobody injected: {dict(fold.rejected)}")

    report = CheckReport(
        passed=not problems,
        sagas=len(saga_ids),
        commands=len(seen),
        inbox_records=len(by_topic[inbox_topic]),
        statuses=statuses,
        problems=problems,
        faults=dict(faults or {}),
    )
    _print(report, out, dlq)
    return report


def _check_commands(seen: list[tuple[str, int]], fold: _Fold) -> list[str]:
    problems = []
    seen_counts = Counter(seen)
    for (ikey, attempt), n in sorted(seen_counts.items()):
        if n > 1:
            problems.append(f"command {ikey} attempt {attempt} emitted {n} times")
    want = Counter((c.idempotency_key, c.attempt) for c in fold.commands)
    for missing in sorted(set(want) - set(seen_counts)):
        problems.append(f"command {missing} decided but missing from the command topics")
    for extra in sorted(set(seen_counts) - set(want)):
        problems.append(f"command {extra} in the command topics but never decided")
    attempts: dict[str, list[int]] = defaultdict(list)
    for ikey, attempt in seen:
        attempts[ikey].append(attempt)
    for ikey, listed in sorted(attempts.items()):
        if listed != list(range(1, len(listed) + 1)):
            problems.append(f"command {ikey}: attempts {listed} do not count 1..n in log order")
    return problems


_GAVE_UP = (SagaStatus.COMPENSATING, SagaStatus.COMPENSATED, SagaStatus.FAILED)


class _Fold:
    """The loop's fold (``inbox.Refold``), with what the checks need recorded per saga."""

    def __init__(self, registry: Registry, partitions: int) -> None:
        self.refold = Refold(registry, partitions)
        self.states = self.refold.states
        self.effects: dict[str, list[SendCommand]] = defaultdict(list)
        self.inputs: dict[str, list[str]] = defaultdict(list)
        self.commands: list[SendCommand] = []
        self.rejected: Counter[str] = Counter()
        self.forward_ended_in_doubt: dict[str, bool] = {}

    def feed(self, msg: Message) -> None:
        partition = msg.partition()
        assert partition is not None
        _kind, now = msg.timestamp()
        folded = self.refold.feed(partition, msg.value(), now)
        if folded.dead_letter is not None:
            self.rejected[folded.dead_letter.reason] += 1
        event = folded.event
        if event is None or folded.decision is None:
            return
        self.inputs[event.saga_id].append(f"{partition}@{msg.offset()}:{_describe(event)}")
        if folded.changed is not None:
            self._record(event.saga_id, folded.before, folded.decision, event)

    def _record(
        self, saga_id: str, before: SagaState | None, decision: Decision, event: Input
    ) -> None:
        assert decision.state is not None
        after = decision.state.status
        if before is not None and before.status is SagaStatus.RUNNING and after in _GAVE_UP:
            # The forward path ended here. A TimerFired means its last attempt timed out; an
            # operator's cancel leaves the step in flight in doubt the same way (rule 11).
            self.forward_ended_in_doubt[saga_id] = isinstance(event, TimerFired | SagaCancelled)
        self.states[saga_id] = decision.state
        for effect in decision.effects:
            if isinstance(effect, SendCommand):
                self.effects[saga_id].append(effect)
                self.commands.append(effect)

    def describe(self, saga_id: str) -> str:
        return "; ".join(self.inputs.get(saga_id, [])[-12:])


def _check_compensation(
    registry: Registry,
    saga_id: str,
    state: SagaState,
    sent: list[SendCommand],
    *,
    in_doubt: bool,
) -> list[str]:
    definition = registry.definition(state.saga_type)
    assert definition is not None
    steps = definition.steps
    undo_steps = list(dict.fromkeys(c.step for c in sent if c.action is Action.UNDO))
    last_do = max((i for i, c in enumerate(sent) if c.action is Action.DO), default=-1)
    first_undo = min((i for i, c in enumerate(sent) if c.action is Action.UNDO), default=len(sent))
    problems = []
    if first_undo < last_do:
        problems.append(f"{saga_id}: a DO was sent after compensation began")
    if state.status is SagaStatus.COMPLETED:
        if undo_steps:
            problems.append(f"{saga_id}: completed but compensated {undo_steps}")
        return problems
    if state.status is not SagaStatus.COMPENSATED:
        return problems
    reverse = [steps[i].name for i in reversed(state.completed)
               if steps[i].kind is StepKind.COMPENSABLE]  # fmt: skip
    failing = len(state.completed)
    undo_failing = in_doubt and failing < len(steps) and steps[failing].kind is StepKind.COMPENSABLE
    expected = [steps[failing].name, *reverse] if undo_failing else reverse
    if undo_steps != expected:
        problems.append(
            f"{saga_id}: compensated {undo_steps}, expected {expected} (completed"
            f" {[steps[i].name for i in state.completed]}, failure {state.failure})"
        )
    return problems


def _partition_count(bootstrap: str, topic: str, client: Mapping[str, Any]) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, **client})
    metadata = admin.list_topics(topic, timeout=30)
    return len(metadata.topics[topic].partitions)


def _header(msg: Message, name: str) -> str | None:
    raw: Any = msg.headers() or []
    found = None
    for key, value in raw:
        if key == name:
            found = bytes(value or b"").decode(errors="replace")
    return found


def _brief(state: SagaState | None) -> str:
    if state is None:
        return "nothing"
    return (
        f"{state.status.value} v{state.version} step={state.step}/{state.action.value}"
        f"#{state.attempt} completed={list(state.completed)} timer={state.timer}"
        f" updated_ms={state.updated_ms}"
    )


def _describe(event: Input) -> str:
    name = type(event).__name__
    step = getattr(event, "step", None)
    attempt = getattr(event, "attempt", None)
    return f"{name}({step}#{attempt})" if step else name


def _print(report: CheckReport, out: TextIO, dlq: Counter[str]) -> None:
    faults = ", ".join(f"{k}={v}" for k, v in sorted(report.faults.items())) or "none"
    statuses = ", ".join(f"{k}={v}" for k, v in sorted(report.statuses.items()))
    print(f"checked: sagas={report.sagas} ({statuses})", file=out)
    print(
        f"checked: inbox records folded={report.inbox_records} commands={report.commands}"
        f" dead letters={sum(dlq.values())} {dict(dlq) if dlq else ''}",
        file=out,
    )
    print(f"faults injected: {faults}", file=out)
    for problem in report.problems[:50]:
        print(f"PROBLEM {problem}", file=out)
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more problems", file=out)
    print(report.verdict(), file=out)
