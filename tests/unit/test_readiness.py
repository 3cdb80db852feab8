"""Reading a replica's /ready probe: both answers, and silence, from a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orchestrator.testing.kafka_cluster import free_ports
from orchestrator.testing.readiness import assigned_partitions, read_ready

NOT_READY = (503, {"assigned": ["ksaga.inbox[2]"], "restoring_partitions": [2]})
READY = (200, {"assigned": ["ksaga.inbox[2]"], "restoring_partitions": []})


class _Probe(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, Any]]]  # one per request, in order

    def do_GET(self) -> None:
        status, body = self.answers.pop(0) if self.path == "/ready" else (404, {})
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def probe_port() -> Iterator[int]:
    handler = type("Probe", (_Probe,), {"answers": [NOT_READY, READY]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_both_answers_keep_their_status_and_body(probe_port: int) -> None:
    assert read_ready(probe_port) == NOT_READY
    assert read_ready(probe_port) == READY


def test_nothing_listening_is_none() -> None:
    (port,) = free_ports(1)
    assert read_ready(port) is None


def test_assigned_partitions_of_one_topic() -> None:
    assigned = ["ksaga.inbox[3]", "ksaga.inbox.retry[1]", "ksaga.inbox[0]", "other[5]"]
    assert assigned_partitions(assigned, "ksaga.inbox") == [0, 3]
