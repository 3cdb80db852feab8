"""``python -m orchestrator.bench``: the bench command without the ksaga CLI."""

from orchestrator.bench.run import bench_command

bench_command(prog_name="ksaga bench")
