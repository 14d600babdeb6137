"""What the pod tests share (their fixtures, `cluster` and `mlflow_pod`, are in
tests/pipelines/conftest.py): the test overlay, the S3 keys, the image's /app, a Service's
port, a Job's containers run to the end (tests/pods.py runs each), the workspace seeded."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, micro_params_dict
from pods import mount_allowed, mounted, pod_env, start

from recall.cluster import find

NEEDS_ROOT = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                                or not mount_allowed(),
                                reason="bind mounts (subPath volumes) and setpriv need root")

OVERLAY = ROOT / "k8s/overlays/test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def wait_listening(url: str, proc, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the server exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def image_of(dest, params: dict):
    """The image's /app: the project copied, owned by the pod's user (Dockerfile)."""
    from recall.micro_model import scratch_repo

    dest.mkdir()
    scratch_repo(ROOT, dest, params)
    subprocess.run(["chown", "-R", "1000:1000", str(dest)], check=True)
    return dest


def service_port(objs, name: str, kind: str = "Deployment") -> int:
    """The Service's port, checked to be the container's port too (the DNS shim maps names)."""
    svc = find(objs, "Service", name)["spec"]["ports"][0]
    pod = find(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]
    assert svc["port"] == svc["targetPort"] == pod["ports"][0]["containerPort"]
    return svc["port"]


@contextmanager
def job_started(cluster, sub, app, name: str, timeout: float = 1800):
    """The Job's init containers run to the end, then its main container started: the Popen,
    with the volumes mounted for the block (logs: <root>/<name>-<container>.log). Every
    container resolves the Services through the pod's /etc/hosts (cluster["hosts_file"])."""
    pod = sub.job["spec"]["template"]["spec"]
    configmaps = {**cluster["configmaps"], sub.params["metadata"]["name"]: sub.params["data"]}
    *inits, main = pod.get("initContainers", []) + pod["containers"]
    for c in inits:
        env = pod_env(c, configmaps, cluster["secrets"], cluster["home"], cluster["hosts"])
        with mounted(c, pod, app, cluster["volumes"], configmaps) as remap:
            proc = start(c, pod, env, remap, app, cluster["root"] / f"{name}-{c['name']}.log",
                         wait=True, timeout=timeout, hosts_file=cluster["hosts_file"])
        log = (cluster["root"] / f"{name}-{c['name']}.log").read_text()
        assert proc.returncode == 0, log[-6000:]
    env = pod_env(main, configmaps, cluster["secrets"], cluster["home"], cluster["hosts"])
    with mounted(main, pod, app, cluster["volumes"], configmaps) as remap:
        yield start(main, pod, env, remap, app, cluster["root"] / f"{name}-{main['name']}.log",
                    hosts_file=cluster["hosts_file"])


@contextmanager
def judge_pod(cluster, volume: Path):
    """The judge Deployment's pod (vLLM) serving `volume`/models/judge behind the Service's
    port, for the block; yields the port and the pod's container."""
    from recall.judge.server import wait_healthy

    objs = cluster["services"]
    dep = find(objs, "Deployment", "judge")["spec"]["template"]["spec"]
    c = dep["containers"][0]
    port = service_port(objs, "judge")
    app = image_of(cluster["root"] / "judge-app", micro_params_dict())
    env = pod_env(c, cluster["configmaps"], cluster["secrets"], cluster["home"], cluster["hosts"])
    with mounted(c, dep, app, {"workspace": volume}, cluster["configmaps"]) as remap:
        proc = start(c, dep, env, remap, app, cluster["root"] / "judge.log",
                     hosts_file=cluster["hosts_file"])
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, 600, "judge pod")
            yield port, c
        finally:
            proc.terminate()
            proc.wait(60)


def run_job(cluster, sub, app, name: str, timeout: float = 1800) -> str:
    """Run the Job's pod to the end; its main container's log (asserted to exit 0)."""
    with job_started(cluster, sub, app, name, timeout) as proc:
        code = proc.wait(timeout)
    main = sub.job["spec"]["template"]["spec"]["containers"][0]["name"]
    log = (cluster["root"] / f"{name}-{main}.log").read_text()
    assert code == 0, log[-6000:]
    return log


def seed_workspace(ws: Path, micro_repo) -> None:
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
