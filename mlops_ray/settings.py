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

from mlops_ray.errors import ConfigError

DEFAULT_TRACKING_FILE = "mlflow.db"
# Ray's job supervisor gives every job's entrypoint this variable (the job's runtime env and metadata).
RAY_JOB_MARKER = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    ray_address: str | None = Field(None, validation_alias="RAY_ADDRESS")
    ray_job: str | None = Field(None, validation_alias=RAY_JOB_MARKER)


def tracking_uri(configured: str | None) -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the working directory.

    Not inside a Ray job: its working directory is a temporary copy on one node, so the
    runs and models would vanish with the job, and no other node could read them.
    """
    env = EnvSettings()
    uri = configured or env.mlflow_tracking_uri
    if uri:
        return uri
    if env.ray_job is not None:
        raise ConfigError(
            "no MLflow tracking server is named, and this command runs as a Ray job: a SQLite file in the job's "
            "temporary working directory would be lost when the job ends",
            where="tracking.uri / $MLFLOW_TRACKING_URI",
            hint="Set MLFLOW_TRACKING_URI in the cluster nodes' environment (or the job's runtime_env env_vars), "
            "or pass --set tracking.uri=http://<mlflow-server>:5000.",
        )
    return f"sqlite:///{Path(DEFAULT_TRACKING_FILE).resolve()}"


def ray_address(configured: str | None) -> str | None:
    """Config value, else ``$RAY_ADDRESS``; ``None`` means start an embedded Ray."""
    return configured or EnvSettings().ray_address
