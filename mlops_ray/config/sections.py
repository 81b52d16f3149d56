"""Every config section but the root: one frozen pydantic model per section.

Models forbid unknown keys so a typo (``epochz``) fails loudly, with the key path and
the closest valid key, instead of silently training with a default. The ``tune``,
``monitor`` and ``model_tests`` sections live beside this module; ``root.py`` joins
them all into ``Config``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_ray.errors import ConfigError

CLASSIFICATION_METRICS = (
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "roc_auc",
    "log_loss",
    "calibration_error",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")
TASKS = ("classification", "regression")


class Section(BaseModel):
    """Base of every section: immutable, and unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(Section):
    """How rows are assigned to train / val / test; every method is deterministic.

    ``auto`` picks ``hash`` when ``data.id_column`` is set, else ``stratified`` for
    classification and ``random`` for regression.
    """

    method: Literal["auto", "random", "stratified", "hash"] = "auto"
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _leave_rows_for_training(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} "
                "leaves less than 10% of rows for training"
            )
        return self


class SyntheticConfig(Section):
    """Shape of a ``synthetic:classification`` or ``synthetic:regression`` source (generated in parallel)."""

    rows: int = Field(10_000, ge=10)
    features: int = Field(8, ge=1, description="numeric feature columns")
    categoricals: int = Field(2, ge=0, description="string feature columns")
    categories: int = Field(4, ge=2, description="distinct values per string column")
    classes: int = Field(2, ge=2, description="classes of synthetic:classification")
    noise: float = Field(0.1, ge=0, description="label noise of synthetic:regression, relative to its signal")
    missing_fraction: float = Field(0.0, ge=0, lt=1, description="share of feature values left empty")
    seed: int = 0


class DataConfig(Section):
    source: str = Field(
        "sklearn:breast_cancer",
        description="'sklearn:<name>', 'synthetic:classification', or a CSV/Parquet/JSON-lines file, "
        "directory or glob, local or any URI pyarrow reads (s3://, gs://, ...)",
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto",
        description="auto: samples and generators know theirs; for files, string, boolean or integer labels with "
        "at most 20 distinct values mean classification, other numbers regression",
    )
    format: Literal["csv", "parquet", "jsonl"] | None = Field(
        None, description="file format; inferred from the file names when not given"
    )
    label: str | None = Field(None, description="label column; bundled samples know theirs")
    id_column: str | None = Field(
        None, description="row identifier: never a feature, checked for leakage, and the key of hash splits"
    )
    schema_file: str | None = Field(
        None, description="schema contract from `mlops-ray data infer-schema`; every row is checked against it"
    )
    on_invalid: Literal["fail", "drop"] = Field(
        "fail", description="rows that break the schema: fail with a report, or drop them into the quarantine"
    )
    quarantine_dir: str = Field(
        ".mlops-ray/quarantine", description="dropped rows are written here as Parquet, one folder per run"
    )
    features: list[str] | None = Field(
        None, description="the feature columns to use (default: every column but the label and id)"
    )
    exclude: list[str] = Field(default_factory=list, description="columns never used as features")
    synthetic: SyntheticConfig = SyntheticConfig()
    split: SplitConfig = SplitConfig()
    standardize: bool = True
    categorical_encoding: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int = Field(50, ge=1, description="most frequent training values kept per string column")


BUILT_IN_MODELS = ("mlp", "resmlp")
# ``module.path:callable``: any importable module (the working directory included) and a name in it.
BUILDER_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def is_builder_name(name: str) -> bool:
    """True for a ``module.path:builder`` network (anything but a built-in one): config, spec and sweep ask this."""
    return name not in BUILT_IN_MODELS


