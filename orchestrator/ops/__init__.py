"""The operator's tools behind ``ksaga state``, ``ksaga dlq``, ``ksaga saga`` and ``ksaga replay``.

One module per job: ``control`` (an operator's resume or cancel request, written to the
inbox), ``rebuild`` (a replica's store from ``ksaga.state``), ``dlq`` (list, show and
redrive dead letters), ``inspect`` (sagas and their history), ``replay`` (re-fold the inbox with
the current code and compare with the log), ``rewind`` (``--reset-group``: move the orchestrator
group back for a real reprocessing), on top of ``reader`` (bounded read_committed scans),
``params`` (the operator's spellings of positions, times and durations), ``render`` and
``views`` (rich tables or JSON). None writes ``ksaga.state``; the only writes are a redrive's
one transaction, a rewind's offset reset and control's one inbox record.
"""
