"""MLflow tracking: one parent run per pipeline variant, one child run per DVC stage.

A variant is a `dvc exp run` (keyed by DVC's experiment name) or, for a plain `dvc repro`,
the git commit plus a hash of the resolved params. All stages of a variant nest under the
same parent, which carries the resolved config and the headline metrics, so two
`dvc exp run -S grpo.learning_rate=...` variants sit side by side in the compare view. The
parent is named by what the variant changes from the committed params.yaml
(`grpo.reward=exact_match`, or `default`) and spans its stages in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator, Sequence

from recall.config import Params, fingerprint, flat_dict
from recall.environment import environment

PIPELINE_TAG = "recall.pipeline"
ROLE_TAG = "recall.role"  # "variant" on the parent, "stage" on its children
# MLflow 3.17's UI picks the GenAI or the model-training view per browser: from the URL's
# workflowType, then what that browser chose last, then GenAI (its overview of traces and
# latency). Links recall prints carry workflowType, so they open on the training runs; the
# experiment's kind tag decides the view in the UIs that still read it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
TRAINING_VIEW = "workflowType=machine_learning"


def tracking_uri(params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri


def is_server(uri: str) -> bool:
    """A tracking server (it serves the UI and its artifact store), not a local store."""
    return uri.startswith(("http://", "https://", "databricks"))


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: a tracking server's own store (its
    --artifacts-destination, S3 on the cluster, proxied so pods need no keys); beside a local
    store, ./mlartifacts, absolute so every stage of a repro writes to the same place.

    >>> artifact_location("http://mlflow:5000") is None
    True
    """
    if is_server(uri):
        return None
    return Path("mlartifacts").resolve().as_uri()


def pipeline_key(params: Params, commit: str) -> str:
    exp = os.environ.get("DVC_EXP_NAME")
    return f"exp:{exp}" if exp else f"{commit[:12]}:{fingerprint(params)}"


def experiment_id(mlflow, name: str) -> str:
    """The experiment's id, created if new, and tagged as model training either way (an
    experiment from an older recall has no kind yet)."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return mlflow.create_experiment(name, tags=EXPERIMENT_KIND,
                                        artifact_location=artifact_location(
                                            mlflow.get_tracking_uri()))
    for key, value in EXPERIMENT_KIND.items():
        if exp.tags.get(key) != value:
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def environment_tags(env: dict[str, str] | None = None) -> dict[str, str]:
    """recall.environment's fields (read now unless given) as MLflow tags (env.torch, ...)."""
    return {f"env.{k}": v for k, v in (env or environment()).items()}


def variant_name(params: Params, reference: Params | None) -> str:
    """The dotted keys where `params` differ from `reference` (the committed params), or
    'default'; None for `reference` (no committed params to compare with) names nothing.

    >>> from recall.config import load_params
    >>> p = load_params(Path(__file__).parents[1] / "params.yaml")
    >>> variant_name(p, p)
    'default'
    >>> import dataclasses
    >>> variant_name(dataclasses.replace(p, grpo=dataclasses.replace(p.grpo, reward="exact_match")), p)
    'grpo.reward=exact_match'
    """
    if reference is None:
        return ""
    before = flat_dict(reference)
    changed = [f"{k}={v}" for k, v in flat_dict(params).items() if before.get(k) != v]
    name = ", ".join(changed) or "default"
    return name if len(name) <= 200 else name[:199] + "…"


def committed_params() -> Params | None:
    """params.yaml as committed at HEAD (what a variant is compared with); None outside git,
    without a committed params.yaml, or when it no longer loads under this code."""
    import yaml

    from recall.config import params_from_dict

    try:
        shown = subprocess.run(["git", "show", "HEAD:params.yaml"], capture_output=True, text=True)
    except OSError:  # no git in this image: as outside a checkout (environment.git_commit)
        return None
    if shown.returncode != 0:
        return None
    try:
        return params_from_dict(yaml.safe_load(shown.stdout))
    except Exception:  # an old params file under new code: the variant goes unnamed, not the stage
        return None


def _parent_run_id(mlflow, experiment_id: str, key: str, params: Params, env: dict) -> str:
    query = f"tags.`{PIPELINE_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'variant'"
    found = mlflow.search_runs([experiment_id], filter_string=query, output_format="list",
                               max_results=1)
    if found:
        return found[0].info.run_id
    client = mlflow.MlflowClient()
    exp = os.environ.get("DVC_EXP_NAME")
    name = variant_name(params, committed_params()) or key
    run = client.create_run(experiment_id, run_name=f"{name} ({exp})" if exp else name,
                            tags={PIPELINE_TAG: key, ROLE_TAG: "variant",
                                  "git.commit": env["commit"],
                                  "recall.profile": params.experiment.profile,
                                  **environment_tags(env)})
    for name, value in flat_dict(params).items():
        client.log_param(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@contextlib.contextmanager
def rank_stage_run(params: Params, stage: str) -> Iterator[object | None]:
    """`stage_run` on the main process; None on every other training rank, so that a stage
    launched on N processes makes one MLflow run, not N."""
    from recall.compute import is_main_process

    if not is_main_process():
        yield None
        return
    with stage_run(params, stage) as run:
        yield run


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
    # Read once: the commit (two git calls) and the torch probe serve the parent and the stage.
    env = environment()
    commit = env["commit"]
    exp_id = experiment_id(mlflow, params.experiment.name)
    key = pipeline_key(params, commit)
    parent = _parent_run_id(mlflow, exp_id, key, params, env)
    # Each stage records its own environment too: on a cluster its pod may differ from
    # the one that created the variant.
    tags = {"dvc.stage": stage, "git.commit": commit, PIPELINE_TAG: key, ROLE_TAG: "stage",
            "recall.experiment": params.experiment.name,
            "dvc.exp": os.environ.get("DVC_EXP_NAME", ""), **environment_tags(env)}
    status = "FAILED"
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=stage, parent_run_id=parent,
                              tags=tags) as run:
            mlflow.log_params(flat_dict(params))
            yield run
        status = "FINISHED"
    finally:
        # The parent spans its stages: from the first one's start to the latest one's end.
        mlflow.MlflowClient().set_terminated(parent, status, end_time=int(time.time() * 1000))


