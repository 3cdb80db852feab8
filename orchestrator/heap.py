"""The cyclic garbage collector, set for a long-running loop that allocates short-lived objects.

A profile of ``ksaga bench`` (py-spy, native frames) put ``gc_collect_main`` at about 18 % of
the loop thread's time: every fold allocates inputs, decisions, states and records that die by
reference counting within the batch, yet each 700 net allocations start a young collection,
and the older generations are walked over and over although they hold only what the start-up
imported (click, pydantic's schemas, confluent-kafka, rich). So, once everything is loaded:
collect, then freeze the survivors into the permanent generation (never scanned again, as
Instagram's ``gc.freeze`` note describes), and make young collections rarer. Reference counting
still frees almost everything at once; the collector only has to find cycles, and a batch makes
few. Memory stays bounded: a cycle waits at most ``YOUNG_THRESHOLD`` net allocations longer.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 50_000
"""Net allocations between young collections (CPython's default is 700)."""


def settle_heap() -> None:
    """Freeze what is alive now and space out young collections: at start, and again after a
    rejoin, whose discarded loop and clients were frozen with the rest and must be freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
