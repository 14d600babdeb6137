"""`recall sweep submit --workers 2` as pods (tests/pods.py), from the rendered manifests:
Postgres (the real server, run as its image would), MLflow on that Postgres, the judge
Service, the `sweep-create` Job, then the `sweep-worker` Job's two pods. Verdicts go to the
cluster's Postgres cache (the `recall-verdicts` Secret).

One sweep carries the faults, to keep the suite's time down: a worker pod SIGKILLed in the
middle of a trial, then Postgres stopped (as the kubelet stops its pod) and started again
while the other worker trains. The harness has no Job controller: the test starts the
replacement pod a Job with `backoffLimit` would, for each pod that failed. Trial counts and
states are read back from Postgres, run states from MLflow, not from logs.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import optuna
import psutil
import pytest
from conftest import micro_params_dict
from optuna.trial import TrialState
from pod_cluster import NEEDS_ROOT, OVERLAY, image_of, job_started, judge_pod, run_job, seed_workspace
from pods import kill_pod

from recall.cluster import job_templates
from recall.config import params_from_dict
from recall.submission import submission
from recall.sweep import DONE, TRIAL_RUN, rdb_storage

pytestmark = [pytest.mark.slow, pytest.mark.ci_required, NEEDS_ROOT]

N_TRIALS = 4
VERDICTS = "postgresql://recall:testing@postgres:5432/verdicts"


def _sweep_dict(judge_port: int) -> dict:
    micro = micro_params_dict()
    micro["judge"]["base_url"] = f"http://judge:{judge_port}"  # the Service
    # A 10 s grace rides out the 3 s database outage below; a killed worker's trial is
    # failed 10 s after its last beat.
    micro["sweep"].update({"study": "pods", "n_trials": N_TRIALS, "eval_every_steps": 1,
                           "pruner_warmup_steps": 1, "heartbeat_interval_s": 1,
                           "grace_period_s": 10, "max_retry": 1})
    return micro


def _trials(storage, study: str):
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _running_trial_of(storage, study: str, pod, deadline: float):
    """A trial the pod's worker is training (params drawn, its MLflow run open)."""
    while True:
        assert pod.poll() is None, "the worker pod ended before it took a trial"
        pids = {pod.pid, *(p.pid for p in psutil.Process(pod.pid).children(recursive=True))}
        for t in _trials(storage, study):
            worker = t.user_attrs.get("worker", ":0")
            if t.state == TrialState.RUNNING and TRIAL_RUN in t.user_attrs \
                    and int(worker.rsplit(":", 1)[1]) in pids:
                return t
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.3)


def test_a_sweep_on_pods_outlives_a_killed_worker_and_a_postgres_restart(
        cluster, postgres_pod, mlflow_pod, micro_repo):
    restart_postgres, pg_local = postgres_pod
    cluster = {**cluster, "secrets": {**cluster["secrets"],
                                      "recall-verdicts/RECALL_VERDICT_CACHE": VERDICTS}}
    ws = cluster["volumes"]["workspace"]
    seed_workspace(ws, micro_repo)  # models/base, models/judge, data/validated
    root = cluster["root"]
    with judge_pod(cluster, ws) as (port, _), ExitStack() as pods:
        micro = _sweep_dict(port)
        params = params_from_dict(micro)
        templates = job_templates(params, OVERLAY)
        workers = submission(templates, params, "sweep-worker", workers=2)
        assert workers.job["spec"]["parallelism"] == workers.job["spec"]["completions"] == 2
        run_job(cluster, submission(templates, params, "sweep-create"),
                image_of(root / "create-app", micro), "sweep-create")
        storage = rdb_storage(params.sweep, f"{pg_local}/optuna")

        def pod(name: str):
            return pods.enter_context(job_started(cluster, workers,
                                                  image_of(root / f"{name}-app", micro), name))

        w0, w1 = pod("worker0"), pod("worker1")
        deadline = time.monotonic() + 900
        killed = _running_trial_of(storage, "pods", w1, deadline)
        time.sleep(1)  # mid-trial: GRPO under way
        kill_pod(w1)
        _running_trial_of(storage, "pods", w0, deadline)
        restart_postgres(down_s=3)
        retries = [pod("worker1-retry")]  # the Job's replacement for the killed pod
        code = w0.wait(1200)
        log0 = (root / "worker0-main.log").read_text()
        if code:  # the database went away under a storage call: one line, then a retry
            last = log0.strip().splitlines()[-1]
            assert "does not answer" in last and "Traceback" not in log0, log0[-3000:]
            retries.append(pod("worker0-retry"))
        for proc in retries:
            assert proc.wait(1200) == 0, [(root / f"{n}-main.log").read_text()[-3000:]
                                          for n in ("worker1-retry", "worker0-retry")
                                          if (root / f"{n}-main.log").exists()]
    _check_the_study(storage, params, killed, mlflow_pod[0], pg_local)


def _check_the_study(storage, params, killed, mlflow_url: str, pg_local: str) -> None:
    trials = _trials(storage, "pods")
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    done = [t for t in trials if t.state in DONE]
    # A worker starts a trial only while finished + running fall short of the count; two
    # workers checking in the same instant can both start the last one.
    assert N_TRIALS <= len(done) <= N_TRIALS + 1, states
    assert trials[killed.number].state == TrialState.FAIL
    for failed in (t for t in trials if t.state == TrialState.FAIL):  # none lost...
        retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
        assert len(retried) == 1 and retried[0].params == failed.params  # ...none twice
        assert retried[0].state in DONE

    import mlflow

    client = mlflow.MlflowClient(mlflow_url)
    exp = client.get_experiment_by_name(params.experiment.name)
    runs = client.search_runs([exp.experiment_id], "tags.`optuna.study` = 'pods'")
    assert len(runs) == 1
    study_run = runs[0]
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{study_run.info.run_id}'")
    by_id = {r.info.run_id: r for r in children}
    assert len(children) == len(trials)  # one run per trial, the failed ones too
    assert "RUNNING" not in {r.info.status for r in children}
    assert by_id[trials[killed.number].user_attrs[TRIAL_RUN]].info.status == "KILLED"
    assert {by_id[t.user_attrs[TRIAL_RUN]].info.status for t in done} == {"FINISHED"}
    study = optuna.load_study(study_name="pods", storage=storage)
    assert json.loads(study_run.data.tags["best_params"]) == study.best_params
    assert study_run.data.metrics["best_val_greedy_acc"] == study.best_value

    import psycopg

    with psycopg.connect(pg_local.replace("+psycopg", "") + "/verdicts") as db:
        assert db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] > 0
