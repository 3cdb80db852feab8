"""Every librdkafka error class maps to exactly one loop outcome (exactly-once.md's table)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from orchestrator.kafka import ErrorClass, classify


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"fatal": True}, ErrorClass.FATAL),
        ({"fatal": True, "retriable": True, "txn_requires_abort": True}, ErrorClass.FATAL),
        ({"txn_requires_abort": True}, ErrorClass.ABORT),
        ({"txn_requires_abort": True, "retriable": True}, ErrorClass.ABORT),
        ({"retriable": True}, ErrorClass.RETRIABLE),
        ({}, ErrorClass.FATAL),  # no flag: the transactional state is unknown
    ],
)
def test_flags_decide_the_class_fatal_first(flags: dict[str, bool], expected: ErrorClass) -> None:
    error = KafkaError(KafkaError._TIMED_OUT, "x", **flags)
    assert classify(error) is expected
    assert classify(KafkaException(error)) is expected


def test_fenced_and_rebalance_errors_map_as_the_design_says() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced by newer producer instance", fatal=True)
    assert classify(KafkaException(fenced)) is ErrorClass.FATAL
    rebalance = KafkaError(KafkaError.ILLEGAL_GENERATION, "gen", txn_requires_abort=True)
    assert classify(KafkaException(rebalance)) is ErrorClass.ABORT
    assert classify(KafkaException("not a KafkaError")) is ErrorClass.FATAL
