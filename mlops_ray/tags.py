"""Every MLflow tag and artifact name mlops-ray writes or reads, in one place.

Tags are the registry's memory: lineage, the gate's decision, a sweep's trials and a
monitoring window are all found again by these names, often by another command (or
another version of mlops-ray) than the one that wrote them. Their values are part of
the on-disk format: renaming one orphans every run and version recorded before, so
the strings never change; only new names are added.
"""

from __future__ import annotations

# --- runs: what kind of run, for which model -------------------------------------------------------
STAGE_TAG = "mlops_ray.stage"  # train | tune | trial | evaluate | promote | ...
MODEL_TAG = "mlops_ray.model_name"
VERSION_TAG = "mlops_ray.model_version"
RUN_KIND_TAG = "mlops_ray.run_kind"  # monitoring | model_tests | comparison
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a sweep trial's parent run
REPRODUCES_TAG = "mlops_ray.reproduces"  # on a `reproduce` run: the run it re-trained

# --- data: on training and sweep runs, and on registered versions -----------------------------------
FINGERPRINT_TAG = "data.fingerprint"
SOURCE_TAG = "data.source"
SCHEMA_DIGEST_TAG = "data.schema_sha256"
DATA_WARNINGS_TAG = "data.warnings"
QUARANTINE_TAG = "data.quarantine"
CONFIG_DIGEST_TAG = "config.sha256"

# --- code and environment (registry/lineage.py's provenance) ----------------------------------------
GIT_COMMIT_TAG = "git.commit"
GIT_DIRTY_TAG = "git.dirty"
PYTHON_VERSION_TAG = "python.version"
RAY_JOB_TAG = "ray.job_submission_id"
PACKAGE_VERSION_SUFFIX = ".version"  # "<package>.version", e.g. "ray.version"
TRAIN_WORKERS_TAG = "train.workers"
TRAIN_DEVICE_TAG = "train.device"

# --- sweeps -----------------------------------------------------------------------------------------
SWEEP_PATH_TAG = "mlops_ray.sweep_path"  # on the parent run: where Tune keeps its state
TRIAL_TAG = "mlops_ray.trial_id"
TRIAL_STATUS_TAG = "mlops_ray.trial_status"
TRIAL_NUMBER_TAG = "mlops_ray.trial_number"
TRIAL_ERROR_TAG = "mlops_ray.trial_error"
SWEEP_PARENT_TAG = "sweep.parent_run_id"  # on the registered version of a sweep's best trial
SWEEP_TRIAL_TAG = "sweep.trial_id"
SWEEP_TRIAL_RUN_TAG = "sweep.trial_run_id"
SWEEP_BEST_TRIAL_TAG = "sweep.best_trial_id"  # on the parent run
SWEEP_BEST_RUN_TAG = "sweep.best_run_id"

# --- artifact integrity (on registered versions) -----------------------------------------------------
DIGEST_TAG = "artifacts.sha256"  # one digest over every file: what `mlops-ray` prints and compares first
FILES_TAG = "artifacts.files"  # {relative path: sha256}, to name the file that changed

# --- promotion (on versions; the history on the registered model) ------------------------------------
HISTORY_TAG = "mlops_ray.champion_history"  # JSON list of versions, oldest first; the last is the champion
VERDICT_TAG = "promotion.verdict"
REASONS_TAG = "promotion.reasons"
PROMOTION_RUN_TAG = "promotion.run_id"
AGAINST_CHAMPION_TAG = "promotion.champion_version"
DECIDED_AT_TAG = "promotion.decided_at"
ROLLED_BACK_AT_TAG = "promotion.rolled_back_at"

# --- behavioural model tests (on versions) ------------------------------------------------------------
TESTS_PASSED_TAG = "model_tests.passed"
TESTS_SUMMARY_TAG = "model_tests.summary"
TESTS_RUN_TAG = "model_tests.run_id"

# --- monitoring runs (the window is logged as two params) ---------------------------------------------
MONITOR_ACTION_TAG = "monitor.action"
MONITOR_MODEL_TAG = "monitor.model_name"
MONITOR_VERSION_TAG = "monitor.model_version"
MONITOR_DRIFTED_TAG = "monitor.drifted"
MONITOR_ENOUGH_ROWS_TAG = "monitor.enough_rows"
MONITOR_FEATURES_TAG = "monitor.drifted_features"
MONITOR_LAST_RUN_TAG = "monitor.last_run_id"  # on the version: its newest monitoring run
MONITOR_LAST_DRIFTED_TAG = "monitor.last_drifted"
WINDOW_SINCE_PARAM = "window.since"
WINDOW_UNTIL_PARAM = "window.until"

# --- artifacts ----------------------------------------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"  # the resolved config of a training or sweep run
SCHEMA_ARTIFACT = "data/schema.json"  # the schema contract the run's data was checked against
VALIDATION_ARTIFACT = "data/validation.json"
PROFILE_ARTIFACT = "data/profile.json"
REFERENCE_ARTIFACT = "monitoring/reference.parquet"  # raw training rows that drift is measured against
TESTS_RESULTS_ARTIFACT = "model_tests/results.json"
DECISION_ARTIFACT = "promotion/decision.json"
EVALUATION_DIR = "evaluation"  # results.json and plots/, under a prefix per version
SWEEP_TRIALS_ARTIFACT = "sweep/trials.json"
REPORT_DIR = "report"  # report.json, report.md and report.html of a comparison run

# --- comparison runs ------------------------------------------------------------------------------------
REPORT_AGAINST_TAG = "report.against_version"
