"""Optuna sweeps against a real PostgreSQL: two local workers, and a worker killed mid-trial."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
import yaml
from conftest import ROOT, micro_params_dict
from optuna.trial import FixedTrial, TrialState

from recall.config import params_from_dict
from recall.contract import read_items, write_jsonl
from recall.platform_config import SearchDim
from recall.sweep import rdb_storage, suggest


def test_suggest_draws_each_dimension_type():
    space = {"grpo.learning_rate": SearchDim("float", 1e-6, 1e-4, log=True),
             "grpo.group_size": SearchDim("categorical", choices=(4, 8)),
             "grpo.epochs": SearchDim("int", 1, 3)}
    values = suggest(FixedTrial({"grpo.learning_rate": 3e-5, "grpo.group_size": 8,
                                 "grpo.epochs": 2}), space)
    assert values == {"grpo.learning_rate": 3e-5, "grpo.group_size": 8, "grpo.epochs": 2}
    study = optuna.create_study()
    for _ in range(5):
        drawn = suggest(study.ask(), space)
        assert 1e-6 <= drawn["grpo.learning_rate"] <= 1e-4 and drawn["grpo.group_size"] in (4, 8)


@pytest.fixture
def sweep_env(tiny_model, tmp_path, postgres, request):
    """A params file, items and base model for micro sweeps, and the env pointing at Postgres."""
    model_dir, world, _ = tiny_model
    data = micro_params_dict()
    data["judge"]["backend"] = "rule"
    data["sweep"].update({"study": "t", "n_trials": 8, "eval_every_steps": 1,
                          "pruner_warmup_steps": 1, "heartbeat_interval_s": 1,
                          "grace_period_s": 3})
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(data))
    write_jsonl(tmp_path / "items.jsonl", world.items)
    url = postgres(request.node.name.replace("[", "_").replace("]", "").lower())
    env = {**os.environ, "RECALL_OPTUNA_STORAGE": url, "PYTHONPATH": str(ROOT),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    cli = [sys.executable, "-m", "recall.cli", "--params", str(params_path), "sweep"]
    paths = ["--base", str(model_dir), "--items", str(tmp_path / "items.jsonl")]
    return params_from_dict(data), url, env, cli, paths, tmp_path


def _trials(params, url):
    study = optuna.load_study(study_name=params.sweep.study,
                              storage=rdb_storage(params.sweep, url))
    return study.get_trials()


@pytest.mark.slow
def test_two_local_workers_finish_the_study(sweep_env):
    params, url, env, cli, paths, tmp_path = sweep_env
    proc = subprocess.run([*cli, "run", "--workers", "2", *paths], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.rindex("{\n  \"best_value\""):])
    assert set(summary["best_params"]) == set(params.sweep.space)
    trials = _trials(params, url)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # A worker starts a new trial only while finished + running fall short of 8; two workers
    # checking in the same instant can each start the eighth (recall.sweep).
    assert 8 <= len(done) <= 9 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert all(0.0 <= t.value <= 1.0 for t in done if t.state == TrialState.COMPLETE)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=[params.experiment.name], output_format="list")
    study_run = next(r for r in runs if r.data.tags.get("recall.role") == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study_run.info.run_id]
    assert len(children) == len(trials)
    assert {r.data.tags["recall.role"] for r in children} == {"trial"}
    assert len({r.data.tags["recall.worker"] for r in children}) == 2  # both workers took trials
    assert any("val_greedy_acc" in r.data.metrics for r in children)
    assert {r.info.status for r in children} == {"FINISHED"}
    assert json.loads(study_run.data.tags["best_params"]) == summary["best_params"]
    assert study_run.data.metrics["best_val_greedy_acc"] == summary["best_value"]


@pytest.mark.slow
def test_worker_killed_mid_trial_is_failed_and_retried(sweep_env):
    params, url, env, cli, paths, tmp_path = sweep_env
    subprocess.run([*cli, "create"], env=env, check=True, cwd=tmp_path, capture_output=True)
    victim = subprocess.Popen([*cli, "worker", *paths], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    # Mid-trial: its params are drawn and GRPO is under way.
    while not [t for t in _trials(params, url) if t.state == TrialState.RUNNING and t.params]:
        assert victim.poll() is None and time.monotonic() < deadline, "no trial started"
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = next(t for t in _trials(params, url) if t.state == TrialState.RUNNING)
    proc = subprocess.run([*cli, "worker", *paths], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    trials = _trials(params, url)
    assert trials[killed.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retried and retried[0].params == killed.params
    assert retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 8
    # The dead worker's MLflow run for the trial was ended by the worker that failed it.
    runs = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert runs.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert runs.get_run(retried[0].user_attrs["mlflow_run_id"]).info.status == "FINISHED"


@pytest.mark.slow
def test_a_trial_on_two_processes_goes_through_the_launcher_and_rank_0_reports(sweep_env):
    """compute.num_processes 2: each trial is launched as train@grpo is (torchrun on CPU);
    rank 0 alone reports to Optuna and MLflow, and the worker keeps the heartbeat."""
    params, url, env, cli, paths, tmp_path = sweep_env
    data = yaml.safe_load((tmp_path / "params.yaml").read_text())
    data["sweep"].update({"n_trials": 2})
    data["compute"].update({"num_processes": 2, "device": "cpu"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run([*cli, "run", "--workers", "1", *paths], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("--nproc_per_node 2") == 2, proc.stdout[-3000:]
    trials = _trials(params, url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    n_train = sum(it.split == "train" for it in read_items(tmp_path / "items.jsonl"))
    steps = list(range(1, math.ceil(n_train / params.grpo.prompts_per_step)
                       * params.grpo.epochs + 1))  # the single-process step count
    for t in trials:
        # Every step evaluated, reported once (by rank 0 alone), to Optuna and to MLflow.
        assert sorted(t.intermediate_values) == steps
        history = client.get_metric_history(t.user_attrs["mlflow_run_id"], "val_greedy_acc")
        assert sorted(m.step for m in history) == steps
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == \
            [t.intermediate_values[s] for s in steps]
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.metrics["val_greedy_acc_final"] == t.value


def test_a_worker_without_its_storage_stops_with_one_line(tmp_path):
    """The study's Postgres down (or gone): one line naming where, never the password, and
    what to rerun; no traceback."""
    from recall.judge.server import free_port

    params, data = tmp_path / "params.yaml", micro_params_dict()
    data["judge"]["backend"] = "rule"
    params.write_text(yaml.safe_dump(data))
    url = f"postgresql+psycopg://recall:s3cret@127.0.0.1:{free_port()}/optuna"
    proc = subprocess.run([sys.executable, "-m", "recall.cli", "--params", str(params), "sweep",
                           "worker"], env={**os.environ, "RECALL_OPTUNA_STORAGE": url,
                                           "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"storage 127.0.0.1:{url.rsplit(':', 1)[1]} does not answer" in lines[0]
    assert "s3cret" not in proc.stderr and "rerun `recall sweep worker`" in lines[0]


@pytest.mark.slow
def test_a_prune_answer_stops_training_at_that_step(sweep_env, monkeypatch):
    """The main process's prune answer ends training for every rank at that step (here one
    process): no further step, no further report, and the outcome left for the worker."""
    from pathlib import Path

    from recall.sweep import OUTCOME, train_trial

    params, url, env, cli, paths, tmp_path = sweep_env
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    run_id = client.create_run(client.create_experiment("prune")).info.run_id

    class PrunesAtItsSecondReport:
        steps: list[int] = []

        def report(self, value, step):
            self.steps.append(step)

        def should_prune(self):
            return len(self.steps) == 2

    trial = PrunesAtItsSecondReport()
    stopped = train_trial(trial, params, Path(paths[1]), read_items(Path(paths[3])),
                          tmp_path / "scratch", run_id)
    assert stopped == 2 and trial.steps == [1, 2]
    assert json.loads((tmp_path / "scratch" / OUTCOME).read_text()) == {"stopped_at": 2}
    assert [m.step for m in client.get_metric_history(run_id, "val_greedy_acc")] == [1, 2]
