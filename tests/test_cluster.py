"""k8s/: every overlay renders and validates against the pinned Kubernetes schema (strict);
the base holds only services; every container command parses with its program's own parser;
Job objects the client submits equal the rendered YAML; the watch survives 410 Gone."""

import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from command_parsers import CommandError, parse
from conftest import ROOT
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from recall.cluster import find, job_templates, render, watch_job
from recall.config import load_params, with_overrides
from recall.submission import KINDS, submission
from recall.workspace import WORKSPACE_DIRS, remote_commands, repro_commands

OVERLAYS = sorted(p for p in (ROOT / "k8s/overlays").iterdir() if p.is_dir())
WORKLOADS = ("Deployment", "StatefulSet", "Job")
SERVICES = {"Namespace", "PersistentVolumeClaim", "Service", "ConfigMap", "Deployment",
            "StatefulSet", "NetworkPolicy"}


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def paper():
    return load_params(ROOT / "params-paper.yaml")


def _all_objects(params, overlay):
    """Services, Job templates, and one submission of each kind (multi-node included)."""
    templates = job_templates(params, overlay)
    multi = with_overrides(params, {"cluster.nodes": 2})
    subs = [submission(templates, params, what) for what in KINDS]
    subs += [submission(templates, multi, "train@grpo"),
             submission(templates, multi, "train@grpo", commit=True)]
    return render(params, overlay) + templates + [o for s in subs for o in s.objects()]


@pytest.fixture(scope="module", params=[p.name for p in OVERLAYS])
def rendered(request, params):
    return request.param, _all_objects(params, ROOT / "k8s/overlays" / request.param)


def _pod_specs(objs):
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def _containers(objs):
    for obj, spec in _pod_specs(objs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}", c


def test_overlays_have_services_and_jobs():
    assert {p.name for p in OVERLAYS} == {"cluster", "test"}
    assert all((p / "jobs/kustomization.yaml").is_file() for p in OVERLAYS)


def test_the_applied_rendering_holds_services_only(params):
    for overlay in OVERLAYS:
        kinds = {o["kind"] for o in render(params, overlay)}
        assert kinds <= SERVICES, (overlay.name, kinds - SERVICES)
        assert {o["kind"] for o in job_templates(params, overlay)} == {"Job", "Service"}


def _validate(objs, params, path):
    path.write_text(yaml.safe_dump_all(objs))
    return subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
                           "-k", params.cluster.kubernetes_version, str(path)],
                          capture_output=True, text=True)


