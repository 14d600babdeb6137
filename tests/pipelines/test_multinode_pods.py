"""The multi-node trainer Job as pods: the rendered `trainer-multinode` Indexed Job for
`cluster.nodes: 2`, one pod per completion index, each a CPU "node" with one training
process (torchrun, gloo). The ranks meet through the Job's headless Service name
(`<job>-0.<job>`, resolved by each pod's own /etc/hosts, as the kubelet writes one), train
GRPO once between them, and leave the outputs on the workspace volume; `recall submit
--stage train@grpo --commit` then records them in the workspace's lock.

A killed pod must take the other down promptly with a non-zero exit: the Job's
podFailurePolicy (checked statically in tests/test_cluster.py) then fails the Job as a
whole, and no rank waits out a dead rendezvous. The harness has no Job controller, so the
test checks what the policy relies on: the survivor's exit.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from contextlib import ExitStack, contextmanager

import pytest
import yaml
from completions_server import completions_server
from conftest import micro_params_dict
from pod_cluster import NEEDS_ROOT, OVERLAY, image_of, run_job, seed_workspace
from pods import kill_pod, mounted, pod_env, start

from recall.cluster import job_templates
from recall.config import params_from_dict
from recall.judge.server import free_port
from recall.submission import submission

pytestmark = [pytest.mark.slow, pytest.mark.ci_required, NEEDS_ROOT]

TOY_PROMPT = re.compile(r"question : (.*) gold : (.*) candidate : (.*) verdict :$")


def _verdict(prompt: str) -> str:
    """Right by a hash of the answer: rewards vary within a group, so GRPO moves the weights."""
    candidate = TOY_PROMPT.match(prompt).group(3)
    return "1" if hashlib.sha256(candidate.encode()).digest()[0] % 2 else "0"


@pytest.fixture(scope="module")
def multinode(cluster, mlflow_pod, micro_repo):
    """The judge (scripted, behind the `judge` name) and the submission for two nodes; the
    workspace volume seeded with the session's micro study."""
    with completions_server(_verdict) as (url, _):
        port = url.rsplit(":", 1)[1]
        micro = micro_params_dict()
        micro["study"].update({"seeds": [0], "sample_seeds": [0], "eval_points": 2})
        micro["cluster"]["nodes"] = 2
        micro["judge"].update({"base_url": f"http://judge:{port}", "model": "scripted",
                               "fast_path": False, "require_core_words": False, "cache": ""})
        params = params_from_dict(micro)
        sub = submission(job_templates(params, OVERLAY), params, "train@grpo")
        seed_workspace(cluster["volumes"]["workspace"], micro_repo)
        yield dict(sub=sub, micro=micro, params=params)


@contextmanager
def _nodes_started(cluster, sub, micro: dict, tag: str, volumes: dict):
    """Both completion indexes of the Job started at once, each pod with its own image copy
    and /etc/hosts, its volumes mounted for the block; yields the two Popens."""
    pod = sub.job["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    names = {"judge", "mlflow", "s3", f"{sub.name}-0.{sub.name}"}
    hosts_file = cluster["root"] / f"{tag}-hosts"
    hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in names))
    configmaps = {**cluster["configmaps"], sub.params["metadata"]["name"]: sub.params["data"]}
    # The pods share this machine's network: a free port, not 29500, which another test's
    # torchrun may hold. On the cluster each pod has its own address.
    master_port = str(free_port())
    with ExitStack() as stack:
        procs = []
        for index in range(sub.job["spec"]["completions"]):
            app = image_of(cluster["root"] / f"{tag}-app-{index}", micro)
            env = pod_env(main, configmaps, cluster["secrets"], cluster["home"],
                          {n: "127.0.0.1" for n in names},
                          extra={"JOB_COMPLETION_INDEX": str(index), "MASTER_PORT": master_port})
            remap = stack.enter_context(mounted(main, pod, app, volumes, configmaps))
            procs.append(start(main, pod, env, remap, app, cluster["root"] / f"{tag}-{index}.log",
                               hosts_file=hosts_file))
        try:
            yield procs
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill_pod(proc)


def _logs(cluster, tag: str) -> list[str]:
    return [(cluster["root"] / f"{tag}-{i}.log").read_text() for i in (0, 1)]


