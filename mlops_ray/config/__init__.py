"""Validated configuration: every config section, loading, ``--set`` overrides.

One home for every section (``sections.py``; the ``tune``, ``monitor`` and
``model_tests`` sections in their own modules), the root ``Config`` that joins them
(``root.py``) and reading a file into it (``loading.py``). Nothing here imports Ray,
torch or MLflow, so a bad config is reported before any of them loads.
"""

from mlops_ray.config.loading import apply_override, dump_config, load_config, validate_config
from mlops_ray.config.model_tests import (
    DirectionalCase,
    InvarianceCase,
    MinimumFunctionalityCase,
    ModelTestsConfig,
)
from mlops_ray.config.monitor import DriftThresholds, MonitorConfig, RetrainConfig
from mlops_ray.config.root import UNTUNABLE, Config
from mlops_ray.config.sections import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    TASKS,
    AutoscalingConfig,
    BatchingConfig,
    CaptureConfig,
    CheckpointSettings,
    DataConfig,
    EarlyStopping,
    EvaluateConfig,
    FaultInjection,
    GateConfig,
    ModelConfig,
    RayConfig,
    RegistryConfig,
    Section,
    ServeConfig,
    SplitConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
)
from mlops_ray.config.tune import Dimension, TuneConfig

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "TASKS",
    "UNTUNABLE",
    "AutoscalingConfig",
    "BatchingConfig",
    "CaptureConfig",
    "CheckpointSettings",
    "Config",
    "DataConfig",
    "Dimension",
    "DirectionalCase",
    "DriftThresholds",
    "EarlyStopping",
    "EvaluateConfig",
    "FaultInjection",
    "GateConfig",
    "InvarianceCase",
    "MinimumFunctionalityCase",
    "ModelConfig",
    "ModelTestsConfig",
    "MonitorConfig",
    "RayConfig",
    "RegistryConfig",
    "RetrainConfig",
    "Section",
    "ServeConfig",
    "SplitConfig",
    "SyntheticConfig",
    "TrackingConfig",
    "TrainConfig",
    "TuneConfig",
    "apply_override",
    "dump_config",
    "load_config",
    "validate_config",
]
