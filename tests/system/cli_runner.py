"""Run ``ksaga`` in-process exactly as the console script does (``orchestrator.cli.main``)."""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code in (0, 1), self
        return json.loads(self.out)


def ksaga(*args: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["ksaga", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = argv
    code = exited.value.code
    del exited  # the traceback would keep the command's Kafka clients alive (a frame cycle)
    return CliResult(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())
