"""Configuration errors stop a replica at start, with a message that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.testing.kafka_cluster import KafkaBroker


def run(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "run"],
        env={**os.environ, "KSAGA_STATE_DIR": str(tmp_path / "db"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    result = run({"KSAGA_BOOTSTRAP_SERVERS": "no-port-here"}, tmp_path)
    assert result.returncode == 1
    assert "KSAGA_BOOTSTRAP_SERVERS" in result.stderr
    assert "host:port" in result.stderr
    result = run(
        {"KSAGA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KSAGA_BATCH_MAX_RECORDS": "0"}, tmp_path
    )
    assert result.returncode == 1
    assert "KSAGA_BATCH_MAX_RECORDS" in result.stderr


@pytest.mark.kafka
def test_missing_topics_and_unknown_saga_modules_fail_fast_with_the_fix(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    env = {"KSAGA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
           "KSAGA_TOPIC_PREFIX": "nothing-here."}  # fmt: skip
    result = run(env, tmp_path)
    assert result.returncode == 1
    assert "missing topic(s): " in result.stderr
    assert "nothing-here.inbox" in result.stderr
    assert "ksaga topics create" in result.stderr
    result = run({**env, "KSAGA_SAGAS_MODULE": "no_such_sagas"}, tmp_path)
    assert result.returncode == 1
    assert "saga module 'no_such_sagas' not found" in result.stderr
