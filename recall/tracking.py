"""MLflow tracking: one parent run per pipeline variant, one child run per DVC stage.

A variant is a `dvc exp run` (keyed by DVC's experiment name) or, for a plain `dvc repro`,
the git commit plus a hash of the resolved params. All stages of a variant nest under the
same parent, which carries the resolved config and the headline metrics, so two
`dvc exp run -S grpo.learning_rate=...` variants sit side by side in the compare view.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

from recall.config import Params, fingerprint, flat_dict

PIPELINE_TAG = "recall.pipeline"
ROLE_TAG = "recall.role"  # "variant" on the parent, "stage" on its children


def tracking_uri(params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri


def git_commit() -> str:
    """HEAD's commit, suffixed '-dirty' when tracked files differ; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def pipeline_key(params: Params, commit: str) -> str:
    exp = os.environ.get("DVC_EXP_NAME")
    return f"exp:{exp}" if exp else f"{commit[:12]}:{fingerprint(params)}"


def experiment_id(mlflow, name: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    # Absolute, so every stage of a repro writes artifacts to the same place.
    return mlflow.create_experiment(name, artifact_location=Path("mlartifacts").resolve().as_uri())


def _parent_run_id(mlflow, experiment_id: str, key: str, params: Params, commit: str) -> str:
    query = f"tags.`{PIPELINE_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'variant'"
    found = mlflow.search_runs([experiment_id], filter_string=query, output_format="list",
                               max_results=1)
    if found:
        return found[0].info.run_id
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=os.environ.get("DVC_EXP_NAME") or key,
                            tags={PIPELINE_TAG: key, ROLE_TAG: "variant", "git.commit": commit,
                                  "recall.profile": params.experiment.profile})
    for name, value in flat_dict(params).items():
        client.log_param(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@contextlib.contextmanager
def stage_run(params: Params, stage: str) -> Iterator[object]:
    """Start the MLflow child run of one DVC stage, nested under its variant's parent run."""
    import logging

    import mlflow

    # A new SQLite store announces its table creation at INFO on stderr, which would bury a
    # stage's one-line error (recall.errors) under migration noise.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(params))
    commit = git_commit()
    exp_id = experiment_id(mlflow, params.experiment.name)
    key = pipeline_key(params, commit)
    parent = _parent_run_id(mlflow, exp_id, key, params, commit)
    tags = {"dvc.stage": stage, "git.commit": commit, PIPELINE_TAG: key, ROLE_TAG: "stage",
            "recall.experiment": params.experiment.name,
            "dvc.exp": os.environ.get("DVC_EXP_NAME", "")}
    with mlflow.start_run(experiment_id=exp_id, run_name=stage, parent_run_id=parent,
                          tags=tags) as run:
        mlflow.log_params(flat_dict(params))
        yield run


def log_to_parent(run, metrics: dict[str, float]) -> None:
    """Copy headline metrics to the variant's parent run, where the compare view reads them."""
    import mlflow

    parent = run.data.tags.get("mlflow.parentRunId")
    if parent:
        client = mlflow.MlflowClient()
        for name, value in metrics.items():
            client.log_metric(parent, name, value)
