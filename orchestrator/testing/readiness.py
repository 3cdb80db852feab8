"""A replica's readiness probe as the kubelet reads it: ``GET /ready`` on its probe port.

Its one job: one answer per call, the HTTP status with the JSON body the replica sent (503
bodies included: they carry the restore progress), or None while nothing answers. What it never
does: wait or retry (the callers decide how long a pod may take), or judge the answer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

__all__ = ["assigned_partitions", "read_ready"]


def read_ready(port: int) -> tuple[int, dict[str, Any]] | None:
    """(status, body) of ``/ready`` on 127.0.0.1:``port``; None when it is not serving yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None  # not serving yet


def assigned_partitions(assigned: Iterable[str], topic: str) -> list[int]:
    """The partitions of ``topic`` among a ready body's ``assigned`` entries (``topic[3]``)."""
    return sorted(int(a[len(topic) + 1 : -1]) for a in assigned if a.startswith(topic + "["))
