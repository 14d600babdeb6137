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
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import ROOT, micro_params_dict
from pods import cluster_dns, mount_allowed, mounted, open_up, pod_env, start

from recall.cluster import find, job_templates, render
from recall.config import params_from_dict
from recall.judge.server import free_port, wait_healthy
from recall.submission import submission
from recall.workspace import remote_commands

pytestmark = [pytest.mark.slow, pytest.mark.ci_required,
              pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                                 or not mount_allowed(),
                                 reason="bind mounts (subPath volumes) and setpriv need root")]

OVERLAY = ROOT / "k8s/overlays/test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """S3 (moto), the cluster's ConfigMap pointed at it, volumes, and the pods' home."""
    root = tmp_path_factory.mktemp("cluster")
    open_up(root)
    open_up(Path(os.path.realpath(sys.executable)).parent)  # the interpreter the venv links to
    port = free_port()
    log = (root / "s3.log").open("w")
    s3 = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                           str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_listening(url, s3)
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **{
        k.lower(): v for k, v in KEYS.items()})
    for bucket in ("recall-mlflow", "recall-dvc"):
        client.create_bucket(Bucket=bucket)
    micro = micro_params_dict()
    micro["cluster"]["judge_tensor_parallel"] = 1  # one CPU "GPU" for the micro judge
    services = render(params_from_dict(micro), OVERLAY)
    configmap = dict(find(services, "ConfigMap", "recall-cluster")["data"])
    configmap["AWS_ENDPOINT_URL"] = f"http://s3:{port}"  # "edit for your cluster"
    home = root / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    volumes = {"workspace": root / "workspace", "checkpoints": root / "checkpoints"}
    for v in volumes.values():
        v.mkdir()
        os.chown(v, 1000, 1000)  # fsGroup: the volume root is the pod's group's
    yield dict(root=root, s3=client, s3_url=url, services=services, home=home,
               configmaps={"recall-cluster": configmap}, volumes=volumes,
               hosts={"s3": "127.0.0.1", "mlflow": "127.0.0.1", "judge": "127.0.0.1"},
               secrets={**KEYS, "recall-s3/AWS_ACCESS_KEY_ID": "testing",
                        "recall-s3/AWS_SECRET_ACCESS_KEY": "testing",
                        "recall-mlflow/backend-uri": f"sqlite:///{root}/mlflow/mlflow.db"})
    s3.terminate()
    s3.wait(30)


def _wait_listening(url: str, proc, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the server exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def _image(dest, params: dict):
    """The image's /app: the project copied, owned by the pod's user (Dockerfile)."""
    from recall.micro_model import scratch_repo

    dest.mkdir()
    scratch_repo(ROOT, dest, params)
    subprocess.run(["chown", "-R", "1000:1000", str(dest)], check=True)
    return dest


def _service_port(objs, name: str) -> int:
    """The Service's port, checked to be the container's port too (the DNS shim maps names)."""
    svc = find(objs, "Service", name)["spec"]["ports"][0]
    pod = find(objs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    assert svc["port"] == svc["targetPort"] == pod["ports"][0]["containerPort"]
    return svc["port"]


@pytest.fixture(scope="module")
def mlflow_pod(cluster):
    objs = cluster["services"]
    dep = find(objs, "Deployment", "mlflow")["spec"]["template"]["spec"]
    c = dep["containers"][0]
    app = _image(cluster["root"] / "mlflow-app", micro_params_dict())
    (cluster["root"] / "mlflow").mkdir()
    os.chown(cluster["root"] / "mlflow", 1000, 1000)
    env = pod_env(c, cluster["configmaps"], cluster["secrets"], cluster["home"], cluster["hosts"],
                  extra={"MLFLOW_S3_ENDPOINT_URL": cluster["s3_url"]})
    port = _service_port(objs, "mlflow")
    proc = start(c, dep, env, {}, app, cluster["root"] / "mlflow.log")
    wait_healthy(f"http://127.0.0.1:{port}", proc, 180, "MLflow server pod")
    yield f"http://127.0.0.1:{port}", port
    proc.terminate()
    proc.wait(30)


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
    objs = cluster["services"]
    dep = find(objs, "Deployment", "judge")["spec"]["template"]["spec"]
    c = dep["containers"][0]
    assert "--model=models/judge" in c["args"]
    port = _service_port(objs, "judge")
    staged = cluster["root"] / "judge-volume"
    shutil.copytree(model_dir, staged / "models/judge")
    subprocess.run(["chown", "-R", "1000:1000", str(staged)], check=True)
    app = _image(cluster["root"] / "judge-app", micro_params_dict())
    env = pod_env(c, cluster["configmaps"], cluster["secrets"], cluster["home"], cluster["hosts"])
    with mounted(c, dep, app, {"workspace": staged}, cluster["configmaps"]) as remap:
        proc = start(c, dep, env, remap, app, cluster["root"] / "judge.log")
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, 600, "judge pod")
            cfg = params.judge.__class__(**{**params.judge.__dict__, "cache": "",
                                            "fast_path": False})
            with cluster_dns({"judge": "127.0.0.1"}):
                judge = LLMJudge(cfg, f"http://judge:{port}", "models/judge")
                items = list(world.items)[:8]
                verdicts = judge.judge([JudgeRequest(it.question, tuple(it.answers), it.answers[0])
                                        for it in items])
            assert all(v.value in (0, 1) for v in verdicts), verdicts
        finally:
            proc.terminate()
            proc.wait(60)
    assert "unrecognized arguments" not in (cluster["root"] / "judge.log").read_text()


def _run_job(cluster, sub, app, name: str, timeout: float = 1800):
    pod = sub.job["spec"]["template"]["spec"]
    configmaps = {**cluster["configmaps"], sub.params["metadata"]["name"]: sub.params["data"]}
    for c in pod.get("initContainers", []) + pod["containers"]:
        env = pod_env(c, configmaps, cluster["secrets"], cluster["home"], cluster["hosts"])
        with mounted(c, pod, app, cluster["volumes"], configmaps) as remap:
            proc = start(c, pod, env, remap, app, cluster["root"] / f"{name}-{c['name']}.log",
                         wait=True, timeout=timeout)
        log = (cluster["root"] / f"{name}-{c['name']}.log").read_text()
        assert proc.returncode == 0, log[-6000:]
    return log


def _seed_workspace(ws: Path, micro_repo) -> None:
    """The workspace volume as an earlier Job left it: the session's micro study (outputs,
    DVC cache and lock), owned by the pods' user. The Job then reruns only what changed."""
    from recall.workspace import SAVED_LOCK

    project = micro_repo[0]
    for name in ("data", "models", "runs", "cache", "metrics", "plots", "reports"):
        if (project / name).exists():
            shutil.copytree(project / name, ws / name, symlinks=True, dirs_exist_ok=True)
    shutil.copytree(project / ".dvc/cache", ws / "dvc-cache", dirs_exist_ok=True)
    (ws / "state").mkdir(exist_ok=True)
    shutil.copyfile(project / "dvc.lock", ws / "state" / SAVED_LOCK.name)
    subprocess.run(["chown", "-R", "1000:1000", str(ws)], check=True)


