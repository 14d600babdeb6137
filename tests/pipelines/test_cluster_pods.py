"""The rendered pods, run as local processes under uid 1000 (tests/pods.py): MLflow with its
artifacts in S3, the judge behind its Service, and a trainer Job at micro scale whose
outputs must reach the workspace volume, the DVC remote and the MLflow artifact store.

S3 is moto's server mode. After the trainer Job, a fresh clone with the Job's lock pulls
the outputs from the DVC remote and finds `dvc status` clean.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import httpx
import pytest
import yaml
from conftest import ROOT, micro_params_dict
from pod_cluster import (
    KEYS,
    NEEDS_ROOT,
    OVERLAY,
    image_of,
    job_started,
    judge_pod,
    run_job,
    seed_workspace,
)
from pods import cluster_dns, kill_pod

from recall.cluster import job_templates
from recall.config import params_from_dict
from recall.staging import weights_digest
from recall.submission import submission
from recall.workspace import remote_commands

pytestmark = [pytest.mark.slow, pytest.mark.ci_required, NEEDS_ROOT]


def test_mlflow_answers_pods_by_service_name_and_stores_artifacts_in_s3(mlflow_pod, cluster,
                                                                         tmp_path):
    url, port = mlflow_pod
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(api, headers={"Host": f"mlflow:{port}"}).status_code == 200
    # The old rendering's mistake (a host without its port) would be refused:
    assert httpx.get(api, headers={"Host": "mlflow"}).status_code == 403
    import mlflow

    from recall.tracking import experiment_id

    mlflow.set_tracking_uri(f"http://mlflow:{port}")
    (tmp_path / "note.txt").write_text("from a pod\n")
    with cluster_dns({"mlflow": "127.0.0.1"}):
        exp = experiment_id(mlflow, "pod-check")
        assert mlflow.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_artifact(str(tmp_path / "note.txt"))
    keys = [o["Key"] for o in cluster["s3"].list_objects_v2(Bucket="recall-mlflow")["Contents"]]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/note.txt") for k in keys), keys


def test_judge_pod_serves_the_staged_judge_through_its_service(cluster, toy_judge):
    from recall.judge.client import LLMJudge
    from recall.judge.interface import JudgeRequest

    model_dir, world, params = toy_judge
    staged = cluster["root"] / "judge-volume"
    shutil.copytree(model_dir, staged / "models/judge")
    subprocess.run(["chown", "-R", "1000:1000", str(staged)], check=True)
    with judge_pod(cluster, staged) as (port, container):
        assert "--model=models/judge" in container["args"]
        cfg = params.judge.__class__(**{**params.judge.__dict__, "cache": "", "fast_path": False})
        with cluster_dns({"judge": "127.0.0.1"}):
            judge = LLMJudge(cfg, f"http://judge:{port}", "models/judge")
            items = list(world.items)[:8]
            verdicts = judge.judge([JudgeRequest(it.question, tuple(it.answers), it.answers[0])
                                    for it in items])
        assert all(v.value in (0, 1) for v in verdicts), verdicts
    assert "unrecognized arguments" not in (cluster["root"] / "judge.log").read_text()


def test_trainer_job_writes_to_the_workspace_the_remote_and_mlflow(cluster, mlflow_pod, tmp_path,
                                                                    micro_repo):
    micro = micro_params_dict()
    # train@grpo's params change: a learning rate that makes both seeds train again (a seed
    # finished under the same inputs would be kept, recall.study.finished_summary); the
    # micro GRPO saves a checkpoint every 2 of its steps.
    micro["study"].update({"seeds": [0, 1], "sample_seeds": [0]})
    micro["grpo"]["learning_rate"] = micro["grpo"]["learning_rate"] * 2
    params = params_from_dict(micro)
    sub = submission(job_templates(params, OVERLAY), params, "train@grpo")
    seed_workspace(cluster["volumes"]["workspace"], micro_repo)
    ws = cluster["volumes"]["workspace"]
    left, seed0 = _kill_the_trainer_in_seed_1(cluster, sub, micro)
    # Resubmitted (a new pod: the image's files fresh, the volumes as the kill left them).
    log = run_job(cluster, sub, image_of(cluster["root"] / "trainer-app", micro), "trainer")
    assert "grpo/seed0: kept" in log and "grpo/seed1: kept" not in log
    metrics = json.loads((ws / "metrics/train_grpo.json").read_text())
    assert metrics["seed1"]["resumed_from"] == f"checkpoints/grpo/seed1/{left}"
    assert metrics["seed1"]["steps"] == metrics["seed0"]["steps"] > int(left.split("-")[1])
    assert metrics["seed0"]["resumed_from"] is None
    assert (weights_digest(ws / "models/grpo/seed0"),
            (ws / "runs/grpo/seed0/finished.json").read_bytes()) == seed0
    # The stage whose params changed runs; what it needs is the workspace's, up to date.
    # (split reruns too, to the same output: the Job ships params with every default
    # written out, so its `data` section differs from the study's as text.)
    ran = re.findall(r"Running stage '([^']+)'", log)
    assert "train@grpo" in ran and not {"base_model", "judge", "sample@base"} & set(ran), ran

    assert (ws / "models/grpo/seed0/config.json").is_file()
    lock = yaml.safe_load((ws / "state/dvc.lock").read_text())
    assert "train@grpo" in lock["stages"]
    assert all(p.stat().st_uid == 1000 for p in (ws / "models/grpo").rglob("*"))
    dvc_objects = cluster["s3"].list_objects_v2(Bucket="recall-dvc").get("KeyCount", 0)
    assert dvc_objects > 10

    import mlflow

    client = mlflow.MlflowClient(mlflow_pod[0])
    exp = client.get_experiment_by_name(params.experiment.name)
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'train@grpo'")
    # The killed pod's run cannot end itself: it stays RUNNING (README, "Run on a cluster").
    assert sorted(r.info.status for r in runs) == ["FINISHED", "RUNNING"]
    runs = [r for r in runs if r.info.status == "FINISHED"]
    assert runs[0].info.artifact_uri.startswith("mlflow-artifacts:")
    s3_keys = [o["Key"] for o in cluster["s3"].list_objects_v2(
        Bucket="recall-mlflow", Prefix="artifacts/")["Contents"]]
    assert any(runs[0].info.run_id in k for k in s3_keys)

    _laptop_takes_the_results(cluster, mlflow_pod, sub, log, tmp_path / "clone")


def _kill_the_trainer_in_seed_1(cluster, sub, micro) -> tuple[str, tuple]:
    """The trainer pod SIGKILLed once seed 1 has a complete checkpoint (seed 0 finished):
    the checkpoint left, and seed 0's weights digest and finished.json."""
    ckpts = cluster["volumes"]["checkpoints"] / "grpo/seed1"
    app = image_of(cluster["root"] / "killed-app", micro)
    with job_started(cluster, sub, app, "killed") as proc:
        deadline = time.monotonic() + 1500
        while not list(ckpts.glob("checkpoint-*/trainer_state.json")):
            log = (cluster["root"] / "killed-main.log").read_text()
            assert proc.poll() is None, log[-6000:]
            assert time.monotonic() < deadline, "seed 1 wrote no checkpoint"
            time.sleep(0.1)
        kill_pod(proc)
    done = [p.parent.name for p in ckpts.glob("checkpoint-*/trainer_state.json")]
    assert done, "seed 1 finished before the kill"
    last = max(done, key=lambda name: int(name.split("-")[1]))
    ws = cluster["volumes"]["workspace"]
    return last, (weights_digest(ws / "models/grpo/seed0"),
                  (ws / "runs/grpo/seed0/finished.json").read_bytes())


