"""The ``ksaga participants`` misbehaviour options reach :class:`Behaviour` field by field."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

import connectors.cli as participants_cli
from connectors.order_participants import Behaviour
from connectors.participant import ParticipantConfig


def test_every_behaviour_field_has_an_option_with_its_default() -> None:
    options = {
        param.name: param.default
        for param in participants_cli.participants_command.params
        if isinstance(param, click.Option)
    }
    for field in dataclasses.fields(Behaviour):
        assert field.name in options, f"no option for Behaviour.{field.name}"
        assert options[field.name] == field.default, field.name


def test_options_build_the_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Behaviour] = []

    def capture(config: ParticipantConfig, behaviour: Behaviour, **_: object) -> None:
        built.append(behaviour)
        raise SystemExit(0)

    monkeypatch.setattr(participants_cli, "build_participant", capture)
    monkeypatch.setattr(participants_cli, "configure_logging", lambda *_, **__: None)
    result = CliRunner().invoke(
        participants_cli.participants_command,
        ["--bootstrap", "localhost:1", "--seed", "7", "--hung-rate", "0.5", "--slow-ms", "12"],
    )
    assert result.exit_code == 0, result.output
    assert built == [Behaviour(seed=7, hung_rate=0.5, slow_ms=12.0)]


@pytest.mark.parametrize("option", ["--decline-rate", "--shipping-lost-rate"])
def test_a_share_outside_zero_to_one_is_a_usage_error(option: str) -> None:
    result = CliRunner().invoke(
        participants_cli.participants_command, ["--bootstrap", "localhost:1", option, "1.5"]
    )
    assert result.exit_code == 2
    assert option in result.output
