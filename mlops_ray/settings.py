"""Facts about the environment, read from environment variables when asked.

The config file says what to run; these say where. A value in the config wins over
the environment so that a checked-in config is reproducible; the environment wins
over the built-in default so that ``ray job submit`` (which sets ``RAY_ADDRESS``) and
a shared tracking server (``MLFLOW_TRACKING_URI``) need no config change.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_FILE = "mlflow.db"


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    ray_address: str | None = Field(None, validation_alias="RAY_ADDRESS")


def tracking_uri(configured: str | None) -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    uri = configured or EnvSettings().mlflow_tracking_uri
    if uri:
        return uri
    return f"sqlite:///{Path(DEFAULT_TRACKING_FILE).resolve()}"


def ray_address(configured: str | None) -> str | None:
    """Config value, else ``$RAY_ADDRESS``; ``None`` means start an embedded Ray."""
    return configured or EnvSettings().ray_address
