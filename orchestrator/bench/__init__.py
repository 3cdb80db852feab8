"""``ksaga bench``: throughput, latency and cost of ksaga on a checked run (issue 6)."""

from orchestrator.bench.run import bench_command

__all__ = ["bench_command"]
