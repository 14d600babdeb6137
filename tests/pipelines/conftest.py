"""The pod tests' cluster (tests/pod_cluster.py), shared by the files that run pods."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import micro_params_dict
from pod_cluster import KEYS, OVERLAY, image_of, service_port, wait_listening
from pods import open_up, pod_env, start

from recall.cluster import find, render
from recall.config import params_from_dict
from recall.judge.server import free_port, wait_healthy

SERVICES = ("s3", "mlflow", "judge", "postgres")
PG = "postgresql+psycopg://recall:testing@postgres:5432"  # the test Secrets' URLs


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
    # The pods' /etc/hosts: every Service on this machine (libpq resolves names in C).
    hosts_file = root / "hosts"
    hosts_file.write_text("127.0.0.1 localhost " + " ".join(SERVICES) + "\n")
    for v in volumes.values():
        v.mkdir()
        os.chown(v, 1000, 1000)  # fsGroup: the volume root is the pod's group's
    yield dict(root=root, s3=client, s3_url=url, services=services, home=home,
               configmaps={"recall-cluster": configmap}, volumes=volumes,
               hosts={name: "127.0.0.1" for name in SERVICES}, hosts_file=hosts_file,
               secrets={**{f"recall-s3/{k}": v for k, v in KEYS.items()},
                        "recall-postgres/username": "recall",
                        "recall-postgres/password": "testing",
                        "recall-mlflow/backend-uri": f"{PG}/mlflow",
                        "recall-optuna/storage-url": f"{PG}/optuna"})
    s3.terminate()
    s3.wait(30)



@pytest.fixture(scope="module")
def postgres_pod(cluster):
    """The postgres StatefulSet's pod (tests/postgres_server.py runs it as the image would):
    the databases of its init ConfigMap, on the Service's port. Yields a restart function
    (stop as the kubelet does, start again on the same data) and the local URL prefix."""
    import postgres_server

    objs = cluster["services"]
    sts = find(objs, "StatefulSet", "postgres")["spec"]["template"]["spec"]
    env = pod_env(sts["containers"][0], cluster["configmaps"], cluster["secrets"],
                  cluster["home"], cluster["hosts"])
    init_sql = find(objs, "ConfigMap", "postgres-init")["data"]["init.sql"]
    port = service_port(objs, "postgres", "StatefulSet")
    data, log = cluster["root"] / "postgres-volume" / "pgdata", cluster["root"] / "postgres.log"
    box = [postgres_server.start_like_image(data, env, init_sql, port, log)]

    def restart(down_s: float = 0) -> None:
        postgres_server.stop_like_image(box[0])
        time.sleep(down_s)
        box[0] = postgres_server.start_like_image(data, env, init_sql, port, log)

    yield restart, f"postgresql+psycopg://recall:testing@127.0.0.1:{port}"
    postgres_server.stop_like_image(box[0])


@pytest.fixture(scope="module")
def mlflow_pod(cluster, postgres_pod):
    """The MLflow Deployment's pod: its tracking store on the cluster's Postgres, artifacts
    in S3."""
    objs = cluster["services"]
    dep = find(objs, "Deployment", "mlflow")["spec"]["template"]["spec"]
    c = dep["containers"][0]
    app = image_of(cluster["root"] / "mlflow-app", micro_params_dict())
    env = pod_env(c, cluster["configmaps"], cluster["secrets"], cluster["home"], cluster["hosts"],
                  extra={"MLFLOW_S3_ENDPOINT_URL": cluster["s3_url"]})
    port = service_port(objs, "mlflow")
    proc = start(c, dep, env, {}, app, cluster["root"] / "mlflow.log",
                 hosts_file=cluster["hosts_file"])
    wait_healthy(f"http://127.0.0.1:{port}", proc, 180, "MLflow server pod")
    yield f"http://127.0.0.1:{port}", port
    proc.terminate()
    proc.wait(30)
