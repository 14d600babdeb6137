"""The pod tests' cluster (tests/pod_cluster.py), shared by the files that run pods."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import micro_params_dict
from pod_cluster import KEYS, OVERLAY, image_of, service_port, wait_listening
from pods import open_up, pod_env, start

from recall.cluster import find, render
from recall.config import params_from_dict
from recall.judge.server import free_port, wait_healthy


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """S3 (moto), the cluster's ConfigMap pointed at it, volumes, and the pods' home.

    One pod file at a time, across xdist workers: the Services' ports are the manifests'
    (MLflow's 5000), so two files' pods on this one machine would share one MLflow server."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    with FileLock(str(shared / "pods.lock")):
        yield from _cluster(tmp_path_factory)


def _cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    open_up(root)
    open_up(Path(os.path.realpath(sys.executable)).parent)  # the interpreter the venv links to
    port = free_port()
    log = (root / "s3.log").open("w")
    s3 = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                           str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_listening(url, s3)
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



@pytest.fixture(scope="module")
def mlflow_pod(cluster):
    objs = cluster["services"]
    dep = find(objs, "Deployment", "mlflow")["spec"]["template"]["spec"]
    c = dep["containers"][0]
    app = image_of(cluster["root"] / "mlflow-app", micro_params_dict())
    (cluster["root"] / "mlflow").mkdir()
    os.chown(cluster["root"] / "mlflow", 1000, 1000)
    env = pod_env(c, cluster["configmaps"], cluster["secrets"], cluster["home"], cluster["hosts"],
                  extra={"MLFLOW_S3_ENDPOINT_URL": cluster["s3_url"]})
    port = service_port(objs, "mlflow")
    proc = start(c, dep, env, {}, app, cluster["root"] / "mlflow.log")
    wait_healthy(f"http://127.0.0.1:{port}", proc, 180, "MLflow server pod")
    yield f"http://127.0.0.1:{port}", port
    proc.terminate()
    proc.wait(30)