class ModelConfig(Section):
    """The network: ``mlp`` (a plain stack), ``resmlp`` (residual blocks, stronger on tabular data), or your own.

    Your own is ``name: "module.path:builder"``, a callable
    ``builder(n_features, n_outputs, **params) -> torch.nn.Module`` with its keyword
    arguments in ``params``; ``depth`` ... ``activation`` are the built-in networks' and
    are not passed to it (docs/models.md).
    """

    name: str = Field("mlp", description="mlp, resmlp, or module.path:builder (your own torch module)")
    depth: int = Field(2, ge=1, le=64, description="hidden layers (mlp) or residual blocks (resmlp)")
    width: int = Field(64, ge=1, le=65536, description="units per hidden layer")
    dropout: float = Field(0.1, ge=0, lt=1)
    normalization: Literal["none", "batch", "layer"] = "none"
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a module.path:builder (JSON values)"
    )

    @property
    def is_builder(self) -> bool:
        """True for ``module.path:builder``: a network this package does not define."""
        return is_builder_name(self.name)

    @model_validator(mode="after")
    def _known_network(self) -> ModelConfig:
        if self.is_builder and not BUILDER_PATH.match(self.name):
            raise ValueError(
                f"model.name {self.name!r} is neither a built-in network ({', '.join(BUILT_IN_MODELS)}) "
                "nor a builder path 'module.path:callable' (e.g. my_models:build)"
            )
        if self.params and not self.is_builder:
            raise ValueError(
                f"model.params ({', '.join(self.params)}) are a builder's arguments; {self.name} takes "
                "model.depth, width, dropout, normalization and activation"
            )
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model.params must hold JSON values (numbers, strings, lists, maps): {exc}") from None
        return self


class CheckpointSettings(Section):
    """Which epochs leave a checkpoint, and how many are kept (the best by ``metric``)."""

    every_epochs: int = Field(1, ge=1, description="checkpoint every N epochs (and always the last one)")
    keep: int = Field(2, ge=1, description="checkpoints kept: the best by metric")
    metric: str = Field("val_loss", description="validation metric that ranks checkpoints and picks the model")
    mode: Literal["min", "max"] = "min"


class EarlyStopping(Section):
    patience: int = Field(5, ge=1, description="epochs without improvement of checkpoint.metric before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")


class FaultInjection(Section):
    """A deterministic failure for testing fault tolerance: ``rank`` raises once at ``epoch``."""

    epoch: int = Field(ge=1)
    rank: int = Field(0, ge=0)


class TrainConfig(Section):
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="Ray Train workers; 0: Ray Train's local mode (the loop in this process, no worker group); "
        "auto: local mode below local_below_rows training rows (when max_failures is 0), auto_workers above",
    )
    local_below_rows: int = Field(
        20_000, ge=0, description="num_workers auto: train in-process on a training split smaller than this"
    )
    auto_workers: int = Field(2, ge=1, description="num_workers auto: the workers for a larger training split")
    use_gpu: bool = False
    resources_per_worker: dict[str, float] = Field(
        default_factory=lambda: {"CPU": 1.0}, description="Ray resources per worker, e.g. {CPU: 4, GPU: 1}"
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up before the schedule")
    step_every_epochs: int = Field(10, ge=1, description="step schedule: multiply lr by step_gamma this often")
    step_gamma: float = Field(0.1, gt=0, le=1)
    grad_clip_norm: float | None = Field(None, gt=0, description="clip the gradient's global norm")
    early_stopping: EarlyStopping | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it, else fp16 with a grad scaler; fp32 on CPU"
    )
    checkpoint: CheckpointSettings = CheckpointSettings()
    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint; -1: no limit")
    seed: int = 42
    cache_shard_mb: float = Field(256, ge=0, description="keep a worker's shard in memory below this size")
    storage_path: str = Field(
        ".mlops-ray/ray_results", description="Ray Train checkpoints and results: a local path or a URI (s3://...)"
    )
    fault_injection: FaultInjection | None = Field(None, description="testing only: make a worker fail once")

    def workers_for(self, train_rows: int) -> int:
        """The Ray Train workers for a training split of ``train_rows`` rows; 0 is local mode (in-process).

        ``auto`` trains in-process below ``local_below_rows``: on small data a worker group's
        start-up (seconds) costs more than it saves. Local mode has no worker to restart, so a
        config that asks for restarts (``max_failures``) always gets workers.
        """
        if self.num_workers != "auto":
            return self.num_workers
        return 0 if train_rows < self.local_below_rows and self.max_failures == 0 else self.auto_workers

    @model_validator(mode="after")
    def _gpu_consistent(self) -> TrainConfig:
        if self.use_gpu and self.resources_per_worker.get("GPU", 1) <= 0:
            raise ValueError("use_gpu is true but resources_per_worker gives no GPU")
        if self.precision == "fp16" and not self.use_gpu:
            raise ValueError("precision fp16 needs use_gpu: true (CPU autocast supports bf16 only)")
        return self


