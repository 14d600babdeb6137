"""Optuna sweeps over params.yaml keys: GRPO from the base model, scored by val greedy accuracy.

The study lives in an RDB storage (Postgres; SQLite under parallel workers fails with
"database is locked", optuna#820) with heartbeats: a worker killed mid-trial stops beating,
the next trial start anywhere marks its trial FAIL, re-queues its params
(RetryHeartbeatStaleTrialCallback) and ends the trial's MLflow run as KILLED. Each trial is an
MLflow run nested under the study's run; the study's run records the best trial at the end.

A trial trains as `train@grpo` does: in this process for one training process, else under
the same launcher (`recall.launcher`, `compute.num_processes` ranks), where rank 0 owns the
Optuna trial (it reports and asks whether to prune) and every rank follows its answer. The
worker process keeps the trial's heartbeat and evaluates the trained model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Sequence
from unittest import mock

import optuna
import yaml
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from recall.config import Params, as_dict, flat_dict, with_overrides
from recall.contract import QAItem, read_items
from recall.errors import StorageUnreachable
from recall.platform_config import SearchDim, SweepConfig
from recall.tracking import environment_tags, experiment_id, tracking_uri

# Heartbeats and stale-trial retries are Optuna's "experimental" API, used on purpose: one
# warning per use in every worker's log says nothing the module docstring does not.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
TRIAL_RUN = "mlflow_run_id"  # a trial's user attribute: its MLflow run
OUTCOME = "outcome.json"  # what a launched trial's rank 0 leaves for the worker


def storage_url(cfg: SweepConfig) -> str:
    url = os.environ.get(cfg.storage_env, "")
    if not url:
        raise RuntimeError(f"sweep storage: set ${cfg.storage_env} to an RDB URL, e.g. "
                           f"postgresql+psycopg://user:password@host:5432/optuna")
    return url


class SweepStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, riding out a short database outage where it safely can.

    A restarted Postgres leaves the pool's sockets dead: connections are checked before use
    (`pool_pre_ping`). Optuna's heartbeat thread ends at its first error, after which the
    trial would be failed as stale though it is still training: a missed beat is a warning,
    and the next one retries."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except optuna.exceptions.StorageInternalError as err:
            print(f"recall sweep: heartbeat of trial id {trial_id} not recorded "
                  f"({_first_line(err.__cause__ or err)}); the next one retries",
                  file=sys.stderr, flush=True)


class EndStaleRun:
    """The heartbeat-stale callback: re-queue the trial's params (Optuna's retry callback)
    and end the dead worker's MLflow run for the trial as KILLED, so none stays RUNNING."""

    def __init__(self, max_retry: int, tracking: str | None):
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.tracking = tracking

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.retry(study, trial)
        run_id = trial.user_attrs.get(TRIAL_RUN)
        if run_id and self.tracking:
            import mlflow

            mlflow.MlflowClient(self.tracking).set_terminated(run_id, "KILLED")


def rdb_storage(cfg: SweepConfig, url: str, tracking: str | None = None) -> SweepStorage:
    """The study's storage; `tracking`: the MLflow URI where stale trials' runs are ended."""
    return SweepStorage(
        url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=cfg.heartbeat_interval_s,
        grace_period=cfg.grace_period_s,
        heartbeat_stale_trial_callback=EndStaleRun(cfg.max_retry, tracking))


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


def _trial_run(trial: optuna.Trial, params: Params, parent_run_id: str) -> str:
    """The trial's MLflow run, nested under the study's, its id kept on the trial."""
    import mlflow
    from mlflow.entities import Param

    mlflow.set_tracking_uri(tracking_uri(params))
    client, worker = mlflow.MlflowClient(), f"{socket.gethostname()}:{os.getpid()}"
    run = client.create_run(experiment_id(mlflow, params.experiment.name),
                            run_name=f"trial-{trial.number}",
                            tags={"mlflow.parentRunId": parent_run_id, "recall.role": "trial",
                                  "optuna.trial": str(trial.number), "recall.worker": worker})
    trial.set_user_attr(TRIAL_RUN, run.info.run_id)
    trial.set_user_attr("worker", worker)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in trial.params.items()])
    return run.info.run_id


