"""End to end on real data: hand-written rewordings of NQ-open dev questions planted in a
training split. With dedup off, `dvc repro` stops at validate, naming the copies; with the
default heuristic dedup on, the same splits pass."""

import json
import subprocess

import pytest
import yaml
from conftest import ROOT, SHARED, copy_repo, micro_params_dict, needs_shared

from recall.leak_fixture import read_pairs


def _repro(dest, env):
    return subprocess.run(["dvc", "repro", "validate"], cwd=dest, env=env, capture_output=True,
                          text=True, timeout=1200)


@pytest.mark.slow
@needs_shared
def test_planted_rewordings_stop_validate_without_dedup_and_pass_with_it(tmp_path):
    leaks = [p for p in read_pairs(ROOT / "tests/fixtures/leakage.jsonl")
             if p.kind == "leak" and p.source == "nq_open_dev"]
    data = micro_params_dict()
    data["data"].update(source="datasets", select=["planted", "nq_dev"], val_size=0,
                        train_size=1000, datasets=[
                            {"name": "planted", "format": "nq_open", "role": "train",
                             "path": "data/external/planted.jsonl"},
                            {"name": "nq_dev", "format": "nq_open", "role": "test",
                             "path": str(SHARED / "nq_open/NQ-open.dev.jsonl")}])
    data["dedup"].update(verifier="none", max_df=0.05)  # a real corpus: params.yaml's max_df
    env = copy_repo(tmp_path, data)
    planted = tmp_path / "data/external/planted.jsonl"
    planted.parent.mkdir(parents=True)
    planted.write_text("".join(json.dumps({"question": p.train_question,
                                           "answer": list(p.test_answers)}) + "\n"
                               for p in leaks))

    off = _repro(tmp_path, env)
    assert off.returncode != 0, off.stdout[-3000:]
    assert "validate: the splits in data/dedup/items.jsonl fail" in off.stderr
    assert "expect_column_values_to_be_null(target_near_duplicate_of)" in off.stderr
    # The copies are named with their training partners, e.g. NQ-open dev row 42.
    assert "nq_dev-00042 (train: planted-" in off.stderr
    assert not (tmp_path / "data/validated/items.jsonl").exists()

    data["dedup"]["verifier"] = "heuristic"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    on = _repro(tmp_path, env)
    assert on.returncode == 0, on.stderr[-3000:]
    assert json.loads((tmp_path / "metrics/validate.json").read_text())["success"] is True
    removed = json.loads((tmp_path / "metrics/dedup.json").read_text())["removed"]["test"]
    assert removed >= 0.9 * len(leaks)  # the fixture's recall, on the whole NQ-open dev set
