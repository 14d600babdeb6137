import mlflow

from recall.tracking import PIPELINE_TAG, log_to_parent, stage_run


def test_stages_nest_under_one_parent_per_variant(micro_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("DVC_EXP_NAME", "lr-variant")
    with stage_run(micro_params, "world") as run:
        mlflow.log_metric("people", 3)
    with stage_run(micro_params, "analyze") as run2:
        log_to_parent(run2, {"test.grpo": 0.5})
    parent_1 = run.data.tags["mlflow.parentRunId"]
    assert parent_1 == run2.data.tags["mlflow.parentRunId"]
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_1)
    assert parent.data.tags[PIPELINE_TAG] == "exp:lr-variant"
    assert parent.data.params["grpo.group_size"] == "4"
    assert parent.data.metrics["test.grpo"] == 0.5
    child = client.get_run(run.info.run_id)
    assert child.data.tags["dvc.stage"] == "world" and "git.commit" in child.data.tags
    assert child.data.metrics["people"] == 3

    monkeypatch.setenv("DVC_EXP_NAME", "other-variant")
    with stage_run(micro_params, "world") as run3:
        pass
    assert run3.data.tags["mlflow.parentRunId"] != parent_1


def test_parent_runs_record_the_environment_and_experiments_open_on_training_runs(
        micro_params, tmp_path, monkeypatch):
    import torch

    from recall.environment import package_version
    from recall.tracking import EXPERIMENT_KIND

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("DVC_EXP_NAME", "env-variant")
    with stage_run(micro_params, "world") as run:
        pass
    client = mlflow.MlflowClient()
    parent = client.get_run(run.data.tags["mlflow.parentRunId"]).data.tags
    assert parent["env.torch"] == torch.__version__
    assert parent["env.trl"] == package_version("trl") and parent["env.mlflow"] == mlflow.__version__
    assert parent["env.torch_threads"] == str(torch.get_num_threads())
    assert parent["env.device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert {"env.commit", "env.vllm", "env.dvc", "env.transformers", "env.cpus"} <= set(parent)
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == EXPERIMENT_KIND["mlflow.experimentKind"] \
        == "custom_model_development"


def test_an_older_experiment_without_a_kind_gets_one(micro_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    old = mlflow.create_experiment(micro_params.experiment.name)
    with stage_run(micro_params, "world") as run:
        pass
    assert run.info.experiment_id == old
    assert mlflow.MlflowClient().get_experiment(old).tags["mlflow.experimentKind"] == \
        "custom_model_development"


def test_a_variant_is_named_by_its_changed_params_and_spans_its_stages(micro_params, tmp_path,
                                                                        monkeypatch):
    import dataclasses
    import subprocess
    import time

    import yaml
    from conftest import micro_params_dict

    # A project whose committed params.yaml is the micro one; the variant changes the reward.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(micro_params_dict()))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "p"], check=True)
    with stage_run(micro_params, "world") as first:
        pass
    client = mlflow.MlflowClient()  # after stage_run has pointed mlflow at this store
    assert client.get_run(first.data.tags["mlflow.parentRunId"]).info.run_name == "default"

    ablation = dataclasses.replace(micro_params, grpo=dataclasses.replace(
        micro_params.grpo, reward="exact_match"))
    with stage_run(ablation, "world") as world:
        time.sleep(0.3)
    with stage_run(ablation, "analyze") as analyze:
        time.sleep(0.3)
    parent = client.get_run(world.data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == "grpo.reward=exact_match"
    last = client.get_run(analyze.info.run_id).info
    assert parent.info.start_time <= client.get_run(world.info.run_id).info.start_time
    assert parent.info.end_time >= last.end_time and parent.info.status == "FINISHED"
    # a stage that fails marks its variant failed
    try:
        with stage_run(ablation, "train@grpo"):
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert client.get_run(parent.info.run_id).info.status == "FAILED"
