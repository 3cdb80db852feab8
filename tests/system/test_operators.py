"""Operators on the real broker: ``ksaga saga cancel`` and ``ksaga saga resume`` as real commands.

The orchestrator and the example participants run as processes; the commands are run the way an
operator runs them (``python -m orchestrator saga ...``). Outcomes are read from the topics
(read_committed), and the test ends with the log checker's verdict: the operator's records are
inbox records, re-folded by the checker like every other input.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest

from connectors.order_participants import Behaviour
from orchestrator.core import SagaState
from orchestrator.partitioning import partition_for
from orchestrator.testing.checker import read_to_end
from orchestrator.testing.kafka_cluster import wait_for
from orchestrator.wire import decode_state
from tests.system.conftest import PARTITIONS, System
from tests.system.test_orchestrator import free_port

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def pick(prefix: str, wanted: Callable[[str], bool]) -> str:
    """The first order id with the wanted (deterministic, seeded) misbehaviour."""
    return next(o for o in (f"{prefix}-{i:05d}" for i in range(10_000)) if wanted(o))


def ksaga(system: System, *args: str) -> str:
    """Run the ``ksaga`` CLI as an operator would; it must succeed. Returns its output."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--bootstrap", system.bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"ksaga {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def final_states(system: System) -> dict[str, SagaState]:
    states = {}
    for msg in read_to_end(system.bootstrap, ["ksaga.state"]):
        key, value = msg.key(), msg.value()
        if key is not None and value is not None:
            states[key.decode()] = decode_state(value)
    return states


def ignored(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("ksaga_inputs_ignored_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return counts


def attempts(system: System, saga_id: str, step: str, action: str) -> list[int]:
    return [
        c.attempt
        for c in system.watch().commands
        if (c.saga_id, c.step, c.action) == (saga_id, step, action)
    ]


def test_operators_cancel_a_running_saga_and_resume_failed_ones_after_the_fix(
    system_factory: Callable[[Behaviour], System],
) -> None:
    """One broker for both commands (a FAILED saga takes ~30 s of timeouts to park; the cancel
    runs meanwhile). Four orders, each with its own seeded misbehaviour:

    * ``hung``: payments never answers its charge; the operator cancels it while charging;
    * ``fine``: completes; a cancel and a resume of it are refused (counted, nothing else);
    * ``parked``: declined, and its stock release keeps failing: FAILED after 10 attempts;
    * ``in_doubt``: shipping (the pivot) never answers: FAILED after 3 timeouts.

    Then the operator fixes the participants and resumes the two FAILED sagas.
    """
    faulty = Behaviour(
        seed=31, decline_rate=0.5, hung_rate=0.3, undo_failing_rate=0.5, shipping_lost_rate=0.5
    )
    b = faulty
    hung = pick("ops", lambda o: b.hung(o) and not b.undo_fails(o))
    fine = pick("ops", lambda o: not (b.hung(o) or b.declines(o) or b.shipping_lost(o)))
    parked = pick("ops", lambda o: not b.hung(o) and b.declines(o) and b.undo_fails(o))
    in_doubt = pick("ops", lambda o: not (b.hung(o) or b.declines(o)) and b.shipping_lost(o))
    stuck, done = f"order/{hung}", f"order/{fine}"
    compensation, pivot = f"order/{parked}", f"order/{in_doubt}"

    system = system_factory(faulty)
    port = free_port()
    system.replica("r1", http_port=port)
    participants = system.start_participants(name="participants")
    system.publish([hung, fine, parked, in_doubt])
    observer = system.watch()

    # --- cancel: while the hung saga waits on its charge (5 s timeout, 3 attempts).
    wait_for(
        lambda: (
            observer.poll() >= 0
            and attempts(system, stuck, "charge_payment", "DO") == [1]
            and observer.status.get(done) == "COMPLETED"
        ),
        60,
        "the hung saga charging, the fine one completed",
    )
    out = ksaga(system, "saga", "cancel", stuck, "--reason", "customer called", "--by", "ops")
    home = partition_for(stuck, PARTITIONS)
    assert f"CANCEL of {stuck} written to ksaga.inbox partition {home} offset " in out
    ksaga(system, "saga", "cancel", done, "--reason", "too late")  # COMPLETED: refused
    ksaga(system, "saga", "resume", done)  # not FAILED: ignored
    ksaga(system, "saga", "cancel", "order/nobody")  # no such saga: dead-lettered

    # --- the two others park as FAILED on their own.
    wait_for(
        lambda: (
            observer.poll() >= 0
            and observer.status.get(stuck) == "COMPENSATED"
            and observer.status.get(compensation) == "FAILED"
            and observer.status.get(pivot) == "FAILED"
        ),
        120,
        "the cancelled saga compensated, the two others parked as FAILED",
    )
    # The charge in flight was in doubt: refunded first, then the stock released.
    assert observer.undo_order(stuck) == ["charge_payment", "reserve_stock"]
    assert observer.undo_order(done) == []
    state = final_states(system)[stuck]
    assert state.failure is not None
    assert (state.failure.error_type, state.failure.message) == (
        "Cancelled",
        "cancelled by ops: customer called",
    )
    assert attempts(system, compensation, "reserve_stock", "UNDO") == list(range(1, 11))
    assert attempts(system, pivot, "ship_order", "DO") == [1, 2, 3]

    # --- resume: the operator fixes the services (same de-duplication store), then resumes.
    participants.terminate(30)
    system.start_participants(Behaviour(seed=31, decline_rate=0.5), name="participants")
    for saga_id in (compensation, pivot):
        out = ksaga(system, "saga", "resume", saga_id, "--reason", "services fixed")
        assert f"RESUME of {saga_id} written to ksaga.inbox" in out
    wait_for(
        lambda: (
            observer.poll() >= 0
            and observer.status.get(compensation) == "COMPENSATED"
            and observer.status.get(pivot) == "COMPLETED"
        ),
        60,
        "the resumed sagas to finish",
    )
    outcomes = {k: observer.status[k] for k in (stuck, done, compensation, pivot)}
    assert outcomes == {
        stuck: "COMPENSATED",
        done: "COMPLETED",
        compensation: "COMPENSATED",
        pivot: "COMPLETED",
    }
    # The next attempt under the same idempotency key, with a fresh budget: nothing twice.
    assert attempts(system, compensation, "reserve_stock", "UNDO") == list(range(1, 12))
    assert observer.undo_order(compensation) == ["reserve_stock"]
    assert attempts(system, pivot, "ship_order", "DO") == [1, 2, 3, 4]
    assert observer.undo_order(pivot) == []
    assert observer.duplicate_commands() == []
    assert observer.attempt_gaps() == []

    # --- the refusals were folded and counted; the unknown saga's cancel dead-lettered.
    def refusals() -> tuple[float, float] | None:
        counts = ignored(port)
        both = (counts.get("not-cancellable", 0.0), counts.get("not-resumable", 0.0))
        return both if all(both) else None

    assert wait_for(refusals, 30, "the refused cancel and resume counted") == (1, 1)
    wait_for(
        lambda: observer.poll() >= 0 and len(observer.dead_letters) == 1, 30, "the dead letter"
    )
    assert observer.dead_letters[0]["ksaga.dlq.reason"] == "unknown-saga"
    assert observer.dead_letters[0]["ksaga.dlq.source_topic"] == "ksaga.inbox"
    system.assert_log_checks(poison={"unknown-saga": 1})
