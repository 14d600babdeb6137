"""Kubernetes: render k8s/ with kustomize plus params, and run Jobs through the official client.

`render` is pure apart from calling kustomize; `run_job` talks to the API server: it creates
the Job, watches it (re-listing when the watch expires with 410 Gone, kubernetes-client/
python#502), streams the pod's logs, returns 0 or 1, and always deletes the Job with
background propagation so its pods go too (kubernetes-client/python#234).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import yaml

from recall.config import Params

TRAINER_STAGES = frozenset({"train@grpo"})  # the trainer Jobs run pipelines/train.py grpo


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


def _set_gpus(container: dict, n: int) -> None:
    # Only where the overlay asks for GPUs at all: the test overlay renders CPU-only pods.
    limits = container.get("resources", {}).get("limits", {})
    if "nvidia.com/gpu" in limits:
        limits["nvidia.com/gpu"] = str(n)


def _flag(args: list[str], name: str, value: object) -> list[str]:
    prefix = f"--{name}="
    return [f"{prefix}{value}" if a.startswith(prefix) else a for a in args]


def apply_params(objs: list[dict], params: Params) -> list[dict]:
    """Fill the judge model and tensor parallelism, and the trainers' GPU layout, from params."""
    objs = copy.deepcopy(objs)
    c = params.cluster
    judge = find(objs, "Deployment", "judge")["spec"]["template"]["spec"]["containers"][0]
    for name, value in (("model", params.judge.model), ("served-model-name", params.judge.model),
                        ("tensor-parallel-size", c.judge_tensor_parallel)):
        judge["args"] = _flag(judge["args"], name, value)
    _set_gpus(judge, c.judge_tensor_parallel)
    one = find(objs, "Job", "trainer")["spec"]
    trainer = one["template"]["spec"]["containers"][0]
    trainer["command"] = _flag(trainer["command"], "num_processes", c.gpus_per_node)
    _set_gpus(trainer, c.gpus_per_node)
    multi = find(objs, "Job", "trainer-multinode")["spec"]
    multi["completions"] = multi["parallelism"] = c.nodes
    node = multi["template"]["spec"]["containers"][0]
    # The multi-node command is one shell string (it expands $JOB_COMPLETION_INDEX).
    node["args"] = [re.sub(r"--num_processes=\d+", f"--num_processes={c.nodes * c.gpus_per_node}",
                           re.sub(r"--num_machines=\d+", f"--num_machines={c.nodes}", a))
                    for a in node["args"]]
    _set_gpus(node, c.gpus_per_node)
    return objs


def render(params: Params, overlay: str | Path | None = None) -> list[dict]:
    return apply_params(kustomize(overlay or params.cluster.overlay), params)


def stage_job(objs: list[dict], params: Params, stage: str | None) -> dict:
    """The Job that runs `stage` (None: the whole `dvc repro`) on the cluster."""
    if stage is not None and stage not in TRAINER_STAGES:
        raise ValueError(f"stage {stage!r}: the cluster runs {sorted(TRAINER_STAGES)} or the "
                         f"whole experiment")
    multi = stage is not None and params.cluster.nodes > 1
    job = copy.deepcopy(find(objs, "Job", "trainer-multinode" if multi else "trainer"))
    if stage is None:
        job["metadata"]["name"] = "experiment"
        job["spec"]["template"]["spec"]["containers"][0]["command"] = ["dvc", "repro"]
    return job


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


def run_job(batch, core, manifest: dict, namespace: str, timeout_s: float,
            sink: Callable[[str], None] = print, watch_factory: Callable | None = None) -> int:
    """Create the Job, stream its logs, wait for it; exit code 0 or 1; always clean up."""
    from kubernetes.client.exceptions import ApiException

    name = manifest["metadata"]["name"]
    batch.create_namespaced_job(namespace, to_client_job(manifest))
    try:
        try:
            stream_logs(core, name, namespace, sink)
        except ApiException as err:  # e.g. the pod is still pending: the watch decides
            sink(f"[recall] logs unavailable for {name}: {err.reason}")
        outcome = watch_job(batch, name, namespace, timeout_s, watch_factory)
        sink(f"[recall] job {namespace}/{name} {outcome}")
        return 0 if outcome == "succeeded" else 1
    finally:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