def test_two_nodes_train_once_between_them_and_commit_to_the_workspace(cluster, multinode):
    sub, params = multinode["sub"], multinode["params"]
    assert sub.service is not None and sub.job["spec"]["completions"] == 2
    with _nodes_started(cluster, sub, multinode["micro"], "node", cluster["volumes"]) as procs:
        codes = [p.wait(1800) for p in procs]
    logs = _logs(cluster, "node")
    assert codes == [0, 0], "\n".join(log[-4000:] for log in logs)
    master = f"--master_addr {sub.name}-0.{sub.name}"
    for index, log in enumerate(logs):  # each pod launched its node of two, by the Service name
        assert "launching 2 training processes" in log and master in log, log[-3000:]
        assert f"--nnodes 2 --node_rank {index}" in log
    ws = cluster["volumes"]["workspace"]
    items = [json.loads(x) for x in (ws / "data/validated/items.jsonl").read_text().splitlines()]
    n_train = sum(it["split"] == "train" for it in items)
    grpo = params.grpo
    seed0 = json.loads((ws / "metrics/train_grpo.json").read_text())["seed0"]
    # One run over two ranks: as many optimizer steps as one process takes, each rank
    # judging half of every step's completions, both ending with the same weights, and
    # each decoding its share of the evaluation items.
    assert seed0["world_size"] == 2
    assert seed0["steps"] == n_train * grpo.epochs // grpo.prompts_per_step
    assert seed0["judged"] * 2 == seed0["steps"] * grpo.prompts_per_step * grpo.group_size
    assert len(seed0["rank_weights"]) == 2 and len(set(seed0["rank_weights"])) == 1
    assert len(seed0["eval_items_per_rank"]) == 2 and min(seed0["eval_items_per_rank"]) > 0
    assert (ws / "models/grpo/seed0/config.json").is_file()

    # The outputs reach the workspace's lock through `recall submit --commit`.
    commit = submission(job_templates(params, OVERLAY), params, "train@grpo", commit=True)
    assert commit.job["spec"]["template"]["spec"]["containers"][0]["command"] == \
        ["recall", "repro", "--commit", "train@grpo"]
    run_job(cluster, commit, image_of(cluster["root"] / "commit-app", multinode["micro"]),
            "commit")
    lock = yaml.safe_load((ws / "state/dvc.lock").read_text())["stages"]["train@grpo"]
    outs = {o["path"]: o for o in lock["outs"]}
    metrics = (ws / "metrics/train_grpo.json").read_bytes()
    assert outs["metrics/train_grpo.json"]["md5"] == hashlib.md5(metrics).hexdigest()
    assert lock["params"]["params.yaml"]["compute"]["num_machines"] == 2


def test_a_killed_node_takes_the_other_down_promptly(cluster, multinode, tmp_path):
    """SIGKILL pod 1 once the ranks have taken a step together: pod 0 exits non-zero well within the
    rendezvous timeout (4 hours), so the Job's failure policy can fail the Job whole."""
    volumes = {}
    for name, path in cluster["volumes"].items():  # a run of its own: not the other test's
        volumes[name] = tmp_path / name
        shutil.copytree(path, volumes[name], symlinks=True)
    for done in (volumes["workspace"] / "models/grpo", volumes["workspace"] / "runs/grpo",
                 volumes["checkpoints"] / "grpo"):  # the other test's finished seed: kept
        shutil.rmtree(done, ignore_errors=True)
    subprocess.run(["chown", "-R", "1000:1000", str(tmp_path)], check=True)
    with _nodes_started(cluster, multinode["sub"], multinode["micro"], "killed",
                        volumes) as procs:
        log0 = cluster["root"] / "killed-0.log"  # the main process shows the progress bar
        deadline = time.monotonic() + 900
        while not re.search(r"\b1/\d+ \[", log0.read_text()):  # the first step is done
            assert procs[0].poll() is None and procs[1].poll() is None, _logs(cluster, "killed")
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        kill_pod(procs[1])
        killed_at = time.monotonic()
        code = procs[0].wait(300)
        waited = time.monotonic() - killed_at
    assert code != 0, _logs(cluster, "killed")[0][-3000:]
    assert waited < 120, f"the surviving node took {waited:.0f} s to exit"
