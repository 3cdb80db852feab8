"""``python -m orchestrator``: the ``ksaga`` command line."""

from orchestrator.cli import main

main()
