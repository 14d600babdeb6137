"""Optuna sweeps over params.yaml keys: GRPO from the base model, scored by val greedy accuracy.

The study lives in an RDB storage (Postgres; SQLite under parallel workers fails with
"database is locked", optuna#820) with heartbeats: a worker killed mid-trial stops beating,
the next trial start anywhere marks its trial FAIL and re-queues its params
(RetryHeartbeatStaleTrialCallback). Each trial is an MLflow run nested under the study's run.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Sequence

import optuna
from optuna.trial import TrialState

from recall.config import Params, flat_dict, with_overrides
from recall.contract import QAItem
from recall.platform_config import SearchDim, SweepConfig
from recall.tracking import environment_tags, experiment_id, tracking_uri

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_url(cfg: SweepConfig) -> str:
    url = os.environ.get(cfg.storage_env, "")
    if not url:
        raise RuntimeError(f"sweep storage: set ${cfg.storage_env} to an RDB URL, e.g. "
                           f"postgresql+psycopg://user:password@host:5432/optuna")
    return url


def rdb_storage(cfg: SweepConfig, url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        url, heartbeat_interval=cfg.heartbeat_interval_s, grace_period=cfg.grace_period_s,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=cfg.max_retry))


def _search(cfg: SweepConfig, seed: int) -> dict:
    return {"sampler": optuna.samplers.TPESampler(seed=seed),
            "pruner": optuna.pruners.MedianPruner(n_warmup_steps=cfg.pruner_warmup_steps)}


def suggest(trial: optuna.Trial, space: dict[str, SearchDim]) -> dict[str, object]:
    """One value per dotted params key, drawn from its declared dimension."""
    values: dict[str, object] = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(dim.choices))
        elif dim.type == "int":
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return values


def create_study(params: Params, url: str) -> optuna.Study:
    """Create (or load) the study and its MLflow parent run; the run id is a study attribute."""
    import mlflow

    cfg = params.sweep
    study = optuna.create_study(
        study_name=cfg.study, storage=rdb_storage(cfg, url), direction="maximize",
        load_if_exists=True, **_search(cfg, cfg.sampler_seed))
    if "mlflow_run_id" not in study.user_attrs:
        mlflow.set_tracking_uri(tracking_uri(params))
        with mlflow.start_run(run_name=f"sweep:{cfg.study}",
                              experiment_id=experiment_id(mlflow, params.experiment.name),
                              tags={"recall.role": "study", "optuna.study": cfg.study,
                                    **environment_tags()}) as run:
            mlflow.log_params({k: v for k, v in flat_dict(params).items()
                               if not k.startswith("sweep.space")})
        study.set_user_attr("mlflow_run_id", run.info.run_id)
    return study


def objective(trial: optuna.Trial, params: Params, base_dir: Path, items: Sequence[QAItem],
              parent_run_id: str) -> float:
    """GRPO with the trial's params; intermediate val accuracy is reported for pruning."""
    import mlflow
    from transformers import AutoTokenizer

    from recall.compute import resolve
    from recall.engines import engine_for
    from recall.evaluation import GreedyEvaluation, greedy_by_split
    from recall.judge.factory import open_judge
    from recall.training import train_grpo

    trial_params = with_overrides(params, suggest(trial, params.sweep.space))
    train = [it for it in items if it.split == "train"]
    val = [it for it in items if it.split == "val"]

    def report(step: int, acc: float) -> None:
        trial.report(acc, step)
        mlflow.log_metric("val_greedy_acc", acc, step=step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val accuracy {acc:.3f} at step {step}")

    mlflow.set_tracking_uri(tracking_uri(params))
    with mlflow.start_run(run_name=f"trial-{trial.number}", parent_run_id=parent_run_id,
                          experiment_id=experiment_id(mlflow, params.experiment.name),
                          tags={"recall.role": "trial", "optuna.trial": str(trial.number),
                                "recall.worker": f"{socket.gethostname()}:{os.getpid()}"}), \
            open_judge(trial_params.judge, compute=trial_params.compute) as judge, tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params(trial.params)
        tokenizer = AutoTokenizer.from_pretrained(base_dir, padding_side="left")
        evaluation = GreedyEvaluation(val, judge, tokenizer, trial_params.rollout,
                                      params.sweep.eval_every_steps, report,
                                      trial_params.sampling.max_batch_tokens)
        try:
            train_grpo(base_dir, train, judge, trial_params.grpo, trial_params.rollout,
                       Path(scratch) / "checkpoints", Path(scratch) / "model",
                       seed=params.experiment.seed, compute=resolve(trial_params.compute),
                       report_to=(), callbacks=[evaluation],
                       max_failure_rate=params.judge.max_failure_rate)
        except optuna.TrialPruned:
            mlflow.set_tag("optuna.state", "PRUNED")
            raise
        # The run's one evaluation engine, as for every other model.
        with engine_for(trial_params, Path(scratch) / "model") as engine:
            acc = greedy_by_split(engine, judge, val, trial_params.rollout)["val"]
        mlflow.log_metric("val_greedy_acc_final", acc)
        mlflow.set_tag("optuna.state", "COMPLETE")
    return acc


def run_worker(params: Params, url: str, base_dir: Path, items: Sequence[QAItem]) -> None:
    """Run trials until the study has `sweep.n_trials` finished ones and none left RUNNING."""
    cfg = params.sweep
    # A seed per worker, so that parallel workers do not propose the same params.
    study = optuna.load_study(study_name=cfg.study, storage=rdb_storage(cfg, url),
                              **_search(cfg, cfg.sampler_seed + os.getpid()))
    parent = study.user_attrs["mlflow_run_id"]
    enough = optuna.study.MaxTrialsCallback(cfg.n_trials, states=DONE)
    while True:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting or len(study.get_trials(deepcopy=False, states=DONE)) < cfg.n_trials:
            study.optimize(lambda t: objective(t, params, base_dir, items, parent),
                           callbacks=[enough], gc_after_trial=True)
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        # Another worker's trial is running, or died after our last trial start: wait, and
        # fail it once its heartbeat is stale, so that it is retried and never left RUNNING.
        time.sleep(cfg.heartbeat_interval_s)
        optuna.storages.fail_stale_trials(study)


def summary(study: optuna.Study) -> dict:
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {"best_value": study.best_value, "best_params": study.best_params,
            "states": {s: states.count(s) for s in sorted(set(states))}}
