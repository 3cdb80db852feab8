"""The participant's durable memory: idempotency key -> the final outcome it already answered.

Its one job is to remember final outcomes (a success with its reply payload, or a non-retryable
failure) in a local RocksDB, so a command delivered again (a retry after a timeout, a redelivery
after a crash) is answered from here instead of running the handler twice. It never stores a
retryable failure or a silence (the next attempt must run the handler again) and never talks to
Kafka.

Every ``put`` is a synced write (``WriteOptions.sync``): when it returns, the outcome survives a
crash of the process *and* of the machine, which is what lets the participant produce the reply
only afterwards. Values are small JSON documents (``v`` is a format version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

__all__ = ["FinalOutcome", "OutcomeKind", "OutcomeStore"]

_FORMAT = 1


class OutcomeKind(StrEnum):
    """A final outcome; the values are the Avro ``Outcome`` symbols of the reply."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class FinalOutcome:
    """What the handler concluded for one idempotency key: re-sent as is on every later attempt."""

    kind: OutcomeKind
    payload: bytes = b"{}"  # UTF-8 JSON of the reply model (b"{}" when the handler returned None)
    error_type: str | None = None
    message: str | None = None
    stored_ms: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "v": _FORMAT,
                "kind": self.kind.value,
                "payload": self.payload.decode("utf-8"),
                "error_type": self.error_type,
                "message": self.message,
                "stored_ms": self.stored_ms,
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> FinalOutcome:
        doc: dict[str, Any] = json.loads(data)
        if doc.get("v") != _FORMAT:
            raise ValueError(f"unknown outcome format {doc.get('v')!r}")
        return cls(
            kind=OutcomeKind(doc["kind"]),
            payload=str(doc["payload"]).encode("utf-8"),
            error_type=doc["error_type"],
            message=doc["message"],
            stored_ms=int(doc["stored_ms"]),
        )


class OutcomeStore:
    """Final outcomes by idempotency key in a RocksDB at ``path`` (created if missing).

    One process at a time: RocksDB locks the directory, so a second store on the same path
    fails at open (two participants must not share a state directory).
    """

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db: Any = Rdict(str(path), Options(raw_mode=True))
        self._write: Any = WriteOptions()
        self._write.sync = sync
        self._pending: dict[bytes, bytes] = {}

    def get(self, key: str) -> FinalOutcome | None:
        raw = self._pending.get(key.encode("utf-8")) or self._db.get(key.encode("utf-8"))
        return None if raw is None else FinalOutcome.from_bytes(bytes(raw))

    def put(self, key: str, outcome: FinalOutcome) -> None:
        """Stage ``outcome``: visible to ``get`` at once, durable after the next ``flush``."""
        self._pending[key.encode("utf-8")] = outcome.to_bytes()

    def flush(self) -> None:
        """Make every staged outcome durable in one synced, atomic WriteBatch.

        One fsync per batch of commands instead of one per command: the participant flushes
        before it produces the batch's replies, so no reply ever depends on an unsynced outcome.
        """
        if not self._pending:
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in self._pending.items():
            batch.put(key, value)
        self._db.write(batch, self._write)
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()
