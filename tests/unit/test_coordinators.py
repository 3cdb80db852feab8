"""Java's String.hashCode, which decides a transactional id's coordinator."""

from __future__ import annotations

from orchestrator.testing.coordinators import java_string_hash, transaction_partition


def test_java_string_hash_matches_known_java_values() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112  # a famous collision
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE
    assert java_string_hash("é") == 233  # one UTF-16 code unit


def test_transaction_partition_uses_kafkas_abs() -> None:
    assert transaction_partition("polygenelubricants", 50) == 0  # abs(MIN_VALUE) is 0 in Kafka
    assert transaction_partition("hello", 50) == 99162322 % 50
    assert 0 <= transaction_partition("ksaga-orchestrator-r1", 10) < 10
