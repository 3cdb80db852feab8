"""Which partition a saga lives in: Kafka's Java default partitioner, computed by ksaga itself.

Saga id ``s`` lives in partition ``murmur2(s) % P`` of both ``ksaga.inbox`` and ``ksaga.state``
(architecture.md section 2). The orchestrator produces its own records with an explicit
partition computed here, so the placement never depends on a client's default partitioner
(librdkafka's is CRC32-based ``consistent_random``; participants must set
``partitioner=murmur2_random`` or reply to the partition named in the command's headers).
This must stay bit-for-bit equal to ``org.apache.kafka.common.utils.Utils.murmur2``; the unit
tests pin Kafka's vectors and an integration test compares it with librdkafka on the broker.
"""

from __future__ import annotations

import functools

__all__ = ["murmur2", "partition_for"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 as a signed 32-bit int (what Java's ``Utils.murmur2`` returns)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@functools.lru_cache(maxsize=16_384)
def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition Java's default partitioner picks for a non-null key.

    Cached: the loop asks for a saga's partition on every record of that saga (routing, then
    each fold's ownership check), and murmur2 in Python costs microseconds per key. The cache
    holds the most recently used keys only, so its memory is bounded.
    """
    if partitions <= 0:
        raise ValueError("partition count must be positive")
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions
