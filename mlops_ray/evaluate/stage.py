"""``mlops-ray evaluate``: a registered version on the held-out test split, with slices and plots."""

from __future__ import annotations

import mlflow

from mlops_ray.config import Config
from mlops_ray.data.prepare import prepare_stage
from mlops_ray.evaluate.versions import (
    ModelEvaluation,
    evaluate_versions,
    log_evaluation,
    print_evaluation,
    warn_if_other_data,
)
from mlops_ray.registry.refs import resolve_model_ref
from mlops_ray.reporting import StageReporter
from mlops_ray.runtime import connected
from mlops_ray.tags import MODEL_TAG, STAGE_TAG, VERSION_TAG


def run_evaluation(config: Config, reporter: StageReporter, model_ref: str) -> ModelEvaluation:
    """``mlops-ray evaluate``: metrics, slices and plots of one version, logged to an MLflow run."""
    with connected(config, reporter) as (tracking, _):
        version = resolve_model_ref(model_ref)
        data = prepare_stage(config, reporter)
        warn_if_other_data(version, data, reporter)
        with reporter.stage("evaluate", f"scoring {version.name} version {version.version} on the test split") as st:
            evaluated = evaluate_versions(config, data, tracking.uri, {"candidate": version})
            result = evaluated.results["candidate"]
            with mlflow.start_run(run_name=f"{version.name}-v{version.version}-evaluate") as run:
                mlflow.set_tags({STAGE_TAG: "evaluate", MODEL_TAG: version.name, VERSION_TAG: str(version.version)})
                log_evaluation(evaluated, "candidate", data)
            st.detail = _headline(result)
    print_evaluation(reporter, result, f"{version.name} version {version.version} on {data.row_counts['test']} rows")
    reporter.table("mlops-ray evaluate", {"MLflow run": run.info.run_id, "MLflow UI": tracking.ui_hint})
    return result


def _headline(result: ModelEvaluation) -> str:
    shown = ", ".join(f"{k.removeprefix('test_')} {v:.3f}" for k, v in list(result.metrics.items())[:3])
    worst = result.worst_slice
    return shown + (f"; worst slice {worst.column}={worst.value} ({worst.metric:.3f})" if worst else "")
