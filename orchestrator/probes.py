"""HTTP endpoints of a replica: ``/ready`` (all owned partitions restored, with restore progress),
``/live`` (the loop's heartbeat is recent) and ``/metrics`` (Prometheus). Off unless a port is set.

The heartbeat moves when a turn of the loop begins and whenever a restore reads further, so
``/live`` fails only when the loop is stuck (a hung call, a deadlock), not while it restores a
large partition; ``stale_after_s`` (``KSAGA_LIVENESS_TIMEOUT_S``) must exceed the longest call a
turn may legitimately block in, which ``config`` checks at start.

A daemon thread with the standard library's server: it only reads the loop's counters and sets,
never touches Kafka or RocksDB, so a slow scrape cannot stall the loop.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest

from orchestrator import clock

__all__ = ["Probed", "start_probe_server"]


class Probed(Protocol):
    """What the probes read from the loop."""

    @property
    def heartbeat(self) -> float: ...

    @property
    def assigned(self) -> set[tuple[str, int]]: ...

    @property
    def pending_restore(self) -> set[int]: ...

    @property
    def active(self) -> set[int]: ...

    @property
    def ready(self) -> bool: ...


def start_probe_server(
    port: int, loop: Probed, registry: CollectorRegistry, *, stale_after_s: float
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), "text/plain; version=0.0.4")
            elif self.path == "/ready":
                body = {
                    "ready": loop.ready,
                    "restored_partitions": sorted(loop.active),
                    "restoring_partitions": sorted(loop.pending_restore),
                    "assigned": sorted(f"{t}[{p}]" for t, p in loop.assigned),
                }
                self._send(200 if loop.ready else 503, json.dumps(body).encode())
            elif self.path == "/live":
                age = clock.monotonic() - loop.heartbeat
                ok = age < stale_after_s
                self._send(200 if ok else 503, json.dumps({"loop_age_s": round(age, 3)}).encode())
            else:
                self._send(404, b'{"error": "not found"}')

        def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes are not news

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="ksaga-probes", daemon=True).start()
    return server
