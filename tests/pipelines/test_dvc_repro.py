"""End to end: `dvc repro` of the whole toy study on a micro config, in a temp copy of the repo."""

import json
import re
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import copy_micro, run_ok

from recall.study_config import METHODS

pytestmark = pytest.mark.slow

STAGES = {"world", "split", "embedder", "dedup", "validate", "base_model", "judge", "sample@base",
          *[f"train@{m}" for m in METHODS], "bases", "attribution", "transfer", "analyze",
          "judge_reliability"}


def _run(cmd, cwd, env):
    return run_ok(cmd, cwd, env, timeout=900)


def _detail(dest, name: str) -> dict:
    return json.loads((dest / f"metrics/{name}.json").read_text())


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def repo(micro_repo):
    """The micro project after one `dvc repro` (the session's, conftest.micro_repo). Tests
    here only read it (or repro it to a no-op); a test that changes the workspace takes a
    copy, so any order works."""
    return micro_repo


@pytest.fixture(scope="module")
def ablated(repo, tmp_path_factory):
    """A copy of the project with the reward ablation run as a `dvc exp run` variant."""
    dest, env = copy_micro(repo, tmp_path_factory, "ablated")
    # --force-downstream: the micro judge may grade exactly like exact match, giving the same
    # weights, and the variant's MLflow parent still needs its own analysis.
    out = _run(["recall", "serve-judge", "--", "dvc", "exp", "run", "--force-downstream", "-S",
                "grpo.reward=exact_match", "-n", "exact-match"], dest, env)
    return dest, env, out


def test_repro_runs_every_stage_and_writes_metrics(repo):
    dest, env, first = repo
    assert set(_stages_run(first)) == STAGES
    analysis = json.loads((dest / "metrics/analysis.json").read_text())
    table = analysis["table"]
    assert table["datasets"] == ["toy"] and 0.0 <= table["base"]["toy"] <= 1.0
    for method in METHODS:  # every method, every seed, every analysis
        row = table[method]
        assert row["seeds"] == [0, 1] and row["accuracy"]["toy"]["n"] == 2
        assert set(row["pass_at_k"]) == {"1", "2", "4", "8", "16"}  # 16 test samples, 8 train
        assert set(row["repair"]) == {"0", "1", "2", "3-4", "5-8"}
        for seed in (0, 1):
            assert (dest / f"models/{method}/seed{seed}/config.json").exists()
        dynamics = (dest / f"runs/{method}/dynamics.csv").read_text().splitlines()
        # 2 seeds x 2 progress points, the last included to choose on val (rft: 2 rounds)
        # x 3 splits (train, val, test)
        assert len(dynamics) == 1 + 2 * 2 * 3
    assert 0.0 <= analysis["majority"]["toy"] <= 1.0
    # micro params turn chain-of-thought on: judged final answers and the full reasoning
    cot = [json.loads(line) for line in (dest / "runs/base/cot.jsonl").read_text().splitlines()]
    reasoning = (dest / "runs/base/cot_reasoning.jsonl").read_text().splitlines()
    n_test = sum(json.loads(line)["split"] == "test" for line in
                 (dest / "data/validated/items.jsonl").read_text().splitlines())
    assert len(cot) == len(reasoning) == n_test and {r["prompt_style"] for r in cot} == {"cot"}
    cot_acc = sum(r["scores"][0] for r in cot) / n_test
    assert analysis["cot"]["toy"] == pytest.approx(cot_acc)
    assert set(analysis["attribution"]["partitions"]) == {"inaccessible", "any",
                                                          "stored_inaccessible", "not_stored"}
    assert analysis["transfer"]["target"]["n"] > 0
    report = (dest / "reports/analysis.md").read_text()
    assert report.startswith("# recall: the study") and "## What the organism says" in report
    assert "| GRPO (reward: judge) | 2 |" in report and "| RLOO (reward: judge) | 2 |" in report
    assert f"| chain-of-thought (base) | - | {cot_acc:.3f} |" in report
    # The detailed files are plain outputs; each is read as data.
    assert _detail(dest, "sample_base")["cot_accuracy"] == pytest.approx(cot_acc)
    # The served toy judge graded pre- and post-RL test answers against ground truth.
    reliability = _detail(dest, "judge_reliability")
    assert reliability["judge"] == "llm"
    for group in ("pre_rl", "post_rl", "pre_rl_as_used", "post_rl_as_used"):
        assert reliability[group]["n"] > 0 and 0.0 <= reliability[group]["agreement"] <= 1.0
        # ... and the report prints those rates beside the accessibility analyses.
        fpr = reliability[group]["false_positive_rate"]
        assert f"- {group}: agreement {reliability[group]['agreement']:.1%}" in report
        if fpr is not None:
            assert f"false positives {fpr:.1%}" in report
    judge = _detail(dest, "judge")["held_out"]
    assert set(judge) == {"all", "alias", "other_value", "other_form", "empty"}
    # Dedup found the micro world's planted leaks; the GX suites passed on what is left.
    dedup = _detail(dest, "dedup")
    assert dedup["score"]["true_leaks"] == 8 and dedup["score"]["recall"] == 1.0
    assert dedup["score"]["precision"] == 1.0 and dedup["removed"] == {"test": 8}
    assert dedup["retrieval"] == "tfidf" and dedup["verifier"] == "heuristic"
    assert _detail(dest, "validate")["success"] is True
    assert (dest / "reports/gx/index.html").exists()
    validated = (dest / "data/validated/items.jsonl").read_text()
    assert validated and "-leak-" not in validated