def objective(trial: optuna.Trial, params: Params, base_dir: Path,
              items: tuple[Sequence[QAItem], Path], parent_run_id: str) -> float:
    """One trial: GRPO with the trial's params (pruned on intermediate val accuracy), then the
    trained model's val greedy accuracy from the run's one evaluation engine. `items`: the
    worker's items, and the file they came from (for launched ranks)."""
    import mlflow

    from recall.engines import engine_for
    from recall.evaluation import greedy_by_split
    from recall.judge.factory import open_judge

    trial_params = with_overrides(params, suggest(trial, params.sweep.space))
    run_id = _trial_run(trial, params, parent_run_id)
    client, status = mlflow.MlflowClient(tracking_uri(params)), "FAILED"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            stopped_at = train(trial, trial_params, base_dir, items, Path(scratch), run_id)
            if stopped_at is not None:
                client.set_tag(run_id, "optuna.state", "PRUNED")
                status = "FINISHED"
                raise optuna.TrialPruned(f"pruned at step {stopped_at}")
            val = [it for it in items[0] if it.split == "val"]
            with open_judge(trial_params.judge, compute=trial_params.compute) as judge, \
                    engine_for(trial_params, Path(scratch) / "model") as engine:
                acc = greedy_by_split(engine, judge, val, trial_params.rollout)["val"]
        client.log_metric(run_id, "val_greedy_acc_final", acc)
        client.set_tag(run_id, "optuna.state", "COMPLETE")
        status = "FINISHED"
        return acc
    finally:
        client.set_terminated(run_id, status)


def train(trial: optuna.Trial, params: Params, base_dir: Path,
          items: tuple[Sequence[QAItem], Path], scratch: Path, run_id: str) -> int | None:
    """Train the trial's GRPO into `scratch`/model, in this process or launched on
    `compute.num_processes` ranks; the step it was pruned at, or None."""
    from recall.compute import resolve
    from recall.judge.server import free_port
    from recall.launcher import launch_command

    compute, (loaded, items_path) = params.compute, items
    if compute.num_processes * compute.num_machines == 1:
        return train_trial(trial, params, base_dir, loaded, scratch, run_id)
    params_file = scratch / "params.yaml"
    params_file.write_text(yaml.safe_dump(as_dict(params), sort_keys=False))
    (scratch / OUTCOME).unlink(missing_ok=True)
    # A sweep worker is one node: its own rendezvous port, beside other workers' launches.
    cmd = launch_command(compute, resolve(compute), [
        "-m", "recall.cli", "--params", str(params_file), "sweep", "trial",
        "--trial-id", str(trial._trial_id), "--run-id", run_id, "--base", str(base_dir),
        "--items", str(items_path), "--out", str(scratch)], port=free_port())
    print(f"recall sweep: trial {trial.number} on {compute.num_processes * compute.num_machines}"
          f" processes: {' '.join(cmd)}", flush=True)
    code = subprocess.call(cmd)
    if code:
        raise RuntimeError(f"trial {trial.number}: its launched training exited with {code} "
                           f"(the ranks' output is above)")
    return json.loads((scratch / OUTCOME).read_text())["stopped_at"]


def train_trial(trial: optuna.Trial | None, params: Params, base_dir: Path,
                items: Sequence[QAItem], scratch: Path, run_id: str) -> int | None:
    """GRPO on the train items into `scratch`/model, on this rank. Every
    `sweep.eval_every_steps` steps the main process reports val greedy accuracy to `trial`
    and the trial's MLflow run and asks whether to prune; every rank follows (the step it
    stopped at is returned, and written to `scratch`/outcome.json by the main process)."""
    import mlflow
    from transformers import AutoTokenizer

    from recall.compute import is_main_process, resolve
    from recall.evaluation import GreedyEvaluation
    from recall.judge.factory import open_judge
    from recall.training import train_grpo

    client = mlflow.MlflowClient(tracking_uri(params))

    def report(step: int, acc: float) -> bool:
        trial.report(acc, step)
        client.log_metric(run_id, "val_greedy_acc", acc, step=step)
        return trial.should_prune()

    train_items = [it for it in items if it.split == "train"]
    val = [it for it in items if it.split == "val"]
    with open_judge(params.judge, compute=params.compute) as judge:
        tokenizer = AutoTokenizer.from_pretrained(base_dir, padding_side="left")
        evaluation = GreedyEvaluation(val, judge, tokenizer, params.rollout,
                                      params.sweep.eval_every_steps, report,
                                      params.sampling.max_batch_tokens)
        train_grpo(base_dir, train_items, judge, params.grpo, params.rollout,
                   scratch / "checkpoints", scratch / "model", seed=params.experiment.seed,
                   compute=resolve(params.compute), report_to=(), callbacks=[evaluation],
                   max_failure_rate=params.judge.max_failure_rate)
    if is_main_process():
        (scratch / OUTCOME).write_text(json.dumps({"stopped_at": evaluation.stopped_at}))
    return evaluation.stopped_at


