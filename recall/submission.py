"""Submitting work to the cluster: one Job per submission, under a unique name, with the
submitted params as its own ConfigMap, created through the official client.

Nothing here goes through `kubectl apply`: a blanket apply would start every Job at once,
and a second submission of a fixed name would fail with 409. `submission` builds the
objects (pure); `run_submission` creates them, streams the first pod's logs, waits for the
Job, returns 0 or 1, and always deletes the Job with background propagation, which takes
its pods, its ConfigMap and its Service with it (their ownerReferences name the Job;
kubernetes-client/python#234).
"""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass
from typing import Callable

import yaml

from recall.cluster import find, set_gpus, stream_logs, to_client_job, watch_job
from recall.config import Params, as_dict, with_overrides

# What a submission runs -> its Job template in k8s/jobs.
KINDS = {"staging": "staging", "experiment": "experiment", "train@grpo": "trainer",
         "sweep-create": "sweep-create", "sweep-worker": "sweep-worker"}
STAGES = ("train@grpo",)  # stages the cluster runs alone; anything else: the whole experiment
PARAMS_KEY = "params.yaml"


@dataclass(frozen=True)
class Submission:
    job: dict
    params: dict  # the ConfigMap mounted as /app/params.yaml
    service: dict | None = None  # the headless Service of a multi-node Job

    @property
    def name(self) -> str:
        return self.job["metadata"]["name"]

    def objects(self) -> list[dict]:
        return [o for o in (self.params, self.service, self.job) if o is not None]


def unique_name(prefix: str, clock: Callable[[], float] = time.time) -> str:
    """`prefix`-UTC time-6 random hex: distinct for two submissions in the same second, and
    short enough for the job-name label (63) with the pod suffixes Kubernetes adds."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


def shipped_params(params: Params, gpus: bool, nodes: int) -> Params:
    """The params the Job runs with: the training layout follows the nodes and GPUs it is
    given. The machine count follows the nodes even without GPUs (a CPU cluster, the pod
    tests): each of `nodes` pods alone would otherwise train the whole model by itself."""
    overrides: dict = {"compute.num_machines": nodes}
    if gpus:
        overrides["compute.num_processes"] = params.cluster.gpus_per_node
    return with_overrides(params, overrides)


def submission(templates: list[dict], params: Params, what: str, workers: int | None = None,
               commit: bool = False) -> Submission:
    """The objects of one submission: `what` is a key of KINDS (a stage runs on
    `cluster.nodes` nodes when it is above 1). `commit`: record a stage's outputs that a
    multi-node run left on the workspace (`dvc commit`), instead of running it."""
    if what not in KINDS:
        raise ValueError(f"cannot submit {what!r}: the cluster runs {sorted(KINDS)}; any other "
                         f"stage runs inside the whole experiment")
    multi = what in STAGES and params.cluster.nodes > 1 and not commit
    template = "trainer-multinode" if multi else KINDS[what]
    if commit:
        if what not in STAGES:
            raise ValueError(f"--commit records a stage's outputs; {what!r} is not a stage")
        template = "experiment"
    job = copy.deepcopy(find(templates, "Job", template))
    name = unique_name(template)
    job["metadata"]["name"] = name
    pod = job["spec"]["template"]["spec"]
    main = pod["containers"][0]
    if commit:
        main["command"] = ["recall", "repro", "--commit", what]
    # A commit hashes files: no GPU. It still ships the layout the stage ran under (below).
    gpus = set_gpus(main, 0 if commit else params.cluster.gpus_per_node)
    if what == "sweep-worker" and workers is not None:
        job["spec"]["parallelism"] = job["spec"]["completions"] = workers
    service = None
    if multi:
        service = copy.deepcopy(find(templates, "Service", "trainer-multinode"))
        service["metadata"]["name"] = name
        service["spec"]["selector"] = {"job-name": name}
        job["spec"]["completions"] = job["spec"]["parallelism"] = params.cluster.nodes
        pod["subdomain"] = name
        for env in main["env"]:
            if env["name"] == "MASTER_ADDR":
                env["value"] = f"{name}-0.{name}"
    # The lock a commit writes must hold the params the outputs were made under: the
    # multi-node run's machine and process counts, not a single node's.
    spread = multi or (commit and params.cluster.nodes > 1)
    shipped = shipped_params(params, gpus, params.cluster.nodes if spread else 1)
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{name}-params", "namespace": job["metadata"]["namespace"],
                              "labels": dict(job["metadata"].get("labels", {}))},
                 "data": {PARAMS_KEY: yaml.safe_dump(as_dict(shipped), sort_keys=False)}}
    for volume in pod["volumes"]:
        if volume["name"] == "params":
            volume["configMap"]["name"] = configmap["metadata"]["name"]
    return Submission(job, configmap, service)


def _owned_by(job) -> list[dict]:
    return [{"apiVersion": "batch/v1", "kind": "Job", "name": job.metadata.name,
             "uid": job.metadata.uid, "blockOwnerDeletion": False}]


def create(batch, core, sub: Submission, namespace: str):
    """The ConfigMap (and Service) first, so the pod finds them; then the Job; then they are
    made the Job's dependents, so deleting the Job deletes them."""
    core.create_namespaced_config_map(namespace, sub.params)
    if sub.service is not None:
        core.create_namespaced_service(namespace, sub.service)
    job = batch.create_namespaced_job(namespace, to_client_job(sub.job))
    owners = {"metadata": {"ownerReferences": _owned_by(job)}}
    core.patch_namespaced_config_map(sub.params["metadata"]["name"], namespace, owners)
    if sub.service is not None:
        core.patch_namespaced_service(sub.name, namespace, owners)
    return job


def run_submission(batch, core, sub: Submission, namespace: str, timeout_s: float,
                   sink: Callable[[str], None] = print,
                   watch_factory: Callable | None = None) -> int:
    """Create the submission, stream its logs, wait for it; exit code 0 or 1.

    A Job that finished (succeeded or failed) is deleted with what it owns. One that is
    still running when the watching stops (the timeout, a dropped connection, Ctrl-C) is
    left running: a multi-day training run must not die with a laptop's session. The user
    is told how to follow it and how to stop it."""
    from kubernetes.client.exceptions import ApiException

    create(batch, core, sub, namespace)
    sink(f"[recall] submitted job {namespace}/{sub.name} (params: ConfigMap {sub.name}-params)")
    outcome = None
    try:
        try:
            stream_logs(core, sub.name, namespace, sink)
        except ApiException as err:  # e.g. the pod is still pending: the watch decides
            sink(f"[recall] logs unavailable for {sub.name}: {err.reason}")
        outcome = watch_job(batch, sub.name, namespace, timeout_s, watch_factory)
        sink(f"[recall] job {namespace}/{sub.name} {outcome}")
        return 0 if outcome == "succeeded" else 1
    except BaseException:  # KeyboardInterrupt too: the Job outlives the watch
        sink(f"[recall] stopped watching; job {namespace}/{sub.name} keeps running. Follow "
             f"it: kubectl -n {namespace} logs -f job/{sub.name}; stop it: kubectl -n "
             f"{namespace} delete job {sub.name}")
        raise
    finally:
        if outcome is not None:
            batch.delete_namespaced_job(sub.name, namespace, propagation_policy="Background")