class EvaluateConfig(Section):
    metrics: tuple[Literal[CLASSIFICATION_METRICS + REGRESSION_METRICS], ...] | None = Field(  # type: ignore[valid-type]
        None, description="test metrics; default: all of the task's (classification or regression) metrics"
    )

    slices: tuple[str, ...] = Field(
        (), description="columns whose values (or quantile bins, for numbers) get their own metrics"
    )
    slice_bins: int = Field(4, ge=2, le=20, description="quantile bins of a numeric slice column")
    min_slice_rows: int = Field(10, ge=1, description="smaller slices are listed without a metric")

    def metrics_for(self, task: str) -> tuple[str, ...]:
        """The metrics to compute for ``task``; a metric of the other task kind is a ConfigError."""
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        if self.metrics is None:
            return allowed
        wrong = [m for m in self.metrics if m not in allowed]
        if wrong:
            raise ConfigError(
                f"{', '.join(wrong)} do not apply to {task}; choose from {', '.join(allowed)}",
                where="evaluate.metrics",
            )
        return self.metrics


class GateConfig(Section):
    """The promotion policy: when may a challenger replace the champion (docs/promotion.md)."""

    metric: Literal[CLASSIFICATION_METRICS + REGRESSION_METRICS] | None = Field(  # type: ignore[valid-type]
        None, description="the metric compared with the champion; default f1_macro (classification) or rmse"
    )
    thresholds: dict[Literal[CLASSIFICATION_METRICS + REGRESSION_METRICS], float] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="absolute bounds, e.g. {f1_macro: 0.9} means f1_macro >= 0.9; {rmse: 5} means rmse <= 5",
    )
    max_slice_regression: float | None = Field(
        None, ge=0, description="the most the metric may drop on any evaluate.slices slice versus the champion"
    )
    rule: Literal["not_worse", "not_shown_worse", "better"] = Field(
        "not_worse",
        description="not_worse: confidently within margin of the champion; not_shown_worse: not confidently "
        "worse by more than margin; better: confidently ahead by at least min_delta",
    )
    margin: float = Field(
        0.01,
        ge=0,
        description="in the metric's units: not_worse needs lower bound >= -margin, "
        "not_shown_worse upper bound >= -margin",
    )
    min_delta: float = Field(0.0, ge=0, description="better: the lower bound of the difference >= min_delta")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="of the paired bootstrap interval")
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    seed: int = 0
    require_model_tests: bool = Field(
        False, description="run the model_tests cases (and data contract) on the candidate; any failure rejects it"
    )

    def metric_for(self, task: str) -> str:
        """The compared metric for ``task``; one of the other task kind is a ConfigError."""
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        wrong = [m for m in (self.metric, *self.thresholds) if m is not None and m not in allowed]
        if wrong:
            raise ConfigError(
                f"{', '.join(wrong)} do not apply to {task}; choose from {', '.join(allowed)}", where="gate"
            )
        return self.metric or ("f1_macro" if task == "classification" else "rmse")


class RegistryConfig(Section):
    model_name: str = Field("quickstart-breast-cancer", min_length=1, pattern=r"^[A-Za-z0-9][\w.-]*$")
    alias: str = Field("champion", pattern=r"^[A-Za-z][\w-]*$", description="the production alias the gate moves")
    challenger_alias: str = Field(
        "challenger", pattern=r"^[A-Za-z][\w-]*$", description="where new models wait for the gate"
    )

    @model_validator(mode="after")
    def _distinct_aliases(self) -> RegistryConfig:
        if self.alias == self.challenger_alias:
            raise ValueError(f"'alias' and 'challenger_alias' must differ (both are '{self.alias}')")
        return self


