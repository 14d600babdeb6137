"""Kubernetes: render k8s/ with kustomize plus params, and watch Jobs through the official client.

`render` gives the services (k8s/base through an overlay), `job_templates` the Jobs that
only `recall submit` creates (recall/submission.py). Both are pure apart from calling
kustomize. `watch_job` waits for a Job, re-listing when the watch expires with 410 Gone
(kubernetes-client/python#502); `stream_logs` follows its first pod.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import yaml

from recall.config import Params


def kustomize(overlay: str | Path) -> list[dict]:
    """The overlay's manifests, rendered by `kustomize build` or `kubectl kustomize`."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(overlay)]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(overlay)]
    else:
        raise RuntimeError("rendering k8s/ needs kustomize or kubectl on PATH")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def find(objs: list[dict], kind: str, name: str) -> dict:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"no {kind} named {name!r} in the rendered manifests")


def set_gpus(container: dict, n: int) -> bool:
    """Set the GPU limit where the overlay asks for GPUs at all (the test overlay renders
    CPU-only pods); whether it did."""
    limits = container.get("resources", {}).get("limits", {})
    if "nvidia.com/gpu" in limits:
        limits["nvidia.com/gpu"] = str(n)
        return True
    return False


def _flag(args: list[str], name: str, value: object) -> list[str]:
    prefix = f"--{name}="
    return [f"{prefix}{value}" if a.startswith(prefix) else a for a in args]


def apply_params(objs: list[dict], params: Params) -> list[dict]:
    """The services with params filled in: the judge's served name, replicas and tensor
    parallelism (with the GPU count to match)."""
    objs = copy.deepcopy(objs)
    c = params.cluster
    deployment = find(objs, "Deployment", "judge")
    deployment["spec"]["replicas"] = c.judge_replicas
    judge = deployment["spec"]["template"]["spec"]["containers"][0]
    for name, value in (("served-model-name", params.judge.model),
                        ("tensor-parallel-size", c.judge_tensor_parallel)):
        judge["args"] = _flag(judge["args"], name, value)
    set_gpus(judge, c.judge_tensor_parallel)
    return objs


def render(params: Params, overlay: str | Path | None = None) -> list[dict]:
    """The overlay's services (what `kubectl apply` gets), with params filled in."""
    return apply_params(kustomize(overlay or params.cluster.overlay), params)


def job_templates(params: Params, overlay: str | Path | None = None) -> list[dict]:
    """The overlay's Job templates (its jobs/ directory): only `recall submit` creates them."""
    return kustomize(Path(overlay or params.cluster.overlay) / "jobs")


def to_client_job(manifest: dict):
    """A kubernetes.client.V1Job built from a rendered manifest."""
    from kubernetes.client import V1Job

    return V1Job.from_dict(manifest)


def job_outcome(status) -> str | None:
    """'succeeded', 'failed', or None while the Job runs (by its conditions)."""
    for cond in status.conditions or []:
        if cond.status == "True" and cond.type in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if cond.status == "True" and cond.type in ("Failed", "FailureTarget"):
            return "failed"
    return None


def watch_job(batch, name: str, namespace: str, timeout_s: float,
              watch_factory: Callable | None = None, clock=time.monotonic) -> str:
    """Wait for the Job to finish. A watch that expires (410 Gone) is replaced after a fresh
    list, which also catches a completion the dropped watch missed."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    deadline = clock() + timeout_s
    new_watch = watch_factory or watch.Watch
    while clock() < deadline:
        listing = batch.list_namespaced_job(namespace, field_selector=f"metadata.name={name}")
        for job in listing.items:
            outcome = job_outcome(job.status)
            if outcome:
                return outcome
        version = listing.metadata.resource_version
        try:
            for event in new_watch().stream(
                    batch.list_namespaced_job, namespace, field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=max(1, int(min(300, deadline - clock())))):
                outcome = job_outcome(event["object"].status)
                if outcome:
                    return outcome
        except ApiException as err:
            if err.status != 410:
                raise
    raise TimeoutError(f"job {namespace}/{name} did not finish within {timeout_s:.0f}s")


def stream_logs(core, name: str, namespace: str, sink: Callable[[str], None]) -> None:
    """Follow the logs of the Job's first pod (rank 0) until it ends."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    if not pods:
        return
    pod = sorted(pods, key=lambda p: p.metadata.name)[0].metadata.name
    for line in core.read_namespaced_pod_log(pod, namespace, follow=True, _preload_content=False).stream():
        sink(line.decode(errors="replace") if isinstance(line, bytes) else line)
