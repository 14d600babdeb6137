"""The GX validate suites: clean splits pass; planted leaks and schema breaks fail, named."""

import dataclasses

import pytest

from recall.checks import run_checks
from recall.contract import QAItem
from recall.dedup import Containment, HeuristicVerifier, deduplicate
from recall.world import generate_world

TARGETS, REFERENCES = ("val", "test"), ("instruct", "train")
NEAR = 0.85  # params.yaml's validate.near_duplicate_similarity


@pytest.fixture(scope="module")
def deduped(tmp_path_factory):
    from conftest import micro_params_dict

    from recall.config import params_from_dict

    params = params_from_dict(micro_params_dict())
    items = list(generate_world(params.world, seed=0).items)
    kept, report, _ = deduplicate(items, params.dedup, HeuristicVerifier(
        [i.question for i in items], params.dedup.max_df))
    return items, kept, report


def test_clean_splits_pass_and_write_data_docs(deduped, tmp_path):
    _, kept, report = deduped
    ok, failures, counts = run_checks(kept, report, TARGETS, REFERENCES, tmp_path / "gx", NEAR)
    assert ok and failures == []
    assert set(counts) == {"schema", "leakage", "distribution"}
    assert all(c["failed"] == 0 and c["expectations"] >= 4 for c in counts.values())
    assert (tmp_path / "gx" / "index.html").exists()


def test_paraphrased_test_fact_injected_into_train_fails_and_is_named(deduped, tmp_path):
    _, kept, report = deduped
    victim = next(it for it in kept if it.split == "test")
    injected = dataclasses.replace(victim, id="injected-0", split="train",
                                   question=f"tell me : {victim.question}")
    ok, failures, _ = run_checks(kept + [injected], report, TARGETS, REFERENCES, tmp_path / "gx",
                                 NEAR)
    assert not ok
    fact_failure = next(f for f in failures if f.column == "target_fact")
    assert fact_failure.suite == "leakage" and fact_failure.offending == (victim.id,)
    assert fact_failure.partners == {victim.id: ("injected-0",)}
    assert f"{victim.id} (train: injected-0)" in fact_failure.describe()


def test_undeduplicated_splits_fail_on_every_planted_leak(deduped, tmp_path):
    items, _, report = deduped
    ok, failures, _ = run_checks(items, report, TARGETS, REFERENCES, tmp_path / "gx", NEAR)
    leaks = {it.id for it in items if "-leak-" in it.id}
    by_column = {f.column: set(f.offending) for f in failures}
    assert not ok and by_column["target_fact"] == leaks
    assert by_column["target_contained_by"] == leaks  # the dedup report ties each to train


def test_a_verified_pair_left_in_place_fails_without_facts(tmp_path):
    # Real data has no facts: the dedup report's verdict is what ties the two items.
    items = [QAItem(f"r{i}", "nq_open", f"train question number {i}?", ("a",), None, "train")
             for i in range(5)]
    items += [QAItem("t0", "nq_open", "who sang it first in the charts?", ("b",), None, "test")]
    pair = Containment("t0", "r2", "q", "q", ("b",), "retrieval", 0.9, True, "same fact")
    ok, failures, _ = run_checks(items, [pair], TARGETS, REFERENCES, tmp_path / "gx", NEAR)
    assert not ok
    assert [(f.column, f.offending, f.partners) for f in failures] == [
        ("target_contained_by", ("t0",), {"t0": ("r2",)})]


def test_schema_breaks_are_named(deduped, tmp_path):
    _, kept, report = deduped
    dup = dataclasses.replace(kept[0])
    no_answer = dataclasses.replace(kept[1], id="empty-answers", answers=())
    ok, failures, _ = run_checks(kept + [dup, no_answer], report, TARGETS, REFERENCES,
                                 tmp_path / "gx", NEAR)
    named = {(f.suite, f.column): f.offending for f in failures}
    assert not ok
    assert named[("schema", "id")] == (kept[0].id, kept[0].id)
    assert named[("schema", "n_answers")] == ("empty-answers",)


def test_a_near_copy_fails_even_when_dedup_reported_nothing(tmp_path):
    # Dedup off (or its retrieval missed it): no report row, no fact, another id and wording.
    # The test question is NQ-open dev row 52; the copy is a hand-written rewording of it.
    items = [QAItem(f"r{i}", "nq_open", f"train question number {i}?", ("a",), None, "train")
             for i in range(5)]
    items += [QAItem("copy", "mine", "who played solomon on little house on the prairie?",
                     ("Todd Bridges",), None, "train"),
              QAItem("other", "mine", "who played willis on diff'rent strokes",
                     ("Todd Bridges",), None, "train"),
              QAItem("t0", "nq_open", "who played solomon in little house on the prairie",
                     ("Todd Bridges",), None, "test")]
    ok, failures, _ = run_checks(items, [], TARGETS, REFERENCES, tmp_path / "gx", NEAR)
    assert not ok
    assert [(f.column, f.offending, f.partners) for f in failures] == [
        ("target_near_duplicate_of", ("t0",), {"t0": ("copy",)})]
    # Same answer, another subject: below the threshold, so the splits pass.
    ok, failures, _ = run_checks([it for it in items if it.id != "copy"], [], TARGETS,
                                 REFERENCES, tmp_path / "gx2", NEAR)
    assert ok, [f.describe() for f in failures]


def test_data_docs_depend_on_the_data_only(deduped, tmp_path):
    # validate's reports/gx is a DVC output: a rerun on the same items must give the same
    # bytes, not a tree named by the clock (GX names each run by its time unless told).
    import hashlib

    _, kept, report = deduped

    def tree(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    run_checks(kept, report, TARGETS, REFERENCES, tmp_path / "a", NEAR)
    run_checks(kept, report, TARGETS, REFERENCES, tmp_path / "b", NEAR)
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first and first == second