def test_trainer_job_writes_to_the_workspace_the_remote_and_mlflow(cluster, mlflow_pod, tmp_path,
                                                                    micro_repo):
    micro = micro_params_dict()
    # train@grpo's params change: one seed, and a learning rate that makes seed 0 train again
    # (a seed finished under the same inputs would be kept, recall.study.finished_summary)
    micro["study"].update({"seeds": [0], "sample_seeds": [0]})
    micro["grpo"]["learning_rate"] = micro["grpo"]["learning_rate"] * 2
    params = params_from_dict(micro)
    sub = submission(job_templates(params, OVERLAY), params, "train@grpo")
    app = _image(cluster["root"] / "trainer-app", micro)
    _seed_workspace(cluster["volumes"]["workspace"], micro_repo)
    log = _run_job(cluster, sub, app, "trainer")
    # The stage whose params changed runs; what it needs is the workspace's, up to date.
    # (split reruns too, to the same output: the Job ships params with every default
    # written out, so its `data` section differs from the study's as text.)
    ran = re.findall(r"Running stage '([^']+)'", log)
    assert "train@grpo" in ran and not {"base_model", "judge", "sample@base"} & set(ran), ran

    ws = cluster["volumes"]["workspace"]
    assert (ws / "models/grpo/seed0/config.json").is_file()
    assert json.loads((ws / "metrics/train_grpo.json").read_text())["seed0"]["steps"] > 0
    lock = yaml.safe_load((ws / "state/dvc.lock").read_text())
    assert "train@grpo" in lock["stages"]
    assert all(p.stat().st_uid == 1000 for p in (ws / "models/grpo").rglob("*"))
    dvc_objects = cluster["s3"].list_objects_v2(Bucket="recall-dvc").get("KeyCount", 0)
    assert dvc_objects > 10

    import mlflow

    client = mlflow.MlflowClient(mlflow_pod[0])
    exp = client.get_experiment_by_name(params.experiment.name)
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'train@grpo'")
    assert len(runs) == 1 and runs[0].info.artifact_uri.startswith("mlflow-artifacts:")
    s3_keys = [o["Key"] for o in cluster["s3"].list_objects_v2(
        Bucket="recall-mlflow", Prefix="artifacts/")["Contents"]]
    assert any(runs[0].info.run_id in k for k in s3_keys)

    _laptop_takes_the_results(cluster, mlflow_pod, sub, log, tmp_path / "clone")


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
    assert "grpo/seed0: kept" not in log and "grpo/seed1" not in log
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
