"""k8s/: every overlay renders and validates against the pinned Kubernetes schema (strict);
the Job objects the client submits equal the rendered YAML; the watch survives 410 Gone and
reports failure; the Job is always deleted with background propagation."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from recall.cluster import apply_params, find, kustomize, render, run_job, stage_job, watch_job
from recall.config import load_params, with_overrides

OVERLAYS = sorted(p for p in (ROOT / "k8s/overlays").iterdir() if p.is_dir())
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module", params=[p.name for p in OVERLAYS])
def rendered(request, params):
    return request.param, render(params, ROOT / "k8s/overlays" / request.param)


def _pod_specs(objs):
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def test_overlays_exist():
    assert {p.name for p in OVERLAYS} == {"cluster", "test"}


def test_manifests_validate_strictly(rendered, params, tmp_path):
    name, objs = rendered
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    proc = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
                           "-k", params.cluster.kubernetes_version, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == len(objs)


def test_validator_rejects_an_unknown_field(params, tmp_path):
    job = stage_job(render(params, ROOT / "k8s/overlays/test"), params, None)
    job["spec"]["backofLimit"] = 3  # a typo strict mode must catch
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(job))
    proc = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
                           "-k", params.cluster.kubernetes_version, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "backofLimit" in proc.stdout + proc.stderr


def test_pinned_images_limits_non_root_and_no_secret_literals(rendered):
    _, objs = rendered
    for obj, spec in _pod_specs(objs):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for c in spec["containers"]:
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (where, image)
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            for env in c.get("env", []):
                secretish = any(w in env["name"].upper() for w in ("TOKEN", "PASSWORD", "SECRET",
                                                                    "KEY", "STORAGE", "URI"))
                if secretish and "value" in env:
                    assert env["name"] in ("MLFLOW_TRACKING_URI",), (where, env)
                if env["name"] in ("HF_TOKEN", "POSTGRES_PASSWORD", "RECALL_OPTUNA_STORAGE"):
                    assert "secretKeyRef" in env["valueFrom"], (where, env)


def test_params_fill_judge_and_trainer_layout(params):
    custom = with_overrides(params, {"cluster.judge_tensor_parallel": 2, "cluster.nodes": 3,
                                     "cluster.gpus_per_node": 4, "judge.model": "org/judge"})
    objs = apply_params(kustomize(ROOT / "k8s/overlays/cluster"), custom)
    judge = find(objs, "Deployment", "judge")["spec"]["template"]["spec"]["containers"][0]
    assert "--tensor-parallel-size=2" in judge["args"] and "--model=org/judge" in judge["args"]
    assert judge["resources"]["limits"]["nvidia.com/gpu"] == "2"
    multi = stage_job(objs, custom, "train@grpo")
    assert multi["spec"]["completionMode"] == "Indexed"
    assert multi["spec"]["completions"] == multi["spec"]["parallelism"] == 3
    args = multi["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--num_machines=3" in args and "--num_processes=12" in args
    assert '--machine_rank="$JOB_COMPLETION_INDEX"' in args
    assert "--main_process_ip=trainer-multinode-0.trainer-multinode" in args
    single = stage_job(objs, with_overrides(custom, {"cluster.nodes": 1}), "train@grpo")
    assert single["metadata"]["name"] == "trainer"
    command = single["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--num_processes=4" in command and "--num_machines=1" in command
    with pytest.raises(ValueError, match="sample@base"):
        stage_job(objs, params, "sample@base")


def test_client_job_equals_rendered_yaml(rendered, params):
    from recall.cluster import to_client_job

    _, objs = rendered
    for stage in ("train@grpo", None):
        manifest = stage_job(objs, params, stage)
        assert ApiClient().sanitize_for_serialization(to_client_job(manifest)) == manifest


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


@pytest.mark.parametrize("condition,code", [("Complete", 0), ("Failed", 1)])
def test_run_job_exit_code_logs_and_background_cleanup(params, condition, code):
    manifest = stage_job(render(params, ROOT / "k8s/overlays/test"), params, "train@grpo")
    batch = FakeBatch([[_job()]])
    FakeWatch.scripts = [[{"object": _job()}, {"object": _job(condition)}]]
    lines = []
    assert run_job(batch, FakeCore(), manifest, "recall", 60, sink=lines.append,
                   watch_factory=FakeWatch) == code
    assert lines[:2] == ["step 1\n", "step 2\n"]
    assert batch.calls[0] == ("create", "trainer") and batch.calls[-1] == ("delete", "Background")


def test_run_job_cleans_up_when_the_watch_fails(params):
    manifest = stage_job(render(params, ROOT / "k8s/overlays/test"), params, None)
    batch = FakeBatch([[_job()]])
    FakeWatch.scripts = [ApiException(status=500, reason="boom")]
    with pytest.raises(ApiException):
        run_job(batch, FakeCore(), manifest, "recall", 60, sink=lambda _: None,
                watch_factory=FakeWatch)
    assert batch.calls[-1] == ("delete", "Background")


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


def test_trainer_jobs_pass_the_paths_dvc_yaml_gives_train_grpo(params):
    # dvc.yaml is where stage paths live; the trainer Jobs run the same script directly
    # (under accelerate), so their arguments must match train@grpo's cmd but for the
    # checkpoint root, which is the checkpoints volume.
    import shlex

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    want = _script_args(shlex.split(stage["cmd"].replace("${item}", "grpo")))
    want = [a if not a.startswith("--checkpoints=") else "--checkpoints=/checkpoints/grpo"
            for a in want]
    objs = render(params, ROOT / "k8s/overlays/cluster")
    single = find(objs, "Job", "trainer")["spec"]["template"]["spec"]["containers"][0]
    multi = find(objs, "Job", "trainer-multinode")["spec"]["template"]["spec"]["containers"][0]
    assert _script_args(single["command"] + single.get("args", [])) == want
    assert _script_args(shlex.split(multi["args"][0])) == want