def test_report_tests_every_claim_over_items_and_bases(repo):
    dest, _, _ = repo
    analysis = json.loads((dest / "metrics/analysis.json").read_text())
    report = (dest / "reports/analysis.md").read_text()
    # every method's checkpoint was chosen on val among its evaluated points
    grpo = json.loads((dest / "metrics/train_grpo.json").read_text())
    assert all(grpo[f"seed{s}"]["selected"]["last_step"] == grpo[f"seed{s}"]["steps"]
               for s in (0, 1))
    # item-level tests on test and val for every method, McNemar per seed
    assert set(analysis["tests"]) == {"test", "val"}
    assert set(analysis["tests"]["test"]["sft"]["mcnemar"]) == {"0", "1"}
    assert "vs_reference" in analysis["tests"]["test"]["sft"]
    for finding in ("1. **RL vs SFT", "2. **RL vs majority", "3. **Repair rate", "4. **RL sharpens",
                    "5. **Attribution"):
        assert finding in report
    for section in ("## Table 1, item by item", "## The chance floor", "## The gain against the",
                    "## pass@k on test", "## Repair rate by pre-RL accessibility", "## Stage times"):
        assert section in report
    # the headline rows over two micro bases (the study's and bases.seeds [1])
    assert "## Table 1 over pretrained bases" in report
    assert set(analysis["bases"]["methods"]["grpo"]["gains"]) == {"0", "1"}
    assert (dest / "runs/bases/base1/sft/seed0/greedy.jsonl").exists()
    # the ground truth reached the report: 4 of 16 RL-train people were never shown
    assert "on the 16 RL-train facts whose person it never saw" in report


def test_dvc_metrics_show_prints_the_headline_table(repo):
    dest, env, _ = repo
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], dest, env))
    files = next(iter(shown.values()))["data"]
    rows = {Path(f).stem: v["data"] for f, v in files.items()}
    assert set(rows) == {"test", "test_low", "test_high", "val", "val_low", "val_high", "study"}
    assert all(Path(f).parent.as_posix() == "metrics/headline" for f in files)
    analysis, reliability = _detail(dest, "analysis"), _detail(dest, "judge_reliability")
    table = analysis["table"]
    assert rows["test"]["base"] == pytest.approx(table["base"]["toy"])
    for m in METHODS:
        assert rows["test"][m] == pytest.approx(table[m]["accuracy"]["toy"]["mean"])
        assert rows["val"][m] == pytest.approx(table[m]["val_accuracy"]["mean"])
        assert rows["test_low"][m] <= rows["test"][m] <= rows["test_high"][m]
    study = rows["study"]["study"]
    assert study["chance_floor"] == analysis["chance"]["measured"]["share"]
    assert study["judge_agreement"] == reliability["pre_rl_as_used"]["agreement"]
    assert study["minutes"] > 0
    # A person reads it: one row per file, the methods and the study's scalars as columns.
    header = _run(["dvc", "metrics", "show"], dest, env).splitlines()[0].split()
    assert header == ["Path", "base", *sorted(METHODS), "study.chance_floor",
                      "study.judge_agreement", "study.minutes"]


def test_plots_render(repo):
    dest, env, _ = repo
    _run(["dvc", "plots", "show", "-o", "plots_html"], dest, env)
    html = (dest / "plots_html/index.html").read_text()
    assert "pass@k before and after" in html and "repair rate per accessibility bin" in html
    assert "training dynamics" in html and "attribution" in html


