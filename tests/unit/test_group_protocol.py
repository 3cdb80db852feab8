"""Which consumer group protocol a replica speaks, and the settings that go with each."""

from __future__ import annotations

import pytest

from orchestrator.config import load_settings
from orchestrator.errors import ConfigError
from orchestrator.kafka import consumer_config


def test_classic_uses_the_cooperative_sticky_assignor_and_our_session_timeout() -> None:
    config = consumer_config(load_settings(bootstrap_servers="a:1", session_timeout_ms=7000))
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["session.timeout.ms"] == 7000
    assert "group.protocol" not in config


def test_consumer_asks_the_broker_for_its_range_assignor_and_sets_no_classic_knobs() -> None:
    config = consumer_config(load_settings(bootstrap_servers="a:1", group_protocol="consumer"))
    assert config["group.protocol"] == "consumer"
    assert config["group.remote.assignor"] == "range"
    assert "partition.assignment.strategy" not in config
    assert "session.timeout.ms" not in config


def test_a_session_timeout_that_would_do_nothing_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"KSAGA_SESSION_TIMEOUT_MS has no effect.*unset it"):
        load_settings(bootstrap_servers="a:1", group_protocol="consumer", session_timeout_ms=6000)


def test_an_unknown_protocol_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="KSAGA_GROUP_PROTOCOL"):
        load_settings(bootstrap_servers="a:1", group_protocol="eager")
