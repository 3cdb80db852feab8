"""Saga placement equals Kafka's Java default partitioner, bit for bit."""

from __future__ import annotations

import pytest

from orchestrator.partitioning import murmur2, partition_for


@pytest.mark.parametrize(
    ("key", "expected"),
    # Kafka's own murmur2 values (as pinned by Akka's Murmur2Spec against Utils.murmur2).
    [("1", -1993445489), ("12", 126087238), ("123", -267702483), ("1234", -1614185708),
     ("12345", -1188365604)],
)  # fmt: skip
def test_murmur2_matches_kafkas_java_implementation(key: str, expected: int) -> None:
    assert murmur2(key.encode()) == expected


def test_partition_is_the_positive_hash_modulo_the_count() -> None:
    assert partition_for("1", 7) == (-1993445489 & 0x7FFFFFFF) % 7
    assert partition_for(b"12345", 32) == partition_for("12345", 32)
    assert all(0 <= partition_for(f"order/{i}", 5) < 5 for i in range(1_000))
    with pytest.raises(ValueError, match="positive"):
        partition_for("x", 0)
