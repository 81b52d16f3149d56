"""The few exceptions a user of mlops-ray can see.

Every user mistake (bad config, missing file, unreachable service) is raised as an
``MlopsError`` whose message is one readable paragraph quoting the bad value. The
CLI prints that paragraph and exits with ``exit_code``; it never shows a traceback
for these. Anything else escaping is a bug in mlops-ray and keeps its traceback.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class: a problem the user can fix, described in one paragraph.

    ``where`` names the field, file, column or address at fault and ``hint`` says
    what to do about it; both are kept as attributes so tests and callers can
    check them without parsing the message.
    """

    exit_code: int = 1
    kind: str = "error"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        """The whole explanation as a single paragraph, as the CLI prints it."""
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class ConfigError(MlopsError):
    """The YAML config or a ``--set`` override is invalid."""

    exit_code = 2
    kind = "config error"


class DataError(MlopsError):
    """Input data is missing or does not match what the config promises."""

    kind = "data error"


class ServiceUnavailableError(MlopsError):
    """A service the run needs (MLflow tracking server, Ray cluster) cannot be reached."""

    kind = "connection error"


class ModelRefError(MlopsError):
    """A ``name@alias`` or ``name/version`` reference is malformed or unknown."""

    kind = "model reference error"


class ServingError(MlopsError):
    """The Serve endpoint could not be started or did not answer."""

    kind = "serving error"


class TrainingError(MlopsError):
    """Training stopped: a worker kept failing past ``train.max_failures``, or nothing can be resumed."""

    kind = "training error"


class PromotionError(MlopsError):
    """Nothing to promote, or nothing to roll back to."""

    kind = "promotion error"


class ReproduceError(MlopsError):
    """The run cannot be reproduced: unknown, without a recorded config, or on changed data."""

    kind = "reproduce error"


class SweepInterrupted(MlopsError):
    """The sweep stopped before its trials ended; its state is saved for ``--resume``."""

    exit_code = 130
    kind = "interrupted"


class ArtifactIntegrityError(MlopsError):
    """A registered version's stored files are not the ones that were registered."""

    kind = "artifact integrity error"
