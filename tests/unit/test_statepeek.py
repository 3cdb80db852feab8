"""``state_timer`` reads the same timer as a full decode, and falls back whenever it must."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.bench.statefill import final_state
from orchestrator.core import (
    SagaDefinition,
    StepFailed,
    StepKind,
    StepSucceeded,
    Timer,
    TimerFired,
    TimerKind,
)
from orchestrator.errors import DecodeError
from orchestrator.statepeek import _layout, state_timer
from orchestrator.wire import decode_state, encode_state, state_to_record
from schemas import avsc
from schemas.codec import RecordType, SchemaCatalog, default_catalog
from tests.unit.machine_driver import Run, definitions, make_step

BASE_MS = 1_767_225_600_000


@given(definition=definitions(), moves=st.lists(st.sampled_from(["ok", "fail", "t"])))
@settings(max_examples=300, deadline=None)
def test_the_timer_of_every_state_a_fold_reaches_equals_the_full_decode(
    definition: SagaDefinition, moves: list[str]
) -> None:
    run = Run(definition)
    run.start()
    for move in moves:
        state = run.state
        assert state is not None
        assert state_timer(encode_state(state)) == state.timer
        if state.status.terminal or state.timer is None:
            break
        name = definition.steps[state.step].name
        if move == "t" or state.timer.kind is TimerKind.BACKOFF:
            run.feed(TimerFired(state.saga_id, state.timer.token), now=state.timer.due_ms)
        elif move == "ok":
            run.feed(StepSucceeded(state.saga_id, name, state.action, state.attempt, b"{}"))
        else:
            run.feed(StepFailed(state.saga_id, name, state.action, state.attempt, "E", "m", True))
    assert run.state is not None
    assert state_timer(encode_state(run.state)) == run.state.timer


@given(
    token=st.text(max_size=300),
    due_ms=st.integers(0, 2**63 - 1),
    kind=st.sampled_from(TimerKind),
    saga_id=st.text(min_size=1, max_size=200),
    data=st.binary(max_size=400),
    numbers=st.tuples(*[st.integers(0, 2**31 - 1)] * 3),
)
@settings(max_examples=300, deadline=None)
def test_long_fields_and_multi_byte_varints_read_right(
    *,
    token: str,
    due_ms: int,
    kind: TimerKind,
    saga_id: str,
    data: bytes,
    numbers: tuple[int, int, int],
) -> None:
    step, attempt, version = numbers
    state = dataclasses.replace(
        final_state(0, BASE_MS), saga_id=saga_id, data=data, step=step, attempt=attempt,
        version=version, timer=Timer(token, due_ms, kind),
    )  # fmt: skip
    assert state_timer(encode_state(state)) == state.timer
    assert state_timer(encode_state(dataclasses.replace(state, timer=None))) is None


def test_every_bench_state_kind() -> None:
    for i in range(40):
        data = encode_state(final_state(i, BASE_MS))
        assert state_timer(data) == decode_state(data).timer


def test_bytes_of_an_older_writer_schema_are_decoded_fully() -> None:
    old_schema = avsc.read_history()["SagaState.3ebac04a3293ab63.avsc"]
    run = Run(SagaDefinition("t", (make_step("s0", StepKind.COMPENSABLE),)))
    run.start()
    state = run.state
    assert state is not None
    assert state.timer is not None
    old_value = {k: v for k, v in state_to_record(state).items() if k != "first_attempt"}
    old_bytes = SchemaCatalog([old_schema]).encode("SagaState", old_value)
    assert old_bytes[:10] != default_catalog().current(RecordType.SAGA_STATE).header
    assert state_timer(old_bytes) == state.timer


def test_a_cut_record_raises_the_codecs_error_or_reads_the_true_timer() -> None:
    """The fast path never reads a wrong timer from a short record: a cut before the end of
    the timer is an unreadable record (the full decode's DecodeError), a cut after it is not
    looked at here (the full decode of a read reports it)."""
    state = final_state(0, BASE_MS)
    assert state.timer is not None
    data = encode_state(state)
    outcomes = set()
    for cut in range(len(data)):
        try:
            got = state_timer(data[:cut])
        except DecodeError:
            outcomes.add("error")
            continue
        assert got == state.timer, cut
        outcomes.add("timer")
    assert outcomes == {"error", "timer"}


def _catalog_with(fields: list[dict[str, Any]]) -> SchemaCatalog:
    schema = copy.deepcopy(dict(default_catalog().current(RecordType.SAGA_STATE).schema))
    schema["fields"] = fields
    return SchemaCatalog([schema])


def test_the_layout_follows_the_schema_and_is_off_when_it_cannot_skip() -> None:
    current = default_catalog().current(RecordType.SAGA_STATE).schema["fields"]
    timer_at = [f["name"] for f in current].index("timer")
    state = final_state(1, BASE_MS)
    assert state.timer is not None
    record = state_to_record(state)

    # A string field more before the timer: still the fast path, one skip more.
    note = {"name": "note", "type": "string", "default": ""}
    longer = _catalog_with([*current[:timer_at], note, *current[timer_at:]])
    layout = _layout(longer)
    assert layout is not None
    assert len(layout.skips) == timer_at + 1
    data = longer.encode("SagaState", {**record, "note": "x" * 200})
    assert state_timer(data, longer) == state.timer

    # An array before the timer: no layout, every call decodes fully (and is still right).
    fields = [f for f in current if f["name"] != "completed"]
    completed = next(f for f in current if f["name"] == "completed")
    arrays_first = _catalog_with([completed, *fields])
    assert _layout(arrays_first) is None
    assert state_timer(arrays_first.encode("SagaState", record), arrays_first) == state.timer


@pytest.mark.parametrize("damage", ["bad-marker", "unknown-schema", "union-branch"])
def test_unreadable_bytes_raise_decode_error(damage: str) -> None:
    data = bytearray(encode_state(final_state(0, BASE_MS)))
    if damage == "bad-marker":
        data[0] = 0
    elif damage == "unknown-schema":
        data[5] ^= 0xFF
    else:  # the union index of the timer: 3 is neither null (0) nor Timer (2)
        data[_timer_union_offset(bytes(data))] = 3
    with pytest.raises(DecodeError):
        state_timer(bytes(data))


def _timer_union_offset(data: bytes) -> int:
    layout = _layout(default_catalog())
    assert layout is not None
    header, skips, _kinds = layout
    pos = len(header)
    for length_prefixed in skips:
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if length_prefixed:
            pos += value >> 1
    return pos
