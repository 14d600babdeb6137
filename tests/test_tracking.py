import mlflow

from recall.tracking import PIPELINE_TAG, log_to_parent, stage_run


def test_stages_nest_under_one_parent_per_variant(micro_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("DVC_EXP_NAME", "lr-variant")
    with stage_run(micro_params, "world") as run:
        mlflow.log_metric("people", 3)
    with stage_run(micro_params, "analyze") as run2:
        log_to_parent(run2, {"test_acc_grpo": 0.5})
    parent_1 = run.data.tags["mlflow.parentRunId"]
    assert parent_1 == run2.data.tags["mlflow.parentRunId"]
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_1)
    assert parent.data.tags[PIPELINE_TAG] == "exp:lr-variant"
    assert parent.data.params["grpo.group_size"] == "4"
    assert parent.data.metrics["test_acc_grpo"] == 0.5
    child = client.get_run(run.info.run_id)
    assert child.data.tags["dvc.stage"] == "world" and "git.commit" in child.data.tags
    assert child.data.metrics["people"] == 3

    monkeypatch.setenv("DVC_EXP_NAME", "other-variant")
    with stage_run(micro_params, "world") as run3:
        pass
    assert run3.data.tags["mlflow.parentRunId"] != parent_1
