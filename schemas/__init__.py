"""ksaga's wire formats: Avro envelopes, their codec, and the Kafka header names.

* ``schemas/avro/*.avsc`` — the envelope schemas (namespace ``io.ksaga.v1``) and the named
  types they share; ``schemas/avro/history/`` — every writer schema ever released, frozen.
* :mod:`schemas.codec` — Avro single-object encoding: ``default_catalog().encode/decode``.
* :mod:`schemas.headers`, :mod:`schemas.deadletter` — header names and dead-letter headers.
* ``python -m schemas`` — the fingerprints, for participants written in other languages.

This package never imports Kafka or RocksDB clients (an import-linter contract): a participant
in any process can use it. Payloads inside the envelopes are opaque UTF-8 JSON bytes.
"""
