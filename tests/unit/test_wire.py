"""Core values survive the trip through the Avro envelopes exactly."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import (
    Action,
    SagaCancelled,
    SagaDefinition,
    SagaResumed,
    SagaTriggered,
    SendCommand,
    StepFailed,
    StepKind,
    StepSucceeded,
    TimerFired,
)
from orchestrator.errors import DecodeError
from orchestrator.wire import (
    decode_input,
    decode_state,
    encode_command,
    encode_signal,
    encode_state,
    state_to_record,
)
from schemas import avsc
from schemas.codec import RecordType, SchemaCatalog, default_catalog
from tests.unit.machine_driver import Run, definitions, make_step

names = st.text(min_size=1, max_size=20)


MOVES = ["ok", "fail", "retry", "t", "resume", "cancel"]


@given(definition=definitions(), script=st.lists(st.sampled_from(MOVES)))
@settings(max_examples=500, deadline=None)
def test_every_state_a_fold_reaches_round_trips_through_avro(
    definition: SagaDefinition, script: list[str]
) -> None:
    run = Run(definition)
    run.start()
    for move in script:
        s = run.state
        assert s is not None
        assert decode_state(encode_state(s)) == s
        if move == "resume":  # after a resume, first_attempt > 1
            run.feed(SagaResumed(s.saga_id, "ops", "fixed"))
            continue
        if move == "cancel":
            run.feed(SagaCancelled(s.saga_id, "ops", "stop"))
            continue
        if s.status.terminal or s.timer is None:
            break
        name = definition.steps[s.step].name
        if move == "t" or s.timer.kind.name == "BACKOFF":
            run.feed(TimerFired(s.saga_id, s.timer.token), now=s.timer.due_ms)
        elif move == "ok":
            run.feed(StepSucceeded(s.saga_id, name, s.action, s.attempt, b"{}"))
        else:
            run.feed(StepFailed(s.saga_id, name, s.action, s.attempt, "E", "m", move == "retry"))
    assert run.state is not None
    assert decode_state(encode_state(run.state)) == run.state


def reply(outcome: str, **extra: object) -> bytes:
    value = {
        "saga_id": "order/1",
        "step": "charge_payment",
        "action": "UNDO",
        "attempt": 3,
        "outcome": outcome,
        "payload": b'{"x":1}',
        "replied_ms": 5,
        **extra,
    }
    return default_catalog().encode(RecordType.REPLY, value)


def test_inbox_records_become_inputs() -> None:
    assert decode_input(reply("SUCCEEDED")) == StepSucceeded(
        "order/1", "charge_payment", Action.UNDO, 3, b'{"x":1}'
    )
    assert decode_input(
        reply("FAILED_RETRYABLE", error_type="GatewayDown", message="later")
    ) == StepFailed("order/1", "charge_payment", Action.UNDO, 3, "GatewayDown", "later", True)
    assert decode_input(reply("FAILED")) == StepFailed(
        "order/1", "charge_payment", Action.UNDO, 3, "UnspecifiedError", "", False
    )
    start = default_catalog().encode(
        RecordType.START_SAGA,
        {
            "saga_id": "order/1",
            "saga_type": "order",
            "data": b"{}",
            "trigger_topic": "orders",
            "trigger_partition": 0,
            "trigger_offset": 9,
            "triggered_ms": 1,
        },
    )
    assert decode_input(start) == SagaTriggered("order/1", "order", b"{}")
    timer = default_catalog().encode(
        RecordType.TIMER_FIRED, {"saga_id": "order/1", "token": "tok", "due_ms": 3}
    )
    assert decode_input(timer) == TimerFired("order/1", "tok")


def test_a_record_that_is_not_an_input_is_a_decode_error() -> None:
    command = SendCommand("s", "t", "st", Action.DO, 1, "s|st|DO", "topic", "Do", b"{}")
    data = encode_command(command, reply_topic="ksaga.inbox", reply_partition=4, sent_ms=0)
    with pytest.raises(DecodeError) as info:
        decode_input(data)
    assert info.value.reason == "not-an-input"
    with pytest.raises(DecodeError):
        decode_input(b"\x00garbage")


def test_operator_signals_become_resume_and_cancel_inputs() -> None:
    for signal in (
        SagaResumed("order/1", "alice", "inventory fixed"),
        SagaCancelled("order/1", "bob", ""),
    ):
        data = encode_signal(signal, requested_ms=7)
        assert data[:10] == default_catalog().current(RecordType.SIGNAL).header
        assert decode_input(data) == signal


def test_a_state_written_before_resume_existed_reads_with_its_first_budget() -> None:
    """SagaState records of the previous release (no ``first_attempt``) stay readable."""
    old_schema = avsc.read_history()["SagaState.3ebac04a3293ab63.avsc"]
    run = Run(SagaDefinition("t", (make_step("s0", StepKind.COMPENSABLE),)))
    run.start()
    state = run.state
    assert state is not None
    assert state.timer is not None
    state = run.feed(TimerFired(state.saga_id, state.timer.token), now=state.timer.due_ms).state
    assert state is not None
    assert state.attempt == 2  # in backoff before attempt 2: the budget began at 1
    old_value = {k: v for k, v in state_to_record(state).items() if k != "first_attempt"}
    old_bytes = SchemaCatalog([old_schema]).encode("SagaState", old_value)
    assert decode_state(old_bytes) == dataclasses.replace(state, first_attempt=1)
