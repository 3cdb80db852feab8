"""CPU per saga of the loop's Python path (fold, records, store), for profiling: not a benchmark.

``ksaga bench`` is the measurement (real broker, checked run). On a 2-core machine shared with a
broker and participants its CPU figures move with everything else that runs, so comparing two
versions of the fold path needs something steadier: this drives the loop's own ``_fold``,
``_emit`` and ``_apply`` (real registry, real RocksDB store, real encoders, a real
confluent-kafka ``Producer`` whose broker does not exist, so ``produce`` only queues and each
batch's queue is purged) over N order sagas in batches of 500, feeding each command back as the
reply the example participants would send (10 % of payments declined), and prints the process
CPU per saga. The replies' encoding is part of the figure (about 15 % of it).

    python bench/foldbench.py [N] [--profile]     # --profile: cProfile's top 35 (slows fastavro)
    py-spy record -f raw -o out.txt -- python bench/foldbench.py 6000
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from orchestrator.app import open_store
from orchestrator.config import load_settings
from orchestrator.heap import settle_heap
from orchestrator.logs import RecordContext, configure_logging
from orchestrator.loop import Orchestrator, _Batch
from orchestrator.metrics import Metrics
from orchestrator.partitioning import partition_for
from orchestrator.records import OutRecord, Source, start_out
from orchestrator.registry import load_registry
from schemas.codec import RecordType, default_catalog

PARTITIONS = 4
BATCH = 500
PAYLOADS = {
    "ReserveStock": b'{"reservation_id":"r-1"}',
    "ChargePayment": b'{"payment_id":"p-1"}',
    "ShipOrder": b'{"tracking_number":"t-1"}',
}
ORDER = {
    "order_id": "x",
    "customer_id": "c",
    "items": [{"sku": "a", "quantity": 1}],
    "amount_cents": 100,
    "address": "here",
}


class _Message:
    """What ``_fold`` reads of a consumed record."""

    __slots__ = ("_ts", "_value")

    def __init__(self, value: bytes, ts: int) -> None:
        self._value, self._ts = value, ts

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


class FoldBench:
    def __init__(self) -> None:
        settings = load_settings(
            bootstrap_servers="127.0.0.1:1", state_dir=Path(tempfile.mkdtemp()) / "store"
        )
        self.inbox = settings.topics.inbox
        self.producer = Producer(
            {
                "bootstrap.servers": "127.0.0.1:1",
                "log_level": 0,
                "queue.buffering.max.messages": 2_000_000,
                "queue.buffering.max.kbytes": 4_000_000,
                "linger.ms": 100_000,
            }
        )
        self.loop = Orchestrator(
            settings=settings, registry=load_registry("sagas"),
            store=open_store(settings, PARTITIONS), consumer=None,  # type: ignore[arg-type]
            producer=self.producer, restore_consumer=None,  # type: ignore[arg-type]
            admin=None, partitions=PARTITIONS, metrics=Metrics(),  # type: ignore[arg-type]
        )  # fmt: skip
        self.commands: list[OutRecord] = []
        produce = self.loop._produce
        command_topics = load_registry("sagas").command_topics

        def capture(record: OutRecord, *, checkpoint: bool = False) -> None:
            if record.topic in command_topics:
                self.commands.append(record)
            produce(record, checkpoint=checkpoint)

        self.loop._produce = capture  # type: ignore[method-assign]
        self.catalog = default_catalog()

    def reply(self, command: OutRecord) -> tuple[bytes, int]:
        value: dict[str, Any] = self.catalog.decode(command.value).value
        ok = not (value["command_type"] == "ChargePayment" and value["saga_id"].endswith("0"))
        body = {
            "saga_id": value["saga_id"], "step": value["step"], "action": value["action"],
            "attempt": value["attempt"], "outcome": "SUCCEEDED" if ok else "FAILED",
            "payload": PAYLOADS.get(value["command_type"], b"{}") if ok else b"",
            "error_type": None if ok else "CardDeclined", "message": None if ok else "declined",
            "replied_ms": 1,
        }  # fmt: skip
        partition = partition_for(value["saga_id"], PARTITIONS)
        return self.catalog.encode(RecordType.REPLY, body), partition

    def run(self, sagas: int, first: int) -> tuple[float, int]:
        pending: list[tuple[bytes, int]] = []
        for i in range(first, first + sagas):
            saga_id = f"order/{i:07d}"
            partition = partition_for(saga_id, PARTITIONS)
            data = json.dumps({**ORDER, "order_id": str(i)}).encode()
            start = start_out(
                self.inbox, partition, saga_id=saga_id, saga_type="order", data=data,
                source=Source("orders", 0, i), at_ms=1000,
            )  # fmt: skip
            assert start.value is not None
            pending.append((start.value, partition))
        offset = folds = 0
        began = time.process_time()
        while pending:
            replies: list[tuple[bytes, int]] = []
            for at in range(0, len(pending), BATCH):
                batch = _Batch()
                self.commands.clear()
                for value, partition in pending[at : at + BATCH]:
                    offset += 1
                    source = Source(self.inbox, partition, offset)
                    context = RecordContext(self.inbox, partition, offset)
                    message = _Message(value, 1000 + offset)
                    self.loop._fold(message, batch, source, context)  # type: ignore[arg-type]
                    folds += 1
                replies.extend(self.reply(command) for command in self.commands)
                self.loop._apply(batch)
                self.producer.purge(in_queue=True, in_flight=False)
            pending = replies
        return time.process_time() - began, folds


def main(argv: list[str]) -> None:
    sagas = int(argv[0]) if argv and argv[0].isdigit() else 4000
    configure_logging("WARNING")  # a replica logs one INFO line per finished saga; none here
    bench = FoldBench()
    bench.run(300, 10_000_000)  # warm-up: imports, caches, the store's first files
    settle_heap()  # as run_replica does
    if "--profile" in argv:
        profile = cProfile.Profile()
        profile.enable()
        cpu, folds = bench.run(sagas, 0)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(35)
    else:
        cpu, folds = bench.run(sagas, 0)
    print(
        f"sagas={sagas} folds={folds} cpu={cpu:.2f}s {cpu / sagas * 1e6:.0f} us/saga"
        f" {cpu / folds * 1e6:.0f} us/fold (replies' encoding included)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
