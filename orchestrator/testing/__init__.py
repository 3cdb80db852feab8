"""Test and demo support that needs real infrastructure: local Apache Kafka KRaft brokers.

Nothing here is imported by the runtime; tests, the demo and the CLI import it explicitly.
"""
