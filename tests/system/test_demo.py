"""README command one's main job, small: it completes and compensates, checks, and cleans up."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka


def test_the_demo_ends_with_a_checked_summary_and_leaves_no_process() -> None:
    workdirs = set(Path(tempfile.gettempdir()).glob("ksaga-demo-*"))
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo", "--sagas", "60", "--rate", "200",
         "--replicas", "1", "--partitions", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"summary: completed=(\d+) compensated=(\d+) failed=0 check=ok", last)
    assert match, last
    completed, compensated = map(int, match.groups())
    assert completed + compensated == 60
    assert completed > 0
    assert compensated > 0
    for pattern in ("ksaga-demo-", "-m orchestrator (run|participants)"):
        leftovers = subprocess.run(
            ["pgrep", "-f", pattern], capture_output=True, text=True, check=False
        )
        assert leftovers.stdout == "", pattern
    assert set(Path(tempfile.gettempdir()).glob("ksaga-demo-*")) == workdirs