def log_to_parent(run, metrics: dict[str, float]) -> None:
    """Copy headline metrics to the variant's parent run, where the compare view reads them."""
    import mlflow

    parent = run.data.tags.get("mlflow.parentRunId")
    if parent:
        client = mlflow.MlflowClient()
        for name, value in metrics.items():
            client.log_metric(parent, name, value)


def stage_seconds(run) -> dict[str, float]:
    """Wall seconds of each finished stage run under `run`'s variant parent (the latest run
    of each stage), in the order they started: the report's stage times."""
    import mlflow

    parent = run.data.tags.get("mlflow.parentRunId")
    if not parent:
        return {}
    found = mlflow.MlflowClient().search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}' and "
        f"tags.`{ROLE_TAG}` = 'stage' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"], max_results=1000)
    latest = {r.info.run_name: r for r in found}  # ascending: the last one of a name wins
    ordered = sorted(latest.values(), key=lambda r: r.info.start_time)
    return {r.info.run_name: (r.info.end_time - r.info.start_time) / 1000 for r in ordered}


# MLflow's UI opens a view saved as the experiment tag `mlflow.sharedViewState.<key>` (what
# its "Share" button writes) when the link says ?viewStateShareKey=<key>: recall saves one
# whose columns are the headline metrics, so the runs table shows them, not Dataset/Source.
HEADLINE_VIEW = "recall-headline"
SHARED_VIEW_TAG = "mlflow.sharedViewState."


def headline_columns() -> list[str]:
    """The runs table's columns in MLflow's own key format: each method's test accuracy and
    the study's scalars, under the names analyze logs (and `dvc exp show` prints)."""
    from recall.study_config import METHODS

    return ([f"metrics.`test.{m}`" for m in ("base", *METHODS)]
            + [f"metrics.`study.{k}`" for k in ("chance_floor", "judge_agreement", "minutes")])


def share_headline_view(experiment_id: str) -> str:
    """Save the headline runs view on the experiment; returns the key its link names."""
    import mlflow

    state = {"selectedColumns": headline_columns(), "runsExpanded": {}}
    mlflow.MlflowClient().set_experiment_tag(experiment_id, SHARED_VIEW_TAG + HEADLINE_VIEW,
                                             json.dumps(state))
    return HEADLINE_VIEW


def runs_url(ui: str, experiment: str, view: str | None = None) -> str:
    """The experiment's training-runs table in the MLflow UI at `ui`, in a shared `view`.

    >>> runs_url("http://127.0.0.1:5000/", "3")
    'http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning'
    >>> runs_url("http://h:5000", "3", "recall-headline")
    'http://h:5000/#/experiments/3/runs?viewStateShareKey=recall-headline&workflowType=machine_learning'
    """
    # 3.17 reads the share key on the runs tab's own route only (checked in chromium).
    shared = f"/runs?viewStateShareKey={view}&" if view else "?"
    return f"{ui.rstrip('/')}/#/experiments/{experiment}{shared}{TRAINING_VIEW}"


def compare_url(ui: str, experiment: str, run_ids: list[str]) -> str:
    """MLflow's compare view of `run_ids` (e.g. two variants' parent runs).

    >>> compare_url("http://h:5000", "1", ["a", "b"])
    'http://h:5000/#/compare-runs?runs=%5B%22a%22%2C%22b%22%5D&experiments=%5B%221%22%5D&workflowType=machine_learning'
    """
    import json
    from urllib.parse import quote

    runs = quote(json.dumps(run_ids, separators=(",", ":")))
    return (f"{ui.rstrip('/')}/#/compare-runs?runs={runs}&experiments="
            f"{quote(json.dumps([experiment]))}&{TRAINING_VIEW}")


def variant_runs(tracking: str, experiment_name: str) -> tuple[str, list[str]]:
    """The experiment's id and its variants' parent run ids, newest first."""
    import mlflow

    mlflow.set_tracking_uri(tracking)
    exp = mlflow.get_experiment_by_name(experiment_name)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment_name!r} at {tracking}: run a stage first")
    found = mlflow.search_runs([exp.experiment_id], output_format="list",
                               filter_string=f"tags.`{ROLE_TAG}` = 'variant'",
                               order_by=["attributes.start_time DESC"])
    return exp.experiment_id, [r.info.run_id for r in found]


WORKSPACE_ARTIFACTS = "workspace"  # a variant's dvc.lock and uncached outputs (recall fetch)


def publish_workspace(params: Params, files: Sequence[Path]) -> str:
    """Log `files` (the workspace's dvc.lock and the outputs DVC does not cache, paths
    relative to the checkout) under `workspace/` of the variant's parent run, replacing what
    an earlier Job logged there; returns that run's id. How a cluster run's results reach a
    laptop: `recall fetch RUN_ID` (recall.workspace)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(params))
    env = environment()
    exp_id = experiment_id(mlflow, params.experiment.name)
    parent = _parent_run_id(mlflow, exp_id, pipeline_key(params, env["commit"]), params, env)
    client = mlflow.MlflowClient()
    for path in files:
        where = Path(WORKSPACE_ARTIFACTS, path.parent) if path.parent != Path(".") else None
        client.log_artifact(parent, str(path), artifact_path=str(where or WORKSPACE_ARTIFACTS))
    return parent
