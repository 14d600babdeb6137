"""recall repro: the workspace's lock is restored before DVC runs and saved after, even when
a stage fails; the DVC remote is configured from the environment; commands run in order."""

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