class AutoscalingConfig(Section):
    """Ray Serve's autoscaling_config for the model deployment; min == max gives a fixed replica count."""

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(4, gt=0, description="requests in flight per replica to aim for")
    upscale_delay_s: float = Field(3.0, ge=0)
    downscale_delay_s: float = Field(30.0, ge=0)
    look_back_period_s: float = Field(
        30.0,
        gt=10,
        description="window the ongoing-request average is taken over; above Serve's 10 s metrics interval",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        return self


class BatchingConfig(Section):
    """``@serve.batch``: requests that arrive within the wait are predicted together."""

    max_batch_size: int = Field(16, ge=1, description="requests per batch (each may hold many rows)")
    batch_wait_timeout_s: float = Field(
        0.0, ge=0, le=10, description="0: take what is queued (batches form under load; a lone request never waits)"
    )


class CaptureConfig(Section):
    """Requests and predictions kept for monitoring, as Parquet under ``path/date=.../model_version=.../``."""

    sample_rate: float = Field(1.0, ge=0, le=1, description="share of requests kept; 0 turns capture off")
    path: str = Field(".mlops-ray/capture", min_length=1, description="a local folder, or an fsspec/pyarrow URI")
    flush_rows: int = Field(5000, ge=1, description="write a file once this many rows are buffered")
    flush_interval_s: float = Field(5.0, gt=0, description="... or once this much time has passed")


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    app_name: str = "mlops-ray"
    cpus_per_replica: float = Field(0.5, gt=0)
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    max_ongoing_requests: int = Field(32, ge=1, description="requests one replica works on at once")
    max_queued_requests: int = Field(
        64, ge=1, description="requests waiting for a replica, per caller; beyond it the endpoint answers 503"
    )
    batching: BatchingConfig = BatchingConfig()
    max_rows_per_request: int = Field(1000, ge=1)
    max_body_bytes: int = Field(4_000_000, ge=1024, description="larger request bodies are answered 413")
    canary_percent: float = Field(
        0.0, ge=0, le=100, description="share of requests answered by @registry.challenger_alias (--canary)"
    )
    alias_refresh_s: float = Field(
        10.0, ge=0, description="how often replicas re-read the alias and swap models; 0 pins the version at start"
    )
    health_check_period_s: float = Field(
        2.0, gt=0, description="how often Serve probes each replica; a crashed one is noticed within this time"
    )
    health_check_timeout_s: float = Field(30.0, gt=0)
    capture: CaptureConfig = CaptureConfig()
    access_log: bool = Field(False, description="Serve's per-request access log lines in the replica logs")
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode", description="where Serve runs HTTP proxies; HeadOnly when several nodes share one machine"
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> ServeConfig:
        """A replica must admit a whole batch at once, or batches never fill."""
        if self.max_ongoing_requests < self.batching.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) is below batching.max_batch_size "
                f"({self.batching.max_batch_size}); a replica could never fill a batch"
            )
        return self


class TrackingConfig(Section):
    uri: str | None = Field(None, description="MLflow tracking URI; else $MLFLOW_TRACKING_URI, else ./mlflow.db")
    experiment: str = Field("mlops-ray", min_length=1)
    artifact_location: str = Field("mlartifacts", description="where a new experiment stores artifacts")


class RayConfig(Section):
    address: str | None = Field(None, description="cluster address; else $RAY_ADDRESS, else embedded Ray")
    num_cpus: float | None = Field(None, gt=0, description="logical CPUs of the embedded Ray")
    num_gpus: int | None = Field(None, ge=0)
    include_dashboard: bool = True
    log_to_driver: bool = Field(False, description="stream worker logs to the terminal (they are always in /tmp/ray)")
