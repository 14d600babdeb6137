"""recall repro: the workspace's lock is restored before DVC runs and saved after, even when
a stage fails; the DVC remote is configured from the environment; commands run in order."""

from pathlib import Path

import pytest

from recall.workspace import SAVED_LOCK, WORKSPACE_DIRS, init_workspace, repro


@pytest.fixture
def pod(tmp_path, monkeypatch):
    """A pod's /app: the image's dvc.lock, and the workspace's saved lock under .recall/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text("image lock\n")
    (tmp_path / ".recall").mkdir()
    return tmp_path


def test_lock_restored_then_saved_and_remote_configured(pod):
    (pod / SAVED_LOCK).write_text("workspace lock\n")
    seen = []

    def run(cmd):
        seen.append((cmd, (pod / "dvc.lock").read_text()))
        if cmd[:2] == ["dvc", "repro"]:
            (pod / "dvc.lock").write_text("after repro\n")
        return 0

    env = {"RECALL_DVC_REMOTE": "s3://bucket/dvc", "AWS_ENDPOINT_URL": "http://s3:9000"}
    assert repro(["train@grpo"], env=env, run=run) == 0
    assert [c for c, _ in seen] == [
        ["dvc", "remote", "add", "--local", "--force", "cluster", "s3://bucket/dvc"],
        ["dvc", "remote", "modify", "--local", "cluster", "endpointurl", "http://s3:9000"],
        ["dvc", "pull", "-r", "cluster", "--allow-missing"],
        ["dvc", "repro", "train@grpo"],
        ["dvc", "push", "-r", "cluster"]]
    assert all(lock == "workspace lock\n" for c, lock in seen[:4])
    assert (pod / SAVED_LOCK).read_text() == "after repro\n"


def test_the_pull_fills_in_only_what_the_volume_lacks(pod):
    # A Job killed mid-stage left seed 0's outputs (persist) newer than the lock: a pull of
    # them would refuse ("unsaved files"), so only what is missing is pulled.
    from dvc.repo import Repo

    Repo.init(str(pod), no_scm=True)
    (pod / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: 'true'\n    outs: [models/grpo, runs/grpo, "
        "{checkpoints/grpo: {cache: false}}]\n  base_model:\n    cmd: 'true'\n"
        "    outs: [models/base, {metrics/base.json: {cache: false}}]\n")
    # Checkpoints and metrics are missing too, but are no cache's to pull.
    (pod / SAVED_LOCK).write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: 'true'\n    outs:\n"
        "    - path: models/grpo\n    - path: runs/grpo\n    - path: checkpoints/grpo\n"
        "  base_model:\n    cmd: 'true'\n    outs:\n    - path: models/base\n"
        "    - path: metrics/base.json\n")
    (pod / "models/grpo").mkdir(parents=True)
    (pod / "runs/grpo").mkdir(parents=True)
    calls = []
    env = {"RECALL_DVC_REMOTE": "s3://bucket/dvc"}
    assert repro(["train"], env=env, run=lambda c: calls.append(c) or 0) == 0
    assert ["dvc", "pull", "-r", "cluster", "--allow-missing", "models/base"] in calls
    (pod / "models/base").mkdir()
    calls.clear()
    assert repro(["train"], env=env, run=lambda c: calls.append(c) or 0) == 0
    assert not any(c[:2] == ["dvc", "pull"] for c in calls)  # nothing missing: no pull


def test_a_failed_stage_saves_the_lock_and_skips_the_push(pod, capsys):
    def run(cmd):
        if cmd[:2] == ["dvc", "repro"]:
            (pod / "dvc.lock").write_text("partial\n")
            return 3
        return 0

    calls = []
    assert repro([], env={"RECALL_DVC_REMOTE": "s3://b/c"},
                 run=lambda c: calls.append(c) or run(c)) == 3
    assert not any(c[:2] == ["dvc", "push"] for c in calls)
    assert (pod / SAVED_LOCK).read_text() == "partial\n"
    assert "dvc repro failed with exit code 3" in capsys.readouterr().err


def test_without_a_remote_only_dvc_runs(pod):
    calls = []
    assert repro(["x"], commit=True, env={}, run=lambda c: calls.append(c) or 0) == 0
    assert calls == [["dvc", "commit", "--force", "x"]]


def test_init_workspace_makes_every_mounted_directory(tmp_path):
    made = init_workspace(tmp_path / "ws")
    assert sorted(p.name for p in made) == sorted(WORKSPACE_DIRS)
    assert all(p.is_dir() for p in made)
    assert init_workspace(tmp_path / "ws") == made  # idempotent


def test_uncached_outputs_are_the_result_files_dvc_pull_cannot_bring():
    from conftest import ROOT

    from recall.workspace import uncached_outputs

    files = set(uncached_outputs(ROOT))
    assert {Path("metrics/analysis.json"), Path("reports/analysis.md"),
            Path("plots/pass_at_k.png")} <= files
    assert not any(p.parts[0] in ("checkpoints", "data", "models", "runs") for p in files)


def test_a_jobs_results_travel_through_mlflow_to_a_laptop(pod, tmp_path, micro_params,
                                                          monkeypatch):
    """A Job's `recall repro` logs the lock and uncached outputs to the variant's parent run;
    `recall fetch` on a laptop puts them back, byte for byte, and pulls the rest from DVC."""
    import mlflow

    from recall.tracking import publish_workspace
    from recall.workspace import LOCK, fetch

    store = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # as the cluster's ConfigMap sets it
    params = micro_params
    outputs = {Path("metrics/train_grpo.json"): '{"seed0": 1}\n',
               Path("reports/analysis.md"): "# report\n", Path("plots/p.png"): "\x89PNG"}

    def run(cmd):
        if cmd[:2] == ["dvc", "repro"]:
            LOCK.write_text("lock after the Job\n")
            for path, text in outputs.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        return 0

    published = []
    code = repro(["train@grpo"], env={}, run=run, publish=lambda: published.append(
        publish_workspace(params, [LOCK, *outputs])) or published[-1])
    assert code == 0
    parent = mlflow.MlflowClient(store).get_run(published[0])
    assert parent.data.tags["recall.role"] == "variant"  # the run the compare view shows
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    pulls = []
    files = fetch(published[0], store, laptop, remote="s3://bucket/dvc",
                  run=lambda c: pulls.append(c) or 0)
    assert set(files) == {LOCK, *outputs}
    assert (laptop / "dvc.lock").read_text() == "lock after the Job\n"
    assert all((laptop / p).read_text() == text for p, text in outputs.items())
    assert pulls[-1] == ["dvc", "pull", "-r", "cluster", "--allow-missing"]
    # A failed publish is an error even after a clean DVC run: the results cannot travel.
    def broken():
        raise ConnectionError("mlflow:5000 unreachable")
    assert repro([], env={}, run=lambda c: 0, publish=broken) == 1
    with pytest.raises(RuntimeError, match="holds no workspace/dvc.lock"):
        fetch(mlflow.MlflowClient(store).create_run(parent.info.experiment_id).info.run_id,
              store, laptop)
