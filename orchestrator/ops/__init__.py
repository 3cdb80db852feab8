"""The operator's tools behind ``ksaga state``, ``ksaga dlq``, ``ksaga saga`` and ``ksaga replay``.

One module per job: ``rebuild`` (a replica's store from ``ksaga.state``), ``dlq`` (list, show and
redrive dead letters), ``inspect`` (sagas and their history), ``replay`` (re-fold the inbox
against the current code; optionally rewind the orchestrator group), on top of ``reader`` (bounded
read_committed scans of ksaga's topics), ``params`` (the operator's spellings of positions, times
and durations) and ``render`` (rich tables or JSON). They read the topics and never write the
state topic; the only writes are redrive's one transaction and replay's offset reset.
"""
