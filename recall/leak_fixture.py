"""The labelled leak-pair fixture (tests/fixtures/leakage.jsonl): dedup measured on real data.

Each row pairs a real test question (NQ-open dev or SimpleQA, by row) with a hand-written
training question: a `leak` asks the same fact in other words, a `distractor` shares the
answer but asks about another subject. `fixture_items` turns the rows into test and train
items, optionally among background training questions (real ones, so retrieval has
competition and word statistics are realistic); `measure` runs a dedup setting on them and
scores it per test item: a leak's test item must be removed, a distractor's must stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from recall.contract import QAItem, read_jsonl


@dataclass(frozen=True)
class LeakPair:
    kind: str  # leak | distractor
    source: str  # nq_open_dev | simpleqa
    row: int  # 0-based row of the test question in its source file
    test_question: str
    test_answers: tuple[str, ...]
    train_question: str
    train_answers: tuple[str, ...]
    variation: str  # how the training question differs, in words


def read_pairs(path: str | Path) -> list[LeakPair]:
    return list(read_jsonl(path, lambda obj, where: LeakPair(
        **{**obj, "test_answers": tuple(obj["test_answers"]),
           "train_answers": tuple(obj["train_answers"])})))


def fixture_items(pairs: Sequence[LeakPair], background: Sequence[QAItem] = ()
                  ) -> list[QAItem]:
    """Test item `t<k>` and train item `r<k>` per pair, then the background as train items."""
    items = []
    for k, p in enumerate(pairs):
        items.append(QAItem(f"t{k}", p.source, p.test_question, p.test_answers, None, "test"))
        items.append(QAItem(f"r{k}", "fixture", p.train_question, p.train_answers, None,
                            "train"))
    items += [QAItem(f"bg-{it.id}", it.dataset, it.question, it.answers, None, "train")
              for it in background]
    return items


def measure(pairs: Sequence[LeakPair], items: Sequence[QAItem], cfg, verifier) -> dict:
    """Precision and recall on the labelled pairs, and how often retrieval found the partner.

    Scored per labelled pair: a leak counts as caught when its own training question was a
    candidate judged contained; a distractor is a false alarm when its pair was judged
    contained. Removals by background pairs are counted apart: the background is real data
    and may hold real leaks (EfficientQA asks some NQ facts again)."""
    from recall.dedup import deduplicate

    _, report, summary = deduplicate(items, cfg, verifier)
    verdict = {(r.target_id, r.reference_id): r.is_contained for r in report}
    kinds = {k: [i for i, p in enumerate(pairs) if p.kind == k] for k in ("leak", "distractor")}
    caught = [i for i in kinds["leak"] if verdict.get((f"t{i}", f"r{i}"))]
    alarms = [i for i in kinds["distractor"] if verdict.get((f"t{i}", f"r{i}"))]
    tp, fp = len(caught), len(alarms)
    return {"leaks": len(kinds["leak"]), "distractors": len(kinds["distractor"]),
            # Retrieval recall: a leak whose training question is not a candidate is lost
            # before any verifier sees it.
            "leak_partner_retrieved": round(sum((f"t{i}", f"r{i}") in verdict
                                                for i in kinds["leak"])
                                            / max(len(kinds["leak"]), 1), 4),
            "caught_leaks": tp, "false_alarms": fp,
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / len(kinds["leak"]), 4) if kinds["leak"] else 1.0,
            "candidate_pairs": summary["candidate_pairs"],
            "removed_by_background": sorted({r.target_id for r in report if r.is_contained
                                             and r.reference_id.startswith("bg-")}),
            "missed_leaks": [pairs[i].test_question for i in kinds["leak"] if i not in caught],
            "false_alarm_pairs": [[pairs[i].test_question, pairs[i].train_question]
                                  for i in alarms]}