def _laptop_takes_the_results(cluster, mlflow_pod, sub, log: str, clone) -> None:
    """A laptop: a fresh checkout of the same code with the Job's params and lock takes the
    Job's results: cached outputs from the DVC remote, the rest from MLflow."""
    from recall.micro_model import scratch_repo

    ws = cluster["volumes"]["workspace"]
    clone.mkdir()
    scratch_repo(ROOT, clone, yaml.safe_load(sub.params["data"]["params.yaml"]))
    shutil.copyfile(ws / "state/dvc.lock", clone / "dvc.lock")
    env = {**os.environ, **KEYS, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for cmd in remote_commands("s3://recall-dvc/cache", cluster["s3_url"]) + [
            ["dvc", "pull", "-r", "cluster", "--with-deps", "train@grpo"]]:
        proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # Outputs DVC does not cache (metrics, plots, reports) and the lock come from the MLflow
    # run the Job logged them to, by the one command the README gives; the checkpoint
    # directory stays on its volume (copied here only for `dvc status`).
    run_id = re.search(r"outputs logged to MLflow run (\w+)", log).group(1)
    fetched = subprocess.run(["recall", "fetch", run_id, "--remote", "s3://recall-dvc/cache"],
                             cwd=clone, env={**env, "MLFLOW_TRACKING_URI": mlflow_pod[0],
                                             "AWS_ENDPOINT_URL": cluster["s3_url"]},
                             capture_output=True, text=True)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert (clone / "metrics/train_grpo.json").read_bytes() == \
        (ws / "metrics/train_grpo.json").read_bytes()
    assert (clone / "dvc.lock").read_bytes() == (ws / "state/dvc.lock").read_bytes()
    shutil.copytree(cluster["volumes"]["checkpoints"] / "grpo", clone / "checkpoints/grpo")
    status = subprocess.run(["dvc", "status", "train@grpo"], cwd=clone, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    assert (clone / "models/grpo/seed0/config.json").read_bytes() == \
        (ws / "models/grpo/seed0/config.json").read_bytes()