def test_second_repro_does_nothing(repo):
    dest, env, _ = repo
    assert _stages_run(_run(["dvc", "repro"], dest, env)) == []


def test_reward_ablation_reruns_only_training_and_after(ablated):
    dest, env, out = ablated
    assert set(_stages_run(out)) == {"train@grpo", "bases", "attribution", "transfer", "analyze",
                                     "judge_reliability"}
    assert "exact-match" in _run(["dvc", "exp", "show", "--json"], dest, env)
    # The ablation is a Table 1 row of its own report, named by its reward.
    assert "| GRPO (reward: exact_match) | 2 |" in (dest / "reports/analysis.md").read_text()


def test_mlflow_holds_parents_and_stage_runs(ablated):
    dest, env, _ = ablated
    mlflow.set_tracking_uri(f"sqlite:///{dest}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["recall-toy"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    stages = {r.data.tags.get("dvc.stage") for r in runs}
    assert STAGES <= stages
    assert len(parents) == 2  # plain repro (judge reward) + the exact-match experiment
    variant = next(p for p in parents if p.data.tags["recall.pipeline"] == "exp:exact-match")
    plain = next(p for p in parents if p is not variant)
    # Side by side in MLflow: the same metrics under each reward.
    assert (plain.data.params["grpo.reward"], variant.data.params["grpo.reward"]) == \
        ("judge", "exact_match")
    assert "test.grpo" in variant.data.metrics and "test.grpo" in plain.data.metrics
    assert variant.data.metrics["test.grpo"] == pytest.approx(
        _detail(dest, "analysis")["table"]["grpo"]["accuracy"]["toy"]["mean"])
    # named by what they change from the committed params, spanning their stages in time
    assert plain.info.run_name == "default"
    assert variant.info.run_name == "grpo.reward=exact_match (exact-match)"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == plain.info.run_id]
    assert plain.info.start_time <= min(r.info.start_time for r in children)
    assert plain.info.end_time >= max(r.info.end_time for r in children)
    rewards = {r.data.tags["reward"] for r in runs if r.data.tags.get("dvc.stage") == "train@grpo"}
    assert rewards == {"judge:llm", "exact_match:rule"}
    train_run = next(r for r in runs if r.data.tags.get("dvc.stage") == "train@grpo")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(train_run.info.run_id)}
    assert "model" in artifacts


def test_validate_stops_repro_when_test_is_not_deduplicated(repo, tmp_path_factory):
    # On a copy: it leaves the workspace mid-pipeline. Dedup told to clean val only leaves
    # the planted test leaks in place; validate checks every non-training split anyway.
    dest, env = copy_micro(repo, tmp_path_factory, "leaky")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["dedup"]["targets"] = ["val"]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(["dvc", "repro"], cwd=dest, env=env, capture_output=True, text=True,
                          timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "validate: the splits in data/dedup/items.jsonl fail" in output
    planted = json.loads((dest / "data/world/planted.json").read_text())["leaks"]
    assert all(leak in output for leak in planted[:3])  # named, with their training partners
    assert re.search(r"toy-test-leak-\d{4}-\w+ \(train: toy-train-", output)
    assert "Running stage 'sample@base'" not in output


def test_a_rerun_keeps_the_seeds_that_finished_and_trains_the_rest(repo, tmp_path_factory):
    from recall.staging import weights_digest

    dest, env = copy_micro(repo, tmp_path_factory, "more_seeds")
    before = _detail(dest, "train_sft")
    digests = {s: weights_digest(dest / f"models/sft/seed{s}") for s in (0, 1)}
    greedy = (dest / "runs/sft/seed0/greedy.jsonl").read_bytes()
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["study"]["seeds"] = [0, 1, 2]  # a seed added (or a crash after seed 1)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro", "--single-item", "train@sft"], dest, env)
    assert _stages_run(out) == ["train@sft"]
    for s in (0, 1):
        assert f"sft/seed{s}: kept, finished before under the same inputs" in out
        assert weights_digest(dest / f"models/sft/seed{s}") == digests[s]
    assert "sft/seed2: kept" not in out and (dest / "models/sft/seed2").is_dir()
    after = _detail(dest, "train_sft")
    assert {k: after[k] for k in before} == before and after["seed2"]["greedy_accuracy"]
    assert (dest / "runs/sft/seed0/greedy.jsonl").read_bytes() == greedy
    # DVC recorded what is there: the stage is up to date, its outputs in the cache.
    status = _run(["dvc", "status", "train@sft"], dest, env)
    assert "up to date" in status, status
