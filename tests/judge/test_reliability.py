import json

import pytest

from recall.contract import ContractError, QAItem, SampleRecord
from recall.judge.interface import JudgeRequest, Verdict
from recall.judge.reliability import labelled_from_samples, read_labelled, reliability, reliability_by_kind
from recall.judge.rules import RuleJudge
from recall.judge.training import LabelledPair


def test_labelled_from_samples_dedups_by_normalised_answer():
    item = QAItem("t1", "toy", "where ?", ("velmor", "velmor city"), None, "test")
    rec = SampleRecord("t1", "test", "m", "direct", 1.0,
                       ("velmor", "Velmor.", "zantrix", "velmor city", "zantrix"), (1, 1, 0, 1, 0))
    pairs = labelled_from_samples([rec], {"t1": item})
    assert [(r.candidate, label) for r, label in pairs] == [("velmor", 1), ("zantrix", 0),
                                                            ("velmor city", 1)]


def test_reliability_of_a_judge_against_labels(tmp_path):
    path = tmp_path / "labels.jsonl"
    rows = [{"question": "q", "answers": ["x y"], "candidate": "x y", "label": 1},
            {"question": "q", "answers": ["x y"], "candidate": "X Y!", "label": 1},
            {"question": "q", "answers": ["x y"], "candidate": "y x", "label": 1},
            {"question": "q", "answers": ["x y"], "candidate": "z", "label": 0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = reliability(RuleJudge(), {"labelled": read_labelled(path)})["labelled"]
    assert report["agreement"] == 0.75 and report["false_negative_rate"] == pytest.approx(1 / 3)
    assert report["false_positive_rate"] == 0.0


def test_bad_labelled_line_names_file_line_field(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"question": "q", "answers": ["a"], "candidate": "a", "label": 2}))
    with pytest.raises(ContractError, match=r"labels.jsonl:1: field 'label' must be 0 or 1"):
        read_labelled(path)


class _SaysYes:
    """A judge that calls everything correct, and counts its batches."""

    def __init__(self):
        self.batches = 0

    def judge(self, requests):
        self.batches += 1
        return [Verdict(1, "yes") for _ in requests]


def test_reliability_by_kind_judges_once_and_slices():
    req = JudgeRequest("q", ("a",), "a")
    pairs = [LabelledPair(req, 1, "alias"), LabelledPair(req, 1, "alias"),
             LabelledPair(req, 0, "other_value"), LabelledPair(req, 0, "empty")]
    judge = _SaysYes()
    report = reliability_by_kind(judge, pairs)
    assert judge.batches == 1
    assert report["all"]["agreement"] == 0.5 and report["all"]["false_positive_rate"] == 1.0
    assert report["alias"]["agreement"] == 1.0 and report["alias"]["false_positive_rate"] is None
    assert report["other_value"]["agreement"] == 0.0 and report["empty"]["n"] == 1