def run_trial_rank(params: Params, url: str, trial_id: int, run_id: str, base_dir: Path,
                   items_path: Path, scratch: Path) -> None:
    """One launched rank of a trial (`recall sweep trial`): rank 0 owns the Optuna trial."""
    from recall.compute import is_main_process

    trial = None
    if is_main_process():
        cfg = params.sweep
        study = optuna.load_study(study_name=cfg.study, storage=rdb_storage(cfg, url),
                                  **_search(cfg, cfg.sampler_seed))
        trial = optuna.trial.Trial(study, trial_id)
    train_trial(trial, params, base_dir, read_items(items_path), scratch, run_id)


def run_worker(params: Params, url: str, base_dir: Path, items_path: Path) -> None:
    """Run trials until the study has `sweep.n_trials` finished ones and none left RUNNING;
    a lost storage ends the worker with one line (StorageUnreachable), for a rerun to resume."""
    from recall.judge.server import judge_for_children

    cfg = params.sweep
    try:
        # The storage first: a worker that cannot reach it has nothing to serve a judge for.
        # A seed per worker, so that parallel workers do not propose the same params.
        study = optuna.load_study(study_name=cfg.study,
                                  storage=rdb_storage(cfg, url, tracking_uri(params)),
                                  **_search(cfg, cfg.sampler_seed + os.getpid()))
        # One judge server for all of this worker's trials and their ranks, if it serves one.
        with judge_for_children(params.judge, params.compute) as env, \
                mock.patch.dict(os.environ, env):
            _trials_until_done(study, params, base_dir, items_path)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as err:
        where = url.rsplit("@", 1)[-1]  # never the password
        raise StorageUnreachable(
            f"sweep worker: the study's storage {where} does not answer "
            f"({_first_line(err.__cause__ or err)}); finished trials are kept and a trial left "
            f"RUNNING is failed and retried by the next worker: rerun `recall sweep worker` "
            f"(a worker Job's retry does) to resume the study") from err


def _trials_until_done(study: optuna.Study, params: Params, base_dir: Path,
                       items_path: Path) -> None:
    cfg = params.sweep
    parent = study.user_attrs["mlflow_run_id"]
    items = (read_items(items_path), items_path)  # read once for all of this worker's trials
    while True:
        optuna.storages.fail_stale_trials(study)
        count = _count(study)
        # A new trial only while the finished and running ones fall short of the count, so
        # that workers do not overshoot it; a re-queued (WAITING) trial is always taken.
        if count["WAITING"] or count["DONE"] + count["RUNNING"] < cfg.n_trials:
            study.optimize(lambda t: objective(t, params, base_dir, items, parent),
                           n_trials=1, gc_after_trial=True)
            continue
        if not count["RUNNING"] and count["DONE"] >= cfg.n_trials:
            break
        # Another worker's trial is running, or died: wait, and fail it once its heartbeat is
        # stale, so that it is retried and never left RUNNING.
        time.sleep(cfg.heartbeat_interval_s)
    record_best(study, params)


def _count(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {"DONE": sum(s in DONE for s in states),
            "RUNNING": states.count(TrialState.RUNNING),
            "WAITING": states.count(TrialState.WAITING)}


def record_best(study: optuna.Study, params: Params) -> None:
    """The best trial on the study's MLflow run (each worker that finishes writes the same)."""
    import mlflow

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return
    client, best = mlflow.MlflowClient(tracking_uri(params)), study.best_trial
    run_id = study.user_attrs["mlflow_run_id"]
    client.log_metric(run_id, "best_val_greedy_acc", best.value)
    client.set_tag(run_id, "best_trial", str(best.number))
    client.set_tag(run_id, "best_params", json.dumps(best.params, sort_keys=True))


def summary(study: optuna.Study) -> dict:
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {"best_value": study.best_value, "best_params": study.best_params,
            "states": {s: states.count(s) for s in sorted(set(states))}}


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