def test_manifests_validate_strictly(rendered, params, tmp_path):
    name, objs = rendered
    proc = _validate(objs, params, tmp_path / f"{name}.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == len(objs)


def test_validator_rejects_an_unknown_field(params, tmp_path):
    job = submission(job_templates(params, ROOT / "k8s/overlays/test"), params, "experiment").job
    job["spec"]["backofLimit"] = 3  # a typo strict mode must catch
    proc = _validate([job], params, tmp_path / "bad.yaml")
    assert proc.returncode != 0 and "backofLimit" in proc.stdout + proc.stderr


def test_pinned_images_limits_non_root_and_no_secret_literals(rendered):
    _, objs = rendered
    for obj, spec in _pod_specs(objs):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
    for where, c in _containers(objs):
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (where, image)
        assert c["resources"]["requests"] and c["resources"]["limits"], where
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
        for env in c.get("env", []):
            secretish = any(w in env["name"].upper() for w in ("TOKEN", "PASSWORD", "SECRET",
                                                                "KEY", "STORAGE", "URI"))
            assert not (secretish and "value" in env), (where, env)
            if env["name"] in ("HF_TOKEN", "POSTGRES_PASSWORD", "RECALL_OPTUNA_STORAGE",
                               "AWS_SECRET_ACCESS_KEY", "MLFLOW_BACKEND_URI"):
                assert "secretKeyRef" in env["valueFrom"], (where, env)


def test_every_job_mounts_the_workspace_and_its_own_params(rendered):
    _, objs = rendered
    for obj in objs:
        if obj["kind"] != "Job" or obj["metadata"]["name"] in {*KINDS.values(), "trainer-multinode"}:
            continue  # templates: their ConfigMap is named at submission
        spec = obj["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        workspace = sorted(m["subPath"] for m in mounts.values() if m["name"] == "workspace")
        assert workspace == sorted(WORKSPACE_DIRS), obj["metadata"]["name"]
        assert mounts["/app/params.yaml"]["subPath"] == "params.yaml"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["params"]["configMap"]["name"] == f"{obj['metadata']['name']}-params"
        assert spec["initContainers"][0]["command"] == ["recall", "workspace", "/workspace"]
        # Several nodes grade into one verdict cache only through Postgres (recall/judge/cache.py)
        assert {"secretRef": {"name": "recall-verdicts", "optional": True}} in \
            spec["containers"][0]["envFrom"], obj["metadata"]["name"]


def test_the_clusters_postgres_holds_the_verdict_cache(rendered):
    _, objs = rendered
    init = find(objs, "ConfigMap", "postgres-init")["data"]["init.sql"]
    assert "CREATE DATABASE verdicts;" in init


def _env(container, objs) -> dict[str, str]:
    """The container's environment as the kubelet would give it: ConfigMap values, test
    values for secrets, a completion index for the downward API."""
    cluster = find(objs, "ConfigMap", "recall-cluster")["data"]
    env = {}
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(cluster)
    for e in container.get("env", []):
        source = e.get("valueFrom", {})
        if "configMapKeyRef" in source:
            env[e["name"]] = cluster[source["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in source:
            env[e["name"]] = "sqlite:///test.db" if "URI" in e["name"] else "test-secret"
        else:
            env[e["name"]] = e.get("value", "0")
    return env


def test_every_container_command_parses_with_its_programs_parser(rendered):
    _, objs = rendered
    checked = 0
    for where, c in _containers(objs):
        if "command" not in c:
            assert c["image"].startswith("postgres:"), where  # the image's own entrypoint
            continue
        parse(c["command"] + c.get("args", []), _env(c, objs))
        checked += 1
    assert checked >= 10


def test_the_commands_a_job_runs_in_turn_parse_too(paper):
    # recall repro runs DVC; a stage with several GPUs relaunches under accelerate launch.
    from recall.compute import Resolved
    from recall.launcher import launch_command

    for cmd in remote_commands("s3://b/c", "http://minio:9000") + repro_commands(
            ["train@grpo"], commit=False, remote=True) + repro_commands(["x"], True, False):
        parse(cmd)
    stage = shlex.split(yaml.safe_load((ROOT / "dvc.yaml").read_text())
                        ["stages"]["train"]["do"]["cmd"].replace("${item}", "grpo"))
    launch = launch_command(paper.compute, Resolved("cuda", True, True, "sdpa"), stage[1:])
    assert parse(["python", *launch[1:]]).num_processes == paper.compute.num_processes
    parse(["python", *stage[1:]])


def test_a_flag_the_pinned_version_lacks_fails(params):
    judge = find(render(params, ROOT / "k8s/overlays/test"), "Deployment", "judge")
    c = judge["spec"]["template"]["spec"]["containers"][0]
    with pytest.raises(CommandError, match="disable-log-requests"):
        parse(c["command"] + c["args"] + ["--disable-log-requests"])
    with pytest.raises(CommandError, match="no parser known"):
        parse(["bash", "-c", "true"])


def test_mlflow_accepts_the_host_pods_send(params):
    mlflow = find(render(params, ROOT / "k8s/overlays/test"), "Deployment", "mlflow")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    hosts = next(a.split("=", 1)[1] for a in args if a.startswith("--allowed-hosts="))
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = hosts.split(",")
    assert is_allowed_host_header(allowed, "mlflow:5000")
    assert is_allowed_host_header(allowed, "127.0.0.1:5000")  # kubectl port-forward
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_params_fill_judge_and_trainer_layout(params):
    custom = with_overrides(params, {"cluster.judge_tensor_parallel": 2, "cluster.nodes": 3,
                                     "cluster.gpus_per_node": 4, "cluster.judge_replicas": 3,
                                     "judge.model": "org/judge"})
    judge = find(render(custom, ROOT / "k8s/overlays/cluster"), "Deployment", "judge")
    assert judge["spec"]["replicas"] == 3
    c = judge["spec"]["template"]["spec"]["containers"][0]
    assert "--tensor-parallel-size=2" in c["args"] and "--served-model-name=org/judge" in c["args"]
    assert "--model=models/judge" in c["args"]  # the staged directory, offline
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    templates = job_templates(custom, ROOT / "k8s/overlays/cluster")
    multi = submission(templates, custom, "train@grpo")
    spec = multi.job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 3
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == multi.name == multi.service["metadata"]["name"]
    assert multi.service["spec"]["selector"] == {"job-name": multi.name}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == f"{multi.name}-0.{multi.name}"
    shipped = yaml.safe_load(multi.params["data"]["params.yaml"])
    assert shipped["compute"]["num_processes"] == 4 and shipped["compute"]["num_machines"] == 3
    single = submission(templates, with_overrides(custom, {"cluster.nodes": 1}), "train@grpo")
    assert single.service is None and single.name.startswith("trainer-")
    assert single.job["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["recall", "repro", "train@grpo"]
    assert single.job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "4"
    with pytest.raises(ValueError, match="sample@base"):
        submission(templates, params, "sample@base")


def test_cpu_jobs_keep_the_submitted_layout(params):
    # The test overlay asks for no GPUs: the params travel unchanged.
    sub = submission(job_templates(params, ROOT / "k8s/overlays/test"), params, "train@grpo")
    assert yaml.safe_load(sub.params["data"]["params.yaml"])["compute"] == \
        yaml.safe_load((ROOT / "params.yaml").read_text())["compute"]


def test_client_job_equals_rendered_yaml(rendered, params):
    from recall.cluster import to_client_job

    name, _ = rendered
    templates = job_templates(params, ROOT / "k8s/overlays" / name)
    for what in KINDS:
        manifest = submission(templates, params, what).job
        assert ApiClient().sanitize_for_serialization(to_client_job(manifest)) == manifest


def _quantity_gb(q: str) -> float:
    units = {"Gi": 2 ** 30, "Ti": 2 ** 40}
    return float(q[:-2]) * units[q[-2:]] / 1e9


def test_checkpoint_volume_fits_the_largest_policy(paper):
    # Llama-3.1-8B: fp32 master weights + Adam's two fp32 moments = 12 B per parameter; two
    # kept plus the one being written; one training per sweep worker at a time.
    per_checkpoint_gb = 8.03e9 * 12 / 1e9
    workers = find(job_templates(paper), "Job", "sweep-worker")["spec"]["parallelism"]
    need = per_checkpoint_gb * 3 * workers
    pvc = find(render(paper), "PersistentVolumeClaim", "checkpoints")
    have = _quantity_gb(pvc["spec"]["resources"]["requests"]["storage"])
    assert have >= need, f"checkpoints PVC {have:.0f} GB < {need:.0f} GB"
    assert "save_total_limit=2" in (ROOT / "recall/training.py").read_text()


# A fake API server: list/watch/logs/create/delete recorded, events scripted.

def _job(*conditions):
    return SimpleNamespace(status=SimpleNamespace(conditions=[
        SimpleNamespace(type=t, status="True") for t in conditions]))


class FakeBatch:
    def __init__(self, listings):
        self.listings, self.calls = list(listings), []

    def list_namespaced_job(self, namespace, **kw):
        self.calls.append(("list", kw.get("resource_version")))
        items = self.listings.pop(0) if self.listings else []
        return SimpleNamespace(items=items, metadata=SimpleNamespace(resource_version="7"))

    def create_namespaced_job(self, namespace, body):
        self.calls.append(("create", body.metadata.name))

    def delete_namespaced_job(self, name, namespace, propagation_policy=None):
        self.calls.append(("delete", propagation_policy))


class FakeWatch:
    """Each stream() replays the next script: a list of events, or an exception to raise."""

    scripts: list = []

    def stream(self, func, *args, **kwargs):
        script = FakeWatch.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


class FakeCore:
    def list_namespaced_pod(self, namespace, label_selector):
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name="p-0"))])

    def read_namespaced_pod_log(self, pod, namespace, follow, _preload_content):
        return SimpleNamespace(stream=lambda: iter([b"step 1\n", b"step 2\n"]))


def test_watch_relists_after_410_and_sees_the_completion():
    batch = FakeBatch([[_job()], [_job("Complete")]])
    FakeWatch.scripts = [[{"object": _job()}], ApiException(status=410, reason="Gone")]
    assert watch_job(batch, "j", "ns", 60, watch_factory=FakeWatch) == "succeeded"
    assert [c for c in batch.calls if c[0] == "list"] == [("list", None), ("list", None)]


def test_watch_other_api_errors_propagate():
    FakeWatch.scripts = [ApiException(status=403, reason="Forbidden")]
    with pytest.raises(ApiException, match="Forbidden"):
        watch_job(FakeBatch([[_job()]]), "j", "ns", 60, watch_factory=FakeWatch)


def test_watch_times_out():
    ticks = iter([0, 0, 100, 100])
    FakeWatch.scripts = [[]]
    with pytest.raises(TimeoutError, match="ns/j did not finish within 50s"):
        watch_job(FakeBatch([[_job()]]), "j", "ns", 50, watch_factory=FakeWatch,
                  clock=lambda: next(ticks))


def _script_args(argv: list[str]) -> list[str]:
    """The arguments after pipelines/train.py, each as --flag=value."""
    tail = argv[argv.index("pipelines/train.py") + 1:]
    out, i = [], 0
    while i < len(tail):
        if tail[i].startswith("--") and "=" not in tail[i]:
            out.append(f"{tail[i]}={tail[i + 1]}")
            i += 2
        else:
            out.append(tail[i])
            i += 1
    return out


def test_multinode_job_passes_the_paths_dvc_yaml_gives_train_grpo(params):
    # dvc.yaml is where stage paths live; the multi-node Job runs the same script directly.
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    want = _script_args(shlex.split(stage["cmd"].replace("${item}", "grpo")))
    multi = find(job_templates(params, ROOT / "k8s/overlays/cluster"), "Job", "trainer-multinode")
    assert _script_args(multi["spec"]["template"]["spec"]["containers"][0]["command"]) == want


def test_a_multinode_job_fails_whole_on_any_failed_or_evicted_pod(params):
    # A static rendezvous cannot take one restarted rank back: no index may retry alone.
    multi = find(job_templates(params, ROOT / "k8s/overlays/cluster"), "Job", "trainer-multinode")
    spec = multi["spec"]
    assert spec["backoffLimit"] == 0
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn",
                                                 "values": [0]}} in rules
    assert {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget",
                                                      "status": "True"}]} in rules
    assert all(r["action"] == "FailJob" for r in rules)
