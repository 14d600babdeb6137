"""The labelled real-data leak pairs: provenance checked against the real files, and the
default heuristic verifier held to recall >= 0.9 at precision >= 0.95 on them."""

import csv
import json
from collections import Counter

from conftest import ROOT, SHARED, needs_shared

from recall.config import SourceConfig, load_params
from recall.contract import QAItem
from recall.datasets import load_source
from recall.dedup import HeuristicVerifier
from recall.leak_fixture import fixture_items, measure, read_pairs

FIXTURE = ROOT / "tests" / "fixtures" / "leakage.jsonl"


def test_fixture_has_enough_varied_pairs_from_both_sources():
    pairs = read_pairs(FIXTURE)
    kinds = Counter(p.kind for p in pairs)
    assert kinds["leak"] >= 60 and kinds["distractor"] >= 60 and set(kinds) == {"leak",
                                                                                  "distractor"}
    assert {p.source for p in pairs} == {"nq_open_dev", "simpleqa"}
    assert len({(p.source, p.row) for p in pairs}) == len(pairs)  # one pair per test question
    for p in pairs:
        assert p.train_question.strip().lower() != p.test_question.strip().lower()
        assert p.variation
    variations = " ".join(p.variation for p in pairs if p.kind == "leak")
    for kind in ("synonyms", "reordered", "hyphen", "compound", "name variant", "passive"):
        assert kind in variations


@needs_shared
def test_every_test_question_is_the_real_row():
    nq = [json.loads(line) for line in (SHARED / "nq_open/NQ-open.dev.jsonl").open()]
    with (SHARED / "simpleqa/simple_qa_test_set.csv").open(encoding="utf-8", newline="") as fh:
        sqa = list(csv.DictReader(fh))
    for p in read_pairs(FIXTURE):
        if p.source == "nq_open_dev":
            assert (p.test_question, list(p.test_answers)) == (nq[p.row]["question"],
                                                                nq[p.row]["answer"])
        else:
            assert (p.test_question, p.test_answers) == (sqa[p.row]["question"],
                                                         (sqa[p.row]["true_answer"],))


@needs_shared
def test_default_heuristic_meets_its_targets_among_real_background():
    pairs = read_pairs(FIXTURE)
    rows = load_source(SourceConfig(name="eqa", format="nq_open", role="train", path=str(
        SHARED / "nq_open/NQ-open.efficientqa.dev.1.1.jsonl")))
    background = [QAItem(r.native_id, "eqa", r.question, r.answers, None, "train") for r in rows]
    items = fixture_items(pairs, background)
    cfg = load_params(ROOT / "params.yaml").dedup
    m = measure(pairs, items, cfg, HeuristicVerifier([it.question for it in items], cfg.max_df,
                                                     cfg.min_overlap, cfg.strong_overlap))
    assert m["recall"] >= 0.9 and m["precision"] >= 0.95, m
    assert m["leak_partner_retrieved"] >= 0.95  # retrieval loses almost none before verifying


def test_measure_counts_pairs_not_background_removals():
    from recall.leak_fixture import LeakPair

    pairs = [LeakPair("leak", "nq_open_dev", 0, "who wrote the song purple haze", ("Hendrix",),
                      "the song purple haze was written by whom", ("Hendrix",), "passive"),
             LeakPair("distractor", "nq_open_dev", 1, "who played lead guitar in the experience",
                      ("Hendrix",), "who wrote the song purple haze", ("Hendrix",), "")]
    items = fixture_items(pairs)
    cfg = load_params(ROOT / "params.yaml").dedup
    m = measure(pairs, items, cfg, HeuristicVerifier([it.question for it in items] * 10, 0.9))
    assert (m["caught_leaks"], m["false_alarms"], m["recall"], m["precision"]) == (1, 0, 1.0, 1.0)
    assert m["removed_by_background"] == []
