"""One exception tree for ksaga.

Errors come in two halves (see ``../shared/design/style.md``):

* **You called me wrongly / configured me wrongly** — raised at start, with a message that
  says what to fix. These never happen per record.
* **The peer sent something bad** — never raised out of the pure core: a bad record becomes a
  ``Reject`` effect and the shell dead-letters it. Codecs raise ``DecodeError`` at the edge so
  the shell can turn it into a dead letter with a reason.

::

    KsagaError
    ├── DefinitionError        a saga class is malformed (names the saga and the step)
    ├── ConfigError            a setting is missing or invalid (names the setting and the fix)
    ├── DecodeError            bytes are not a ksaga envelope we can read (reason attached)
    ├── KafkaClusterError      the local broker could not be resolved, started or reached
    └── OperationError         an operator's command could not do its job (says what to check)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecodeError",
    "DefinitionError",
    "KafkaClusterError",
    "KsagaError",
    "OperationError",
]


class KsagaError(Exception):
    """Base of every error ksaga raises on purpose."""


class DefinitionError(KsagaError):
    """A saga definition is invalid; raised when the class is created, never per record."""

    def __init__(self, saga: str, step: str | None, problem: str) -> None:
        where = f"saga {saga!r}" + (f", step {step!r}" if step else "")
        super().__init__(f"{where}: {problem}")
        self.saga = saga
        self.step = step
        self.problem = problem


class ConfigError(KsagaError):
    """A setting is invalid; the message names the setting and how to fix it."""


class DecodeError(KsagaError):
    """Bytes that are not a readable ksaga envelope.

    ``reason`` is a short machine-readable tag (it becomes the dead-letter reason header);
    the message is for humans.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class KafkaClusterError(KsagaError):
    """The project's own local Kafka broker could not be resolved, started or reached."""


class OperationError(KsagaError):
    """An operator's command (e.g. ``ksaga saga resume``) could not do its job."""
