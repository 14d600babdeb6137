"""recall submit: two submissions in a row are two Jobs with distinct names, each with its own
params ConfigMap; objects are created in order (ConfigMap, Service, Job), made the Job's
dependents, and the Job is always deleted with background propagation."""

from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT
from kubernetes.client.exceptions import ApiException

from recall.cluster import job_templates
from recall.config import load_params, with_overrides
from recall.submission import run_submission, submission, unique_name


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def templates(params):
    return job_templates(params, ROOT / "k8s/overlays/test")


def _job(*conditions):
    return SimpleNamespace(status=SimpleNamespace(conditions=[
        SimpleNamespace(type=t, status="True") for t in conditions]))


class FakeAPI:
    """The batch and core APIs in one: every call recorded, the Job's status scripted."""

    def __init__(self, outcome="Complete"):
        self.calls, self.outcome = [], outcome
        self.configmaps, self.jobs = {}, {}

    # core
    def create_namespaced_config_map(self, namespace, body):
        if body["metadata"]["name"] in self.configmaps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.configmaps[body["metadata"]["name"]] = body
        self.calls.append(("create configmap", body["metadata"]["name"]))

    def create_namespaced_service(self, namespace, body):
        self.calls.append(("create service", body["metadata"]["name"]))

    def patch_namespaced_config_map(self, name, namespace, body):
        self.calls.append(("own configmap", name, body["metadata"]["ownerReferences"][0]["uid"]))

    def patch_namespaced_service(self, name, namespace, body):
        self.calls.append(("own service", name, body["metadata"]["ownerReferences"][0]["uid"]))

    def list_namespaced_pod(self, namespace, label_selector):
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name="p-0"))])

    def read_namespaced_pod_log(self, pod, namespace, follow, _preload_content):
        return SimpleNamespace(stream=lambda: iter([b"step 1\n"]))

    # batch
    def create_namespaced_job(self, namespace, body):
        name = body.metadata.name
        if name in self.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.jobs[name] = body
        self.calls.append(("create job", name))
        return SimpleNamespace(metadata=SimpleNamespace(name=name, uid=f"uid-{name}"))

    def list_namespaced_job(self, namespace, **kw):
        return SimpleNamespace(items=[_job(self.outcome)],
                               metadata=SimpleNamespace(resource_version="1"))

    def delete_namespaced_job(self, name, namespace, propagation_policy=None):
        self.calls.append(("delete job", name, propagation_policy))


def test_two_submissions_in_a_row_are_two_jobs_with_their_own_params(params, templates):
    api = FakeAPI()
    first = submission(templates, params, "train@grpo")
    changed = with_overrides(params, {"grpo.learning_rate": 1e-5})
    second = submission(templates, changed, "train@grpo")
    assert run_submission(api, api, first, "recall", 60, sink=lambda _: None) == 0
    assert run_submission(api, api, second, "recall", 60, sink=lambda _: None) == 0
    assert first.name != second.name and set(api.jobs) == {first.name, second.name}
    assert set(api.configmaps) == {f"{first.name}-params", f"{second.name}-params"}
    rates = [yaml.safe_load(api.configmaps[f"{s.name}-params"]["data"]["params.yaml"])
             ["grpo"]["learning_rate"] for s in (first, second)]
    assert rates == [params.grpo.learning_rate, 1e-5]
    mounted = api.jobs[second.name].spec.template.spec.volumes
    assert [v.config_map.name for v in mounted if v.name == "params"] == [f"{second.name}-params"]


def test_objects_are_created_in_order_and_owned_by_the_job(params, templates):
    api = FakeAPI(outcome="Failed")
    sub = submission(templates, with_overrides(params, {"cluster.nodes": 2}), "train@grpo")
    assert run_submission(api, api, sub, "recall", 60, sink=lambda _: None) == 1
    n = sub.name
    assert api.calls == [("create configmap", f"{n}-params"), ("create service", n),
                         ("create job", n), ("own configmap", f"{n}-params", f"uid-{n}"),
                         ("own service", n, f"uid-{n}"), ("delete job", n, "Background")]


@pytest.mark.parametrize("stop", [ApiException(status=500, reason="boom"), KeyboardInterrupt(),
                                  TimeoutError("job did not finish within 60s")])
def test_a_watch_that_stops_leaves_the_running_job_and_says_how_to_reach_it(params, templates,
                                                                            stop):
    class Stopped(FakeAPI):
        def list_namespaced_job(self, namespace, **kw):
            raise stop

    api, lines = Stopped(), []
    sub = submission(templates, params, "experiment")
    with pytest.raises(type(stop)):
        run_submission(api, api, sub, "recall", 60, sink=lines.append)
    assert not [c for c in api.calls if c[0] == "delete job"]
    assert lines[-1] == (f"[recall] stopped watching; job recall/{sub.name} keeps running. "
                         f"Follow it: kubectl -n recall logs -f job/{sub.name}; stop it: "
                         f"kubectl -n recall delete job {sub.name}")


def test_names_are_unique_within_a_second_and_fit_the_label_limit():
    names = {unique_name("trainer-multinode", clock=lambda: 0.0) for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("trainer-multinode-19700101-000000-") for n in names)
    assert max(len(n) for n in names) + len("-params") <= 63


def test_commit_runs_dvc_commit_on_one_pod(params, templates):
    sub = submission(templates, with_overrides(params, {"cluster.nodes": 4}), "train@grpo",
                     commit=True)
    assert sub.service is None and "completionMode" not in sub.job["spec"]
    assert sub.job["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["recall", "repro", "--commit", "train@grpo"]
    with pytest.raises(ValueError, match="not a stage"):
        submission(templates, params, "staging", commit=True)


def test_sweep_workers_take_the_requested_parallelism(params, templates):
    sub = submission(templates, params, "sweep-worker", workers=7)
    assert sub.job["spec"]["parallelism"] == sub.job["spec"]["completions"] == 7
    # On the GPU overlay each worker pod gets the GPUs one trial trains on, and its params
    # launch that many training processes (recall.sweep.train: the launcher above one).
    paper = load_params(ROOT / "params-paper.yaml")
    sub = submission(job_templates(paper, ROOT / "k8s/overlays/cluster"), paper,
                     "sweep-worker", workers=2)
    main = sub.job["spec"]["template"]["spec"]["containers"][0]
    shipped = yaml.safe_load(sub.params["data"]["params.yaml"])
    gpus = int(main["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus == paper.cluster.gpus_per_node == shipped["compute"]["num_processes"] > 1
    assert main["command"][:3] == ["recall", "sweep", "worker"]


def test_submit_dry_run_prints_the_objects(tmp_path, capsys):
    from recall.cli import main

    assert main(["submit", "--staging", "--overlay", str(ROOT / "k8s/overlays/test"),
                 "--dry-run"]) == 0
    objs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    assert objs[1]["metadata"]["name"].startswith("staging-")
    env = {e["name"]: e for e in objs[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "recall-hf"
    assert env["HF_HUB_OFFLINE"]["value"] == "0"


def test_a_multinode_job_without_gpus_ships_one_machine_per_node(params, templates):
    # The test overlay renders CPU pods: the machine count must still follow the nodes, or
    # each pod would train the whole model alone, with nobody to meet.
    sub = submission(templates, with_overrides(params, {"cluster.nodes": 2}), "train@grpo")
    shipped = yaml.safe_load(sub.params["data"]["params.yaml"])["compute"]
    assert shipped["num_machines"] == 2
    assert shipped["num_processes"] == params.compute.num_processes  # no GPUs to follow
    single = submission(templates, params, "train@grpo")
    assert yaml.safe_load(single.params["data"]["params.yaml"])["compute"]["num_machines"] == 1


def test_a_commit_records_the_layout_the_multinode_run_trained_under(params):
    # The GPU overlay: a commit asks for no GPU, but its lock must name the multi-node run's
    # machines and processes, or the outputs would be recorded under params they were not
    # made with.
    templates = job_templates(params, ROOT / "k8s/overlays/cluster")
    multi = with_overrides(params, {"cluster.nodes": 2, "cluster.gpus_per_node": 4})
    run = submission(templates, multi, "train@grpo")
    commit = submission(templates, multi, "train@grpo", commit=True)
    ran, recorded = (yaml.safe_load(s.params["data"]["params.yaml"])["compute"]
                     for s in (run, commit))
    assert (ran["num_machines"], ran["num_processes"]) == (2, 4)
    assert recorded == ran
    limits = commit.job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "0"
